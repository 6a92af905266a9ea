"""The BM25 baseline as a family (:class:`gensar.baselines.BM25Search`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from gensar.baselines import BM25Search
from gensar.config import Section
from gensar.families.baselines import no_training, not_served

NAME = "bm25"
TRAINS = False


class Config(Section):
    family: Literal["bm25"] = "bm25"


train = no_training
load = not_served("BM25")


def ranker(run_dir: Path, config: Any, name: str | None = None) -> BM25Search:
    return BM25Search(name=name) if name else BM25Search()
