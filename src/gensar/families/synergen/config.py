"""Settings of SynerGen (the ``synergen:`` section).

The paper's abstract (Gao et al., 2025) is the specification: a decoder-only
Transformer over behaviour sequences, InfoNCE retrieval, a hybrid pointwise +
pairwise ranking loss, time-aware rotary positions, one joint objective. Every
choice the abstract is silent on is a named field here; the defaults are sized
for a 2-core CPU and a catalogue of a few thousand items (amazon-scientific).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gensar.config import Section


class SynerGenConfig(Section):
    """Every SynerGen setting; ablations are single overrides (see the README)."""

    family: Literal["synergen"] = Field(
        "synergen", description="The model family (the registry's discriminator)."
    )

    # ---- tokens
    hidden: int = Field(64, ge=8, le=2048, description="Token and state width d.")
    semantic: bool = Field(
        True,
        description="Add the projected MiniLM text vector to item tokens and use it for "
        "query tokens (false: the 'without semantic embedding' ablation; queries then get "
        "a learned embedding per distinct query).",
    )
    share_text_projection: bool = Field(
        True,
        description="One linear map MiniLM->d for item and query texts (they share the "
        "MiniLM space, so a shared map keeps a query near the items it names).",
    )
    merge_duplicate_clicks: bool = Field(
        True,
        description="A rec click of the item a search session at the same time clicked "
        "(one purchase logged as both behaviours) is not a separate input token; its rec "
        "target is still trained from the state before the session. Without this the "
        "search target's own rec click would be in its causal input (the dataset's "
        "leakage guard drops it from sample histories for the same reason).",
    )
    # ---- backbone
    layers: int = Field(2, ge=1, le=24, description="Decoder blocks (causal self-attention).")
    heads: int = Field(2, ge=1, le=32, description="Attention heads; hidden/heads must be even.")
    ff_mult: int = Field(2, ge=1, le=8, description="Feed-forward width = ff_mult * hidden.")
    dropout: float = Field(
        0.5, ge=0.0, lt=1.0, description="Dropout on tokens and blocks (0.5 as SASRec here)."
    )
    max_len: int = Field(64, ge=2, le=4096, description="Newest tokens a user is represented by.")
    positions: Literal["time", "rope", "learned"] = Field(
        "time",
        description="time: time-aware rotary (part of each head's rotary pairs turn with the "
        "event time, the rest with the position); rope: plain rotary by position; learned: "
        "an absolute position table (SASRec style).",
    )
    time_fraction: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Share of each head's rotary frequency pairs driven by time (rest: position).",
    )
    time_unit: float = Field(
        1.0,
        gt=0.0,
        description="Event time is log1p((t - t_start) / time_unit); t_start is the first "
        "event of the sequence. On datasets without timestamps time is the event order.",
    )
    rope_base: float = Field(10000.0, gt=1.0, description="Rotary frequency base.")
    # ---- heads and losses
    retrieval_loss: Literal["softmax", "infonce"] = Field(
        "softmax",
        description="softmax: cross-entropy over the whole catalogue (InfoNCE with every item "
        "as a negative; exact and cheap for a few thousand items); infonce: the positive "
        "against in-batch positives and sampled negatives (the paper's form, for large "
        "catalogues).",
    )
    infonce_negatives: int = Field(
        256, ge=0, le=1_000_000, description="Sampled negatives per batch (infonce)."
    )
    infonce_sampling: Literal["uniform", "popularity"] = Field(
        "uniform", description="How infonce's shared sampled negatives are drawn."
    )
    temperature: float = Field(1.0, gt=0.0, description="Retrieval logits are divided by this.")
    ranking_head: Literal["mlp", "bilinear"] = Field(
        "mlp",
        description="mlp: MLP over [state, item, state*item] -> score; bilinear: state^T W item.",
    )
    rank_hard_negatives: int = Field(
        8,
        ge=0,
        le=1000,
        description="Ranking negatives per target taken from the retrieval head's current top "
        "items (what a retrieve-then-rank system hands the ranker).",
    )
    rank_random_negatives: int = Field(
        8, ge=0, le=1000, description="Ranking negatives per target drawn by item popularity."
    )
    hard_pool: int = Field(50, ge=1, le=10000, description="Top items hard negatives come from.")
    pointwise_weight: float = Field(1.0, ge=0.0, description="Weight of the ranking BCE term.")
    pairwise_weight: float = Field(1.0, ge=0.0, description="Weight of the ranking BPR term.")
    retrieval_weight: float = Field(1.0, ge=0.0, description="Weight of the retrieval loss.")
    ranking_weight: float = Field(1.0, ge=0.0, description="Weight of the ranking loss.")
    rec_weight: float = Field(1.0, ge=0.0, description="Weight of recommendation targets.")
    search_weight: float = Field(1.0, ge=0.0, description="Weight of search targets.")
    candidate_scorer: Literal["ranking", "retrieval", "sum"] = Field(
        "ranking",
        description="What scores given candidate lists: the ranking head (the paper's split), "
        "the retrieval head, or the sum of both (z-scored per list).",
    )
    rec_popularity_correction: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        description="Given recommendation candidate lists, the retrieval head's score minus "
        "this times log(1 + the item's training targets). The softmax retrieval head learns "
        "log P(item | user), which carries the item's popularity; a list whose negatives are "
        "drawn by popularity asks for P(item | user) / P_pop(item), i.e. 1.0. Whole-catalogue "
        "retrieval (top_k, score_all, serving) is never corrected. Chosen on validation.",
    )
    search_popularity_correction: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        description="The same for search candidate lists (their negatives are mostly "
        "lexical look-alikes, so 0 unless validation says otherwise).",
    )
    # ---- training
    lr: float = Field(2e-3, gt=0.0, le=1.0, description="AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="AdamW weight decay.")
    batch_size: int = Field(128, ge=1, le=65536, description="User sequences per step.")
    epochs: int = Field(200, ge=1, le=100000, description="Upper bound on epochs.")
    max_minutes: float | None = Field(
        None, gt=0.0, description="Stop training after this many minutes (None: no limit)."
    )
    eval_every: int = Field(1, ge=1, description="Validate every this many epochs.")
    eval_samples: int = Field(
        2000, ge=1, description="Validation samples per task (a fixed seeded subset)."
    )
    patience: int = Field(5, ge=1, description="Stop after this many validations without gain.")
    eval_batch_size: int = Field(512, ge=1, le=65536, description="Contexts scored per step.")
    seed: int = Field(0, ge=0, description="Seed of initialisation, shuffling, sampling, dropout.")
    device: str = Field("auto", description="auto (cuda if visible, else cpu), cpu, cuda, ...")
    threads: int = Field(
        1, ge=0, le=256, description="torch CPU threads (0: torch's default; 1 on a shared CPU)."
    )

    @model_validator(mode="after")
    def _check(self) -> SynerGenConfig:
        if self.hidden % self.heads or (self.hidden // self.heads) % 2:
            raise ValueError(
                f"hidden ({self.hidden}) / heads ({self.heads}) must be a whole even number"
            )
        if self.retrieval_weight == 0 and self.ranking_weight == 0:
            raise ValueError("retrieval_weight and ranking_weight cannot both be 0")
        if self.rec_weight == 0 and self.search_weight == 0:
            raise ValueError("rec_weight and search_weight cannot both be 0")
        return self
