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


def train(dataset_dir: Path, run_dir: Path, config: Any = None, **kwargs) -> dict:
    """Train GenSR into ``run_dir/gensr`` (SASRec into ``run_dir/embeddings`` if missing)."""
    return _train(dataset_dir, run_dir, config, **kwargs)


def ranker(run_dir: Path, config: Any = None, name: str = "GenSR") -> GenSRRanker:
    """The evaluation's Ranker of a trained run (fit() loads ``run_dir/gensr``)."""
    return GenSRRanker(name=name, model_dir=Path(run_dir) / MODEL_DIR)


def load(model_dir: Path) -> GenSRServable:
    """The Servable of a model directory written by :func:`train`."""
    return load_servable(model_dir)


__all__ = [
    "MODEL_DIR",
    "NAME",
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
