"""GenSAR (Shi et al., 2025): one encoder-decoder generating item identifiers for search
and recommendation, trained on five instruction tasks. The whole family lives here: its
config section (:mod:`.config`), the training stage (:mod:`.stage`, :mod:`.training`),
the instruction tasks (:mod:`.tasks`), the served API (:mod:`.api`) and the evaluation
adapter (:mod:`.ranker`). TIGER is a GenSAR configuration (semantic identifiers,
recommendation only), not a family of its own.

Shared stages it reads: item embeddings (semantic and/or collaborative, by
``index.variant``), the identifiers and the candidate lists (validation).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gensar import layout
from gensar.families.gensar.config import NAME, GenSARSection, upgrade_config

if TYPE_CHECKING:
    from gensar.families.gensar.api import GenSAR
    from gensar.families.gensar.ranking import GenSARRanker
    from gensar.families.gensar.stage import GenSARConfig
    from gensar.run import RunConfig

Config = GenSARSection
#: The folder of a run that holds the trained model (what ``gensar serve`` loads).
MODEL_DIR = layout.MODEL
TITLE = "GenSAR"
BENCHMARK_NOTE = (
    "GenSAR ranks a candidate list by beam search restricted to the candidates; `exact/` "
    "rows rank every candidate by its likelihood (no pruning)."
)
#: The seed a benchmark sets per run.
SEED_FIELD = "train.seed"
#: The model card of a GenSAR model directory.
CARD = "gensar.json"

__all__ = [
    "CARD",
    "MODEL_DIR",
    "NAME",
    "Config",
    "GenSARSection",
    "examples_seen",
    "exact_variant",
    "gensar_config",
    "load",
    "ranker",
    "stages",
    "train",
    "upgrade_config",
    "with_budget",
]


def gensar_config(config: RunConfig) -> GenSARConfig:
    """The training stage's settings of a run (its section plus the run's display name)."""
    from gensar.families.gensar.stage import GenSARConfig

    section: GenSARSection = config.model
    return GenSARConfig(
        tasks=section.tasks, model=section.backbone, train=section.train, name=config.name
    )


def stages(config: RunConfig) -> tuple[str, ...]:
    """The shared stages training reads: the embeddings the index variant joins, the
    identifiers, and the candidate lists (validation)."""
    towers = {
        "joint": ("semantic", "collab"),
        "semantic": ("semantic",),
        "collaborative": ("collab",),
    }[config.index.variant]
    return (*towers, "index", "candidates")


def train(
    dataset_dir: Path, run_dir: Path, config: RunConfig, *, resume: bool = False, log=None
) -> dict[str, Any]:
    """Train GenSAR on the run's identifiers -> ``run_dir/model``."""
    from gensar.families.gensar.stage import train_gensar

    return train_gensar(
        dataset_dir,
        run_dir,
        gensar_config(config),
        candidates_dir=config.candidates_dir or run_dir,
        resume=resume,
        log=log,
        semantic=config.semantic,
    )


def ranker(run_dir: Path, config: RunConfig, name: str | None = None) -> GenSARRanker:
    """The evaluation adapter of the run's model, with the section's decoding knobs."""
    from gensar.families.gensar.ranking import GenSARRanker

    return GenSARRanker.for_run(
        Path(run_dir) / MODEL_DIR, config.model, name=name, batch_size=config.evaluate.batch_size
    )


def load(model_dir: Path) -> GenSAR:
    from gensar.families.gensar.api import GenSAR

    return GenSAR.load(model_dir)


def examples_seen(run_dir: Path) -> int | None:
    """Training examples the run's model went through (its model card)."""
    from gensar.errors import GensarError
    from gensar.families.gensar.directory import GenSARCard

    try:
        return GenSARCard.read(Path(run_dir) / MODEL_DIR).training.get("examples_seen")
    except GensarError:
        return None


def training_seconds(run_dir: Path) -> float | None:
    """Seconds of training the run's model card records."""
    from gensar.errors import GensarError
    from gensar.families.gensar.directory import GenSARCard

    try:
        return GenSARCard.read(Path(run_dir) / MODEL_DIR).training.get("train_seconds")
    except GensarError:
        return None


def with_budget(config: RunConfig, examples: int) -> RunConfig:
    """The run trained on ``examples`` examples (equal-budget comparisons), unless it
    sets its own ``train.examples``."""
    section: GenSARSection = config.model
    if section.train.examples is not None:
        return config
    train_config = section.train.model_copy(update={"examples": examples})
    return config.model_copy(update={"model": section.model_copy(update={"train": train_config})})


def exact_variant(config: RunConfig) -> RunConfig:
    """The same run ranking candidate lists by exact scoring (no beam pruning)."""
    section: GenSARSection = config.model
    return config.model_copy(
        update={"model": section.model_copy(update={"candidate_ranking": "exact"})}
    )
