"""SASRec (Kang & McAuley, ICDM 2018): a causal self-attention sequential recommender.

It gives GenSAR its collaborative item embeddings (paper 3.2.1, SPEC 3: the
item-embedding table, 64-d like the authors' UniSAR embeddings) and it is the
recommendation baseline of the evaluation. This module holds only the settings
and the network; training and inference live in :mod:`gensar.embed.collab`.

Token convention: item ``i`` of the dataset's item order is token ``i + 1``;
token 0 is padding. Sequences are left-padded (the most recent item is the last
column), as in the original code.

The network can be built as the RecBole SASRec that reference numbers for this
protocol come from (``norm: post``, ``init: recbole``: 2 heads, feed-forward
256, GELU, post-LayerNorm blocks, LayerNorm on the input embeddings, N(0, 0.02)
initialisation, Adam lr 1e-3, patience 10) or as SASRec's own layout (pre-
LayerNorm blocks and a final LayerNorm, 1 head, feed-forward = hidden, ReLU,
embeddings scaled by sqrt(hidden)). The defaults are the setting that won the
validation-only sweep of ``benchmarks/sasrec_sweep.py``
(``benchmarks/results/sasrec_sweep.md``): RecBole's code (post-LN, 2 heads, FFN
256, GELU, no dropout inside the feed-forward, LayerNorm eps 1e-12, Adam lr 1e-3,
every prefix its own training example), with positions counted from the newest
item. On amazon-scientific it reaches validation / test NDCG@10 0.243 / 0.213 on
the 100-candidate lists. What mattered (measured, one change at a time): per-prefix
examples (+0.022 validation NDCG@10 over one example per sequence: 4x more, less
correlated steps); the feed-forward dropout and the epsilon changed little or
nothing. Full-catalogue validation NDCG@10 plateaus by epoch ~5 while the
candidate-list figure keeps rising to epoch ~15 (``benchmarks/results/
sasrec_epochs-*.md``), so the epoch early stopping keeps is partly chance.
Remaining departures from the original paper:

* Loss: full softmax cross-entropy over the whole catalogue by default (as in
  RecBole), which converges in far fewer epochs than the paper's binary
  cross-entropy with one sampled negative per position (``loss: bce``).
* Positions are counted back from the most recent item (0 = newest) by default.
  With the original left padding to ``max_len`` that is the same embedding for
  the same slot, but it lets a batch be padded only to its own longest sequence.
  ``positions: start`` counts from the oldest item, as RecBole does.
* Every prefix of a training sequence is its own example (RecBole's
  augmentation; ``examples: sequence`` is the paper's one pass per sequence).
  Batches are drawn from pools of similar length (``batches: random`` for plain).
* Padded keys are masked out of attention (the original lets real positions
  attend to zero vectors); a padded query may attend to itself only, which
  keeps its softmax defined. Its output is zeroed afterwards.

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from pydantic import Field, model_validator
from torch import nn

from gensar.config import Section

PAD = 0


class SASRecConfig(Section):
    """Settings of the collaborative embedder / SASRec baseline (the ``collab:`` section).

    Defaults: the winner of the validation-only sweep ``benchmarks/sasrec_sweep.py``,
    with early stopping on the validation NDCG@10 over the full catalogue.
    """

    hidden: int = Field(64, ge=8, le=1024, description="Embedding and hidden width (SPEC 3: 64-d).")
    layers: int = Field(2, ge=1, le=8, description="Self-attention blocks (paper: 2).")
    heads: int = Field(
        2, ge=1, le=16, description="Attention heads; must divide hidden (RecBole: 2)."
    )
    ffn: int = Field(
        256,
        ge=1,
        le=16384,
        description="Feed-forward width (SASRec: = hidden; RecBole: 256 = 4 x hidden).",
    )
    activation: Literal["gelu", "relu"] = Field(
        "gelu", description="Feed-forward activation (SASRec: relu; RecBole: gelu)."
    )
    norm: Literal["post", "pre"] = Field(
        "post",
        description="pre: LayerNorm before each sub-layer, plus a final one (SASRec's code); "
        "post: after each residual (RecBole, the original Transformer).",
    )
    init: Literal["recbole", "scaled"] = Field(
        "recbole",
        description="recbole: N(0, 0.02) weights, zero biases, LayerNorm on the summed input "
        "embeddings; scaled: item embeddings x sqrt(hidden) with std hidden**-0.5, no input "
        "LayerNorm.",
    )
    max_len: int = Field(
        50, ge=2, le=512, description="Most recent items a user is represented by."
    )
    dropout: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="Dropout on embeddings and blocks (paper: 0.5 on sparse Amazon data; "
        "0.5-0.6 beat 0.3 by about 0.003 NDCG@10 on amazon-scientific).",
    )
    positions: Literal["end", "start"] = Field(
        "end",
        description="end: position 0 is the newest item (SASRec's left padding to max_len); "
        "start: position 0 is the oldest item in the window (RecBole). With causal attention, "
        "'start' gives a prefix inside a longer training sequence the same state it gets alone.",
    )
    examples: Literal["sequence", "prefix"] = Field(
        "prefix",
        description="sequence: one example per user, every position predicts its next item; "
        "prefix: RecBole's augmentation, every prefix (its newest max_len items) is its own "
        "example with a loss on its last position only.",
    )
    batches: Literal["by_length", "random"] = Field(
        "by_length",
        description="by_length: each batch drawn from a pool of similar lengths (little "
        "padding, several times cheaper); random: plain random batches (RecBole).",
    )
    ffn_dropout: bool = Field(
        False,
        description="Dropout between the feed-forward layers (torch's TransformerEncoderLayer); "
        "RecBole has none there (only on each sub-layer's output and the attention weights).",
    )
    layer_norm_eps: float = Field(
        1e-12, gt=0.0, le=1e-2, description="Epsilon of the blocks' LayerNorms (RecBole: 1e-12)."
    )
    loss: Literal["ce", "bce"] = Field(
        "ce",
        description="ce: softmax cross-entropy over all items (default, fast); "
        "bce: the paper's binary loss with one sampled negative per position.",
    )
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="Adam learning rate (RecBole: 1e-3).")
    beta2: float = Field(
        0.999, gt=0.0, lt=1.0, description="Adam beta2 (SASRec: 0.98; RecBole 0.999)."
    )
    weight_decay: float = Field(
        0.0, ge=0.0, le=1.0, description="Decoupled weight decay (AdamW); 0 = Adam."
    )
    batch_size: int = Field(128, ge=1, le=65536, description="Training sequences per step.")
    eval_batch_size: int = Field(
        1024, ge=1, le=65536, description="Histories scored per step at validation/inference."
    )
    max_epochs: int = Field(
        200,
        ge=1,
        le=10000,
        description="Upper bound on epochs (early stopping ends training well before).",
    )
    patience: int = Field(
        10,
        ge=1,
        le=1000,
        description="Stop after this many epochs without a better validation NDCG@10 "
        "(RecBole: 10; 10 chose the same epoch here).",
    )
    seed: int = Field(0, ge=0, description="Seed of initialisation, shuffling and dropout.")
    device: str = Field("auto", description="auto (cuda if visible, else cpu), cpu, cuda, ...")
    threads: int = Field(
        1,
        ge=0,
        le=256,
        description="CPU threads torch may use while training/scoring (0 = torch's default). "
        "1 by default: the model's operations are too small to gain from threads, and on a "
        "busy shared CPU two threads made epochs 5-8x slower than one (OpenMP spin-waiting).",
    )

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> SASRecConfig:
        if self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")
        return self


class SASRecOutput(NamedTuple):
    """What the encoder gives for a left-padded batch of item tokens."""

    hidden: torch.Tensor  #: [batch, length, hidden]; zero rows at padded positions
    mask: torch.Tensor  #: [batch, length] bool, True where a real item is


class SASRec(nn.Module):
    """Item embeddings + learned positions + causal transformer blocks.

    The output item scores reuse the input item embedding table (as in SASRec),
    which is why that table is a good collaborative embedding to export.
    """

    def __init__(self, n_items: int, config: SASRecConfig):
        super().__init__()
        self.n_items = n_items
        self.max_len = config.max_len
        self.hidden = config.hidden
        self.heads = config.heads
        self.recbole_init = config.init == "recbole"
        self.positions_from_start = config.positions == "start"
        self.item_emb = nn.Embedding(n_items + 1, config.hidden, padding_idx=PAD)
        self.pos_emb = nn.Embedding(config.max_len, config.hidden)
        # RecBole: LayerNorm(item + position) then dropout; "scaled": dropout only.
        self.input_norm = nn.LayerNorm(config.hidden, eps=1e-12) if self.recbole_init else None
        self.emb_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model=config.hidden,
                nhead=config.heads,
                dim_feedforward=config.ffn,
                dropout=config.dropout,
                activation=config.activation,
                batch_first=True,
                norm_first=config.norm == "pre",
                layer_norm_eps=config.layer_norm_eps,
            )
            for _ in range(config.layers)
        )
        if not config.ffn_dropout:
            for block in self.blocks:
                block.dropout = nn.Identity()  # the one between linear1 and linear2
        # Post-LN blocks already end in a LayerNorm; pre-LN ones need a final one.
        self.final_norm = (
            nn.LayerNorm(config.hidden, eps=config.layer_norm_eps) if config.norm == "pre" else None
        )
        self._init_weights()

    def _init_weights(self) -> None:
        if self.recbole_init:
            # RecBole's _init_weights: N(0, 0.02) for every weight matrix and embedding,
            # zero biases, LayerNorm at identity.
            for name, param in self.named_parameters():
                if "norm" in name:
                    nn.init.ones_(param) if name.endswith("weight") else nn.init.zeros_(param)
                elif param.dim() >= 2:
                    nn.init.normal_(param, std=0.02)
                else:
                    nn.init.zeros_(param)
        else:
            # std hidden**-0.5 makes the sqrt(hidden)-scaled input unit-variance and the
            # initial logits (LayerNorm output . item vector) of order one.
            std = self.hidden**-0.5
            nn.init.normal_(self.item_emb.weight, std=std)
            nn.init.normal_(self.pos_emb.weight, std=std)
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()

    @property
    def item_vectors(self) -> torch.Tensor:
        """[n_items, hidden]: the embedding of every real item (padding row dropped)."""
        return self.item_emb.weight[1:]

    def forward(self, items: torch.Tensor) -> SASRecOutput:
        """Encode ``items`` ([batch, length] tokens, left-padded with 0)."""
        batch, length = items.shape
        if length > self.max_len:
            items = items[:, -self.max_len :]
            length = self.max_len
        mask = items != PAD
        pos = self.pos_emb(self._positions(mask))
        if self.input_norm is not None:
            x = self.input_norm(self.item_emb(items) + pos)
        else:
            x = self.item_emb(items) * self.hidden**0.5 + pos
        x = self.emb_dropout(x) * mask.unsqueeze(-1)
        attn_mask = self._attention_mask(mask)
        for block in self.blocks:
            x = block(x, src_mask=attn_mask) * mask.unsqueeze(-1)
        if self.final_norm is not None:
            x = self.final_norm(x) * mask.unsqueeze(-1)
        return SASRecOutput(hidden=x, mask=mask)

    def _positions(self, mask: torch.Tensor) -> torch.Tensor:
        """[batch, length] position ids ([1, length] when counted from the end)."""
        length = mask.shape[1]
        if self.positions_from_start:
            # left padding: the first real item of each row is position 0
            return (mask.long().cumsum(1) - 1).clamp(min=0)
        return torch.arange(length - 1, -1, -1, device=mask.device)[None]

    def _attention_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """[batch * heads, L, L] bool, True = may not attend: the future and padded keys.

        The diagonal is always allowed so a padded query row is never fully masked
        (a fully masked softmax row gives NaN).
        """
        length = mask.shape[1]
        ones = torch.ones(length, length, dtype=torch.bool, device=mask.device)
        future = torch.triu(ones, diagonal=1)
        eye = torch.eye(length, dtype=torch.bool, device=mask.device)
        blocked = future[None] | ((~mask)[:, None, :] & ~eye[None])
        return blocked.repeat_interleave(self.heads, dim=0)

    def user_states(self, items: torch.Tensor) -> torch.Tensor:
        """[batch, hidden]: the state after the most recent item (the last column)."""
        return self(items).hidden[:, -1]

    def scores(self, states: torch.Tensor) -> torch.Tensor:
        """[..., n_items]: dot products of states with every item embedding."""
        return states @ self.item_vectors.T


def pad_left(
    sequences: Sequence[Sequence[int]], max_len: int, *, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Left-pad token lists to the longest one (at most ``max_len``, keeping the newest).

    An empty list becomes a row of padding (width at least 1).
    """
    width = max(1, min(max_len, max((len(s) for s in sequences), default=1)))
    out = torch.zeros(len(sequences), width, dtype=torch.long)
    for row, seq in enumerate(sequences):
        seq = list(seq)[-width:]
        if seq:
            out[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
    return out.to(device)
