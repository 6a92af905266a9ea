"""Free-text generation for next-query prediction (NSQP: ``<S_Q>`` then query words).

Queries are open vocabulary and of varying length, so there is no trie and
stock ``model.generate`` beam search is the right tool; the shared
cross-attention trick matters little here because suggestions are not on the
per-item hot path. What this adds: the behaviour token is forced as the first
generated token, identifier tokens can be banned from queries, and texts that
decode to the same string are merged (the best one kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import torch
from transformers import PreTrainedModel

from gensar.decoding.seq2seq import SpecialTokens, check_inputs
from gensar.errors import GensarError


class Decodes(Protocol):
    """Anything with a Hugging Face style ``decode`` (a tokenizer)."""

    def decode(self, token_ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class Suggestion(NamedTuple):
    """One suggested query."""

    text: str
    score: float  # beam score: summed log-probability / length ** length_penalty
    token_ids: list[int]  # generated tokens after the behaviour token, without EOS/padding


def suggest_queries(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    tokenizer: Decodes,
    query_token: int,
    special: SpecialTokens | None = None,
    *,
    k: int = 5,
    num_beams: int = 10,
    max_new_tokens: int = 16,
    length_penalty: float = 1.0,
    banned_token_ids: Sequence[int] = (),
) -> list[list[Suggestion]]:
    """Up to ``k`` distinct query suggestions per input, best first.

    ``query_token`` is ``<S_Q>``; it is fed after the decoder start token, so
    the model continues with query words. ``banned_token_ids`` (for example
    every identifier and behaviour token) can never be generated.
    """
    input_ids, attention_mask = check_inputs(input_ids, attention_mask)
    special = special or SpecialTokens.from_model(model)
    if not 1 <= k <= num_beams:
        raise GensarError(f"need 1 <= k <= num_beams, got k={k}, num_beams={num_beams}")
    device = model.device
    batch = input_ids.shape[0]
    prompt = torch.tensor([[special.decoder_start, query_token]], device=device).expand(batch, 2)
    banned = sorted({int(t) for t in banned_token_ids} - {special.eos})
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=None if attention_mask is None else attention_mask.to(device),
                decoder_input_ids=prompt,
                num_beams=num_beams,
                num_return_sequences=num_beams,
                max_new_tokens=max_new_tokens,
                length_penalty=length_penalty,
                do_sample=False,
                early_stopping=True,
                suppress_tokens=banned or None,
                decoder_start_token_id=special.decoder_start,
                eos_token_id=special.eos,
                pad_token_id=special.pad,
                return_dict_in_generate=True,
                output_scores=True,
            )
    finally:
        model.train(was_training)
    sequences = out.sequences.view(batch, num_beams, -1)[:, :, 2:].tolist()
    scores = out.sequences_scores.view(batch, num_beams).tolist()
    results = []
    for seqs, row_scores in zip(sequences, scores, strict=True):
        ranked = sorted(
            zip(row_scores, range(num_beams), seqs, strict=True), key=lambda t: (-t[0], t[1])
        )
        seen: set[str] = set()
        suggestions = []
        for score, _, ids in ranked:
            ids = _strip(ids, special)
            text = tokenizer.decode(ids, skip_special_tokens=True).strip()
            if not text or text in seen:
                continue
            seen.add(text)
            suggestions.append(Suggestion(text, float(score), ids))
            if len(suggestions) == k:
                break
        results.append(suggestions)
    return results


def _strip(ids: list[int], special: SpecialTokens) -> list[int]:
    """Cut at the first EOS and drop padding."""
    if special.eos in ids:
        ids = ids[: ids.index(special.eos)]
    return [i for i in ids if i != special.pad]
