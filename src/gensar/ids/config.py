"""Settings of the identifier stage (``gensar index``): SPEC section 4, paper 3.2 and 4.4.1."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gensar.config import Section

Variant = Literal["joint", "semantic", "collaborative"]
Method = Literal["rqkmeans", "rqvae"]


class IndexConfig(Section):
    """How identifiers are learned (the joint RQ-VAE or residual k-means), and made unique.

    Defaults are the authors' settings (SPEC 4) except where a field's
    description names a departure made to fit a 2-core CPU.
    """

    method: Method = Field(
        "rqvae",
        description=(
            "'rqvae': the authors' joint RQ-VAE (paper 3.2). 'rqkmeans': residual k-means on "
            "the (standardised, weighted) embeddings, no gradient training (GRID / MiniOneRec); "
            "in the joint variant the L_m shared levels cluster the concatenation [v_s; v_c] "
            "and the L_n specific levels each side's own residual, the shared-prefix structure "
            "of Eq. 2-10 without the encoders. On amazon-scientific (3 training seeds, "
            "benchmarks/results/index_methods-recbole-sasrec.md) rqkmeans with "
            "semantic_weight=0.3 searched better than the converged RQ-VAE (validation NDCG@10 "
            "0.121 vs 0.107) and recommended worse (0.079 vs 0.091); at 0.7 its codes follow "
            "the queries far more closely but recommend worse still. The RQ-VAE stays the "
            "default; rqkmeans at 0.3 suits a search-first platform."
        ),
    )
    variant: Variant = Field(
        "joint",
        description=(
            "'joint': GenSAR's shared + specific codebooks, two identifiers per item (paper "
            "3.2). 'semantic' / 'collaborative': the ablation of paper 4.4.1, a plain RQ-VAE "
            "on one embedding, one identifier per item (both token columns then hold it)."
        ),
    )
    codebook_size: int = Field(256, ge=2, le=65536, description="K, codes per codebook.")
    shared_levels: int = Field(2, ge=0, le=8, description="L_m, shared codebook levels (joint).")
    specific_levels: int = Field(
        2, ge=0, le=8, description="L_n, specific levels per side (joint)."
    )
    levels: int = Field(
        3, ge=1, le=8, description="Levels of the plain RQ-VAE of the ablation variants."
    )
    latent_dim: int = Field(32, ge=1, le=1024, description="d, the width of z_s and z_c (Eq. 2).")
    hidden_dims: list[int] = Field(
        default_factory=lambda: [512, 256, 128, 64],
        description="Encoder hidden widths; decoders mirror them (paper: MLPs).",
    )
    beta: float = Field(
        0.25, ge=0.0, le=10.0, description="alpha of Eq. (9), the commitment weight."
    )
    normalize_inputs: bool = Field(
        True,
        description=(
            "Centre each embedding and scale it to unit mean squared norm per dimension before "
            "the encoders (departure: the authors feed raw embeddings). Without it the MSE of "
            "Eq. (8) is dominated by whichever embedding has the larger scale (MiniLM vectors "
            "are unit-norm, SASRec's are not)."
        ),
    )
    # --- residual k-means (method = rqkmeans) ---
    semantic_weight: float = Field(
        0.7,
        gt=0.0,
        lt=1.0,
        description=(
            "rqkmeans, joint: the semantic side's share of the shared levels' input variance. "
            "Each side is centred and scaled to unit total variance, then multiplied by "
            "sqrt(weight) (semantic) or sqrt(1 - weight) (collaborative) before concatenation. "
            "0.7: on amazon-scientific the first code then groups each query's items (modal "
            "share 0.65, against 0.55 at 0.5) while the collaborative side still keeps 57% of "
            "its variance."
        ),
    )
    rqkmeans_iters: int = Field(
        40, ge=1, le=1000, description="rqkmeans: Lloyd iterations per level (after k-means++)."
    )
    balanced: bool = Field(
        False,
        description=(
            "rqkmeans: balanced k-means, every cluster holds at most ceil(N / K) items "
            "(greedy capacity-constrained assignment in each Lloyd step). Spreads items evenly, "
            "which lowers collisions, at some cost in reconstruction."
        ),
    )
    # --- training (method = rqvae) ---
    epochs: int = Field(
        150,
        ge=1,
        le=100000,
        description=(
            "Training epochs. Departure: the authors train 500; 150 fits the stage's CPU budget "
            "(amazon-scientific, 4,385 items: 150 epochs in 150 s on one thread of a busy 2-core "
            "machine), with the rate decayed to zero, dead-code resets and collision checks."
        ),
    )
    batch_size: int = Field(1024, ge=1, le=1 << 20, description="Items per step.")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-5, ge=0.0, le=1.0, description="AdamW weight decay.")
    warmup_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="Share of the steps with linear warm-up of the rate."
    )
    lr_decay: Literal["linear", "constant"] = Field(
        "linear",
        description="After warm-up: linear decay to 0 (the authors' 'linear') or constant.",
    )
    kmeans_iters: int = Field(
        25,
        ge=0,
        le=1000,
        description="k-means iterations for the codebook init on the first batch.",
    )
    dead_code_reset: bool = Field(
        True,
        description=(
            "At the end of each epoch, move codes no item chose to residuals of badly served "
            "items of the last batch (departure, as in SoundStream/Jukebox: keeps codebook usage "
            "high, which lowers collisions)."
        ),
    )
    check_every: int = Field(
        10, ge=1, le=100000, description="Epochs between collision checks (checkpoint choice)."
    )
    checkpoint: Literal["converged", "collisions", "last"] = Field(
        "converged",
        description=(
            "Which weights to keep. 'converged' (departure): among the checks whose "
            "reconstruction loss is within recon_tolerance of the best one seen, the one with "
            "the fewest collisions, so an untrained early epoch can never be kept. "
            "'collisions': the check with the lowest mean of the semantic and collaborative "
            "argmax collision rates (the authors' rule; ties: lower reconstruction loss); on "
            "amazon-scientific it keeps epoch 20 of 150 (80% of the semantic variance "
            "unexplained), and GenSAR trained on those identifiers scored lower on every "
            "validation figure (benchmarks/results/index_methods.md). 'last': end of training."
        ),
    )
    recon_tolerance: float = Field(
        0.05,
        ge=0.0,
        le=10.0,
        description="checkpoint = converged: relative slack over the best reconstruction loss.",
    )
    # --- assignment ---
    sinkhorn_epsilon: float = Field(0.003, gt=0.0, le=10.0, description="Sinkhorn temperature.")
    sinkhorn_iters: int = Field(50, ge=1, le=10000, description="Sinkhorn-Knopp iterations.")
    sinkhorn_rounds: int = Field(20, ge=0, le=1000, description="Re-assignment rounds at most.")
    dedup: Literal["free_code", "extra_level"] = Field(
        "free_code",
        description=(
            "The final step that makes identifiers unique. 'free_code': move each remaining "
            "duplicate to the nearest last-level code its prefix does not use (keeps all "
            "identifiers at L codes). 'extra_level': append one disambiguating code to every "
            "identifier (TIGER). free_code falls back to extra_level if a prefix is full."
        ),
    )
    sinkhorn_free_codes_only: bool = Field(
        False,
        description=(
            "Let a colliding group move only to last-level codes that no other item with the "
            "same prefix holds. Off by default, as in the authors' code; on amazon-scientific "
            "both gave the same rates (0.02% / 0.00% after Sinkhorn), on a noisier stand-in "
            "collaborative embedding 'on' left 0.11% against 0.14%."
        ),
    )
    seed: int = Field(42, ge=0, description="Seed of initialisation, shuffling and k-means.")
    device: str = Field("cpu", description="'cpu', 'cuda', or 'auto' (GPU when visible).")
    threads: int = Field(
        1,
        ge=0,
        le=1024,
        description=(
            "torch CPU threads while this stage runs (0: leave torch's setting). 1 by default: "
            "the model is small, and on a busy 2-core machine two OpenMP threads measured 3-10x "
            "slower than one."
        ),
    )

    @model_validator(mode="after")
    def _check_levels(self) -> IndexConfig:
        if self.variant == "joint" and self.shared_levels + self.specific_levels == 0:
            raise ValueError(
                "the joint identifier needs at least one level (shared_levels + specific_levels >= 1)"
            )
        if not self.hidden_dims or any(width < 1 for width in self.hidden_dims):
            raise ValueError("hidden_dims must be a non-empty list of positive widths")
        return self

    def identifier_length(self) -> int:
        """Codes per identifier before any disambiguation code."""
        if self.variant == "joint":
            return self.shared_levels + self.specific_levels
        return self.levels
