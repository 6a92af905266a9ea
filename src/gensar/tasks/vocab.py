"""The model's vocabulary: SentencePiece pieces learned from item texts and queries,
plus the identifier, behaviour and task tokens, saved as a transformers tokenizer.

Why multi-word pieces: on a CPU the encoder's cost is proportional to the input
length, and histories repeat the same few hundred category queries. Letting
SentencePiece learn pieces that span spaces (``split_by_whitespace=False``)
turns a frequent query such as "industrial scientific tapes adhesives" into one
or two tokens instead of six, with no change to what the model can express.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pydantic import Field

from gensar.config import Section
from gensar.data import schema

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"

#: Behaviour tokens of Eq. (11).
BEHAVIOUR_TOKENS = {
    schema.REC_ITEM: "<R_I>",
    schema.SEARCH_QUERY: "<S_Q>",
    schema.SEARCH_ITEM: "<S_I>",
}
#: Task tokens of the compact instruction mode (one per task of paper 3.3).
TASK_TOKENS = {
    "nrip": "<task_nrip>",
    "nsqp": "<task_nsqp>",
    "nsip": "<task_nsip>",
    "desc2id": "<task_desc2id>",
    "id2desc": "<task_id2desc>",
}


class VocabConfig(Section):
    size: int = Field(
        5000,
        ge=100,
        le=250_000,
        description="SentencePiece pieces (before identifier tokens); SPEC 6 used 5k words.",
    )
    multiword: bool = Field(
        True,
        description="Let pieces span spaces, so frequent queries become few tokens (fewer input tokens = faster CPU training).",
    )
    case_fold: bool = Field(
        True,
        description="Lower-case text (nmt_nfkc_cf normalisation): halves the vocabulary a from-scratch model must learn.",
    )
    max_query_repeats: int = Field(
        50,
        ge=1,
        description="Each query is shown to the trainer up to this many times (its frequency in the log).",
    )


def build_tokenizer(
    item_texts: Iterable[str],
    query_counts: Counter[str],
    special_tokens: list[str],
    config: VocabConfig,
    *,
    extra_texts: Iterable[str] = (),
):
    """Train SentencePiece on item texts and queries and return a fast transformers tokenizer.

    ``special_tokens`` (identifier, behaviour and task tokens) are added as
    atomic tokens after the learned pieces. ``extra_texts`` (the instruction
    templates) are part of the training text, so every template word has pieces.
    Ids 0, 1, 2 are pad, eos, unk (the T5 layout).
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    sentences = [t for t in item_texts if t and t.strip()]
    for text in extra_texts:
        sentences.extend([text] * 20)
    for query, count in query_counts.items():
        sentences.extend([query] * min(count, config.max_query_repeats))
    if not sentences:
        raise ValueError("no text to train the vocabulary on")
    with tempfile.TemporaryDirectory() as tmp:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_prefix=f"{tmp}/sp",
            vocab_size=config.size,
            model_type="unigram",
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            pad_piece=PAD,
            eos_piece=EOS,
            unk_piece=UNK,
            normalization_rule_name="nmt_nfkc_cf" if config.case_fold else "nmt_nfkc",
            split_by_whitespace=not config.multiword,
            max_sentencepiece_length=24 if config.multiword else 16,
            hard_vocab_limit=False,
            character_coverage=1.0,
            num_threads=2,
            minloglevel=2,
        )
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(Path(f"{tmp}/sp.model").read_bytes())
    pieces = [(p.piece, p.score) for p in proto.pieces]
    backend = Tokenizer(Unigram(pieces, unk_id=2, byte_fallback=False))
    backend.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
            normalizers.Replace("  ", " "),
        ]
    )
    backend.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="always", split=not config.multiword
    )
    backend.decoder = decoders.Metaspace(
        replacement="▁", prepend_scheme="always", split=not config.multiword
    )
    backend.post_processor = processors.TemplateProcessing(
        single=["$A", EOS], special_tokens=[(EOS, 1)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS, unk_token=UNK
    )
    tokenizer.add_tokens(special_tokens, special_tokens=True)
    return tokenizer


def extend_tokenizer(tokenizer, special_tokens: list[str]):
    """Add identifier/behaviour/task tokens to a pretrained checkpoint's tokenizer."""
    missing = [t for t in special_tokens if t not in tokenizer.get_vocab()]
    tokenizer.add_tokens(missing, special_tokens=True)
    return tokenizer
