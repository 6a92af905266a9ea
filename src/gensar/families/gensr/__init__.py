"""GenSR (Zhao et al., 2025): a seq2seq model that reads a task prompt and the user's
history (collaborative soft tokens + title tokens per item) and answers "Yes" or
"No" for one candidate; search and recommendation share the model, separated by
their prompts, and a symmetric InfoNCE aligns the collaborative and semantic
views of the history.

The parts a model-family registry needs (:class:`gensar.families.protocols.FamilyModule`):
``NAME``, ``Config``, ``train(dataset_dir, run_dir, config)``,
``ranker(run_dir, config, name)`` and ``load(model_dir)`` (a Servable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gensar.families.gensr.config import GenSRConfig
from gensar.families.gensr.ranker import GenSRRanker, GenSRServable, LoadedGenSR, load_servable
from gensar.families.gensr.ranker import load as load_model
from gensar.families.gensr.train import MODEL_DIR
from gensar.families.gensr.train import train as _train

NAME = "gensr"
Config = GenSRConfig


TITLE = "GenSR"
#: shared stages the pipeline builds first: SASRec (item table + rec first stage) and
#: the candidate lists (validation during training)
STAGES = ("collab", "candidates")
SEED_FIELD = "seed"
BENCHMARK_NOTE = (
    "GenSR scores each candidate of a list (P(Yes), one encoder pass per sample); its "
    "full-catalogue rows re-rank the top-N of SASRec (recommendation) / BM25 (search)."
)


def section(config: Any) -> GenSRConfig:
    """GenSR's settings from a GenSRConfig, or from a run config whose ``model`` section is
    one (the run's ``candidates`` and ``collab`` sections then override GenSR's own, so
    validation and negatives use the run's lists and its SASRec)."""
    if config is None:
        return GenSRConfig()
    if isinstance(config, GenSRConfig):
        return config
    model = getattr(config, "model", None)
    if not isinstance(model, GenSRConfig):
        raise TypeError(f"expected a GenSR config, got {type(config).__name__}")
    update = {k: getattr(config, k) for k in ("candidates", "collab") if hasattr(config, k)}
    return model.model_copy(update=update)


def train(
    dataset_dir: Path,
    run_dir: Path,
    config: Any = None,
    *,
    log: Any = None,
    progress: bool = True,
    candidates_dir: Path | None = None,
) -> dict:
    """Train GenSR into ``run_dir/gensr`` (SASRec into ``run_dir/embeddings`` if missing);
    validation reads a run config's shared candidate lists (``candidates_dir``) when set."""
    kwargs: dict[str, Any] = {"progress": progress}
    lists = candidates_dir or getattr(config, "candidates_dir", None)
    if lists is not None:
        kwargs["candidates_dir"] = lists
    if log is not None:
        kwargs["log"] = log
    return _train(dataset_dir, run_dir, section(config), **kwargs)


def ranker(run_dir: Path, config: Any = None, name: str | None = None) -> GenSRRanker:
    """The evaluation's Ranker of a trained run (fit() loads ``run_dir/gensr``)."""
    return GenSRRanker(name=name or "GenSR", model_dir=Path(run_dir) / MODEL_DIR)


def load(model_dir: Path) -> GenSRServable:
    """The Servable of a model directory written by :func:`train`."""
    return load_servable(model_dir)


def examples_seen(run_dir: str | Path) -> int | None:
    """Training samples the run's GenSR saw (from its model card)."""
    from gensar.weights import card_summary

    return card_summary(Path(run_dir) / MODEL_DIR).get("examples_seen")


def training_seconds(run_dir: str | Path) -> float | None:
    """Seconds of training (validation excluded) the run's model card records."""
    from gensar.weights import card_summary

    return card_summary(Path(run_dir) / MODEL_DIR).get("seconds")


__all__ = [
    "MODEL_DIR",
    "NAME",
    "STAGES",
    "TITLE",
    "examples_seen",
    "section",
    "training_seconds",
    "Config",
    "GenSRConfig",
    "GenSRRanker",
    "GenSRServable",
    "LoadedGenSR",
    "load",
    "load_model",
    "ranker",
    "train",
]
