"""Soft tokens: encoder inputs that are projected vectors instead of vocabulary rows.

A from-scratch encoder learns what an identifier token or a query word means only
from the training examples. A *soft token* brings pretrained meaning in: its
input embedding is a learned projection of a fixed vector (an item's MiniLM and
SASRec vectors, a query's MiniLM vector), as GenSR feeds its model (Zhao et al.,
2025) and SynerGen its decoder. One soft token stands for a whole item, where the
identifier form spends a behaviour token and four or more code tokens.

Soft tokens are addressed by ids past the word vocabulary (``base + row`` for row
``row`` of the vector table), so every code path that hands ``input_ids`` to the
encoder (training, beam search, exact scoring, serving) works unchanged: only the
encoder's input embedding knows the difference. The decoder never sees them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SoftTokenEmbedding(nn.Embedding):
    """The encoder's input embedding: word rows of the shared table below ``base``,
    ``project(vectors[id - base])`` from ``base`` on.

    It *is* an ``nn.Embedding`` whose ``weight`` is the model's shared word table
    (the same Parameter), so weight tying, checkpoints and the lean decoder's
    word lookups see what they saw before. ``vectors`` is a non-persistent
    buffer: the model directory stores it once, in its own file, beside the
    weights (:mod:`gensar.families.gensar.soft_inputs`).
    """

    def __init__(self, shared: nn.Embedding, vectors: torch.Tensor, *, seed: int = 0) -> None:
        super().__init__(shared.num_embeddings, shared.embedding_dim, _weight=shared.weight)
        self.weight = shared.weight
        self.register_buffer("vectors", vectors.float(), persistent=False)
        self.project = nn.Linear(vectors.shape[1], shared.embedding_dim, bias=False)
        # Each output dimension gets the variance of one unit-variance input block:
        # rows are built with every block scaled to total variance 1 (soft_inputs), so
        # std 1/sqrt(blocks) keeps soft tokens on the scale of the word rows (std 1).
        generator = torch.Generator().manual_seed(seed)
        blocks = max(1.0, float(vectors.pow(2).sum(dim=1).mean()))
        with torch.no_grad():
            self.project.weight.normal_(0.0, blocks**-0.5, generator=generator)

    @property
    def base(self) -> int:
        """The first soft-token id (the word vocabulary's size)."""
        return self.num_embeddings

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        soft = input_ids >= self.base
        words = F.embedding(input_ids.masked_fill(soft, 0), self.weight)
        if not bool(soft.any()):
            return words
        rows = self.vectors[input_ids[soft] - self.base].to(self.project.weight.dtype)
        return words.masked_scatter(soft.unsqueeze(-1), self.project(rows).to(words.dtype))


def attach_soft_tokens(model, vectors: torch.Tensor, *, seed: int = 0) -> SoftTokenEmbedding:
    """Give a T5-style encoder-decoder's encoder a :class:`SoftTokenEmbedding`.

    The decoder keeps the shared word table, so generation is untouched.
    """
    encoder = model.get_encoder()
    if not isinstance(getattr(encoder, "embed_tokens", None), nn.Embedding):
        from gensar.errors import ConfigError

        raise ConfigError(
            f"tasks.soft_tokens needs a T5-style encoder; {type(encoder).__name__} reads its "
            "inputs elsewhere",
            fix="use model.preset tiny, small or a pretrained T5, or set tasks.soft_tokens=off",
        )
    shared = model.get_input_embeddings()
    embedding = SoftTokenEmbedding(shared, vectors.to(shared.weight.device), seed=seed)
    embedding.project.to(shared.weight.device)
    encoder.embed_tokens = embedding
    return embedding


def soft_embedding(model) -> SoftTokenEmbedding | None:
    """The model's soft-token embedding, or None for a plain model."""
    embed = getattr(model.get_encoder(), "embed_tokens", None)
    return embed if isinstance(embed, SoftTokenEmbedding) else None
