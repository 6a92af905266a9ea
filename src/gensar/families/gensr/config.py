"""Settings of GenSR (the ``gensr:`` section).

GenSR (Zhao et al., 2025) judges one candidate at a time: a seq2seq backbone reads
a task prompt and the user's history and answers "Yes" or "No" for the
candidate; the score is P("Yes") at the first answer step. The defaults are
sized for a 2-core CPU and a catalogue of a few thousand items
(amazon-scientific); the authors' values (flan-t5-base, lr 1e-4, batch 200) are
noted where ours differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from gensar.config import Section
from gensar.embed.sasrec import SASRecConfig
from gensar.evaluation.candidates import CandidateConfig
from gensar.model.backbone import ModelConfig
from gensar.tasks.vocab import VocabConfig


def _default_backbone() -> ModelConfig:
    # The tiny T5 preset, narrowed to 2+2 layers and d_ff 512: the CPU budget of the
    # benchmark (~30 min, one thread) buys a few epochs of this size, none of TIGER's.
    return ModelConfig(preset="tiny", num_layers=2, num_decoder_layers=2, num_heads=4, d_ff=512)


class GenSRConfig(Section):
    """Every GenSR setting; ablations are single overrides (see the README)."""

    family: Literal["gensr"] = Field("gensr", description="Registry name of this family.")
    backbone: ModelConfig = Field(
        default_factory=_default_backbone,
        description="Seq2seq backbone: tiny (from scratch, the project's vocabulary), "
        "minilm (MiniLM-warm-started encoder-decoder) or pretrained (any local checkpoint).",
    )
    vocab: VocabConfig = Field(
        default_factory=lambda: VocabConfig(size=5000),
        description="Vocabulary of the from-scratch presets (learned from item texts and queries).",
    )
    # ---- inputs
    collaborative: bool = Field(
        True,
        description="Collaborative soft tokens (false: the 'without collaborative tokens' ablation).",
    )
    semantic: bool = Field(
        True, description="Title tokens (false: the 'without semantic tokens' ablation)."
    )
    collab_path: Path | None = Field(
        None,
        description="Item-embedding file (ItemEmbeddings) of the collaborative tokens; default "
        "RUN/embeddings/collab.safetensors (the SASRec item table, trained when missing).",
    )
    collab: SASRecConfig = Field(
        default_factory=SASRecConfig,
        description="The SASRec trained when the run has none (item table + first stage).",
    )
    collab_trainable: bool = Field(
        False,
        description="Fine-tune the collaborative item table (default frozen, as the authors).",
    )
    task_prompts: bool = Field(
        True,
        description="One prompt per task (false: one shared prompt for both, the ablation).",
    )
    history_title_tokens: int = Field(
        10, ge=1, le=64, description="First title tokens of each history item (authors: 10)."
    )
    candidate_title_tokens: int = Field(
        10, ge=1, le=64, description="First title tokens of the candidate (authors: 10)."
    )
    max_history: int = Field(
        15, ge=1, le=200, description="Newest history entries read (the dataset's 5+5 window)."
    )
    max_query_tokens: int = Field(16, ge=1, le=128, description="Tokens of a query text.")
    # ---- losses
    negatives: int = Field(
        4,
        ge=1,
        le=1000,
        description="Sampled negatives per positive (rec: popularity, search: BM25 top of the "
        "query, as in the evaluation lists).",
    )
    infonce_weight: float = Field(
        0.01, ge=0.0, description="Weight of the symmetric InfoNCE term (0: the ablation)."
    )
    infonce_temperature: float = Field(0.07, gt=0.0, description="InfoNCE temperature.")
    candidates: CandidateConfig = Field(
        default_factory=CandidateConfig,
        description="Validation lists and the BM25 settings of the search negatives "
        "(the evaluation's own settings).",
    )
    # ---- training
    lr: float = Field(
        3e-4,
        gt=0.0,
        le=1.0,
        description="AdamW learning rate (authors: 1e-4, pretrained T5). 3e-4 beat 1e-3 on "
        "validation (benchmarks/results/gensr_amazon-scientific*.md): 1e-3 peaked after 4.8k "
        "samples and then lost recommendation quality.",
    )
    warmup_steps: int = Field(200, ge=0, description="Linear warm-up steps (authors: 200).")
    weight_decay: float = Field(1e-3, ge=0.0, le=1.0, description="AdamW weight decay.")
    batch_size: int = Field(
        32, ge=1, le=65536, description="Samples per step (each with 1 + negatives candidates)."
    )
    epochs: int = Field(20, ge=1, le=100000, description="Upper bound on epochs.")
    max_minutes: float | None = Field(
        None, gt=0.0, description="Stop training after this many minutes (None: no limit)."
    )
    eval_every: int = Field(200, ge=1, description="Validate every this many steps.")
    eval_samples: int = Field(
        200, ge=1, description="Validation lists per task (a fixed seeded subset)."
    )
    patience: int = Field(4, ge=1, description="Stop after this many validations without gain.")
    score_batch: int = Field(
        1,
        ge=1,
        le=4096,
        description="Samples whose candidates are scored in one forward pass (1: the shared "
        "history keys and values are a view, not a copy; fastest on a CPU).",
    )
    rerank_top_n: int = Field(
        100,
        ge=1,
        description="Full-catalogue ranking and serving re-rank this many items of a first "
        "stage (SASRec for recommendation, BM25 for search).",
    )
    seed: int = Field(0, ge=0, description="Seed of initialisation, shuffling, sampling.")
    device: str = Field("auto", description="auto (cuda if visible, else cpu), cpu, cuda, ...")
    threads: int = Field(
        1, ge=0, le=256, description="torch CPU threads (0: torch's default; 1 on a shared CPU)."
    )

    @model_validator(mode="after")
    def _check(self) -> GenSRConfig:
        if not (self.collaborative or self.semantic):
            raise ValueError("collaborative and semantic cannot both be false")
        if self.backbone.preset == "pretrained" and self.backbone.pretrained_path is None:
            raise ValueError("backbone.preset=pretrained needs backbone.pretrained_path")
        return self
