"""The Dense (MiniLM) baseline as a family (:class:`gensar.baselines.DenseRetrieval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from gensar.baselines import DenseRetrieval
from gensar.config import Section
from gensar.families.baselines import no_training, not_served

NAME = "dense"
TRAINS = False
READS = ("semantic",)  # the shared semantic embeddings, when a run built them


class Config(Section):
    family: Literal["dense"] = "dense"


train = no_training
load = not_served("Dense (MiniLM)")


def ranker(run_dir: Path, config: Any, name: str | None = None) -> DenseRetrieval:
    return DenseRetrieval(name=name) if name else DenseRetrieval()
