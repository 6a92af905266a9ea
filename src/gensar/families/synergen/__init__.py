"""SynerGen (Gao et al., 2025): one decoder-only Transformer over users' mixed behaviour
sequences for personalised search and recommendation, retrieval and ranking.

The family module of the registry (:class:`gensar.families.protocols.FamilyModule`):

* ``NAME`` = ``"synergen"`` and ``Config`` (:class:`SynerGenConfig`, the ``synergen``
  family section);
* ``train(dataset_dir, run_dir, config)`` writes ``run_dir/synergen``;
* ``ranker(run_dir, config, name)`` is the evaluation's :class:`SynerGenRanker`
  of that run (ranking head on candidate lists, retrieval head on the catalogue);
* ``load(model_dir)`` is the :class:`SynerGenServable` that ``gensar serve`` and
  ``gensar predict`` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gensar.families.synergen.config import SynerGenConfig
from gensar.families.synergen.ranker import LoadedSynerGen, SynerGenRanker, load_model
from gensar.families.synergen.serve import SynerGenServable, load
from gensar.families.synergen.train import MODEL_DIR
from gensar.families.synergen.train import train as _train

NAME = "synergen"
Config = SynerGenConfig
TITLE = "SynerGen"
#: shared stages built first: the MiniLM item vectors (its semantic inputs) and the
#: candidate lists the evaluation ranks
STAGES = ("semantic", "candidates")
SEED_FIELD = "seed"
BENCHMARK_NOTE = (
    "SynerGen scores candidate lists with the head chosen on validation (candidate_scorer, "
    "per-task popularity correction) and ranks the whole catalogue by its retrieval head."
)


def section(config: Any) -> SynerGenConfig:
    """SynerGen's settings from a SynerGenConfig, or from a run config whose ``model``
    section is one."""
    if config is None:
        return SynerGenConfig()
    if isinstance(config, SynerGenConfig):
        return config
    model = getattr(config, "model", None)
    if not isinstance(model, SynerGenConfig):
        raise TypeError(f"expected a SynerGen config, got {type(config).__name__}")
    return model


def train(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: Any = None,
    *,
    log: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Train SynerGen into ``run_dir/synergen`` (options: ``semantic``, ``resume``,
    ``progress``, ``log`` as :func:`gensar.families.synergen.train.train`). From a run
    config, its ``semantic`` section gives the MiniLM settings of the item and query
    vectors (the run's semantic stage)."""
    if config is not None and not isinstance(config, SynerGenConfig):
        semantic = getattr(config, "semantic", None)
        if semantic is not None:
            options.setdefault("semantic", semantic)
    if log is not None:
        options["log"] = log
    return _train(dataset_dir, run_dir, section(config), **options)


def examples_seen(run_dir: str | Path) -> int | None:
    """Training targets the run's SynerGen saw (from its model card)."""
    from gensar.weights import card_summary

    return card_summary(Path(run_dir) / MODEL_DIR).get("examples_seen")


def training_seconds(run_dir: str | Path) -> float | None:
    """Seconds of the training loop (its per-epoch validation included, text encoding
    excluded) the run's model card records."""
    from gensar.weights import card_summary

    return card_summary(Path(run_dir) / MODEL_DIR).get("seconds")


def ranker(run_dir: str | Path, config: Any = None, name: str | None = None):
    """The :class:`SynerGenRanker` of a trained run (``run_dir/synergen``)."""
    config = section(config)
    return SynerGenRanker(
        name=name or TITLE,
        model_dir=Path(run_dir) / MODEL_DIR,
        candidate_scorer=config.candidate_scorer,
        popularity_correction={
            "recommendation": config.rec_popularity_correction,
            "search": config.search_popularity_correction,
        },
    )


__all__ = [
    "MODEL_DIR",
    "NAME",
    "Config",
    "LoadedSynerGen",
    "SynerGenConfig",
    "SynerGenRanker",
    "SynerGenServable",
    "load",
    "load_model",
    "ranker",
    "section",
    "training_seconds",
    "train",
]
