"""A model family that lives only in the tests: the seam's "must show".

Most-clicked items, trained by counting the training rec clicks; it ranks
candidate lists and the whole catalogue, and it serves recommend and search
(title words) but declares query suggestion unsupported. It is registered from
the tests with ``gensar.families.registry.register("toy", toy_family)``; no module
of the package names it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field

from gensar.config import Section
from gensar.data import load_dataset
from gensar.data.dataset import Dataset
from gensar.data.schema import RECOMMENDATION, SEARCH
from gensar.families.protocols import HistoryEntry, Prediction, Unsupported
from gensar.families.registry import write_family_marker

NAME = "toy"
MODEL_DIR = "model"


class Config(Section):
    family: Literal["toy"] = "toy"
    smoothing: float = Field(1.0, ge=0, description="Added to every item's count.")


def train(dataset_dir: Path, run_dir: Path, config: Any) -> None:
    dataset = load_dataset(dataset_dir)
    counts = dict.fromkeys(dataset.item_ids, config.model.smoothing)
    for items in dataset.rec_training_sequences().values():
        for item in items:
            counts[item] += 1
    titles = dict(zip(dataset.item_ids, dataset.items["title"].to_list(), strict=True))
    out = Path(run_dir) / MODEL_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / "toy.json").write_text(json.dumps({"counts": counts, "titles": titles}))
    write_family_marker(out, NAME)


class ToyModel:
    """The Servable of a toy model directory."""

    def __init__(self, model_dir: Path):
        data = json.loads((Path(model_dir) / "toy.json").read_text())
        self.name = "Toy"
        self.counts: dict[str, float] = data["counts"]
        self.titles: dict[str, str] = data["titles"]
        self.item_ids = list(self.counts)
        self.item_index = {item: n for n, item in enumerate(self.item_ids)}

    def _ranked(self, allowed, k: int) -> list[Prediction]:
        best = sorted(allowed, key=lambda i: (-self.counts[i], i))[:k]
        return [Prediction(i, float(self.counts[i]), self.titles.get(i)) for i in best]

    def recommend_batch(
        self, histories: Sequence[Sequence[HistoryEntry]], k: int
    ) -> list[list[Prediction]]:
        out = []
        for history in histories:
            seen = {e.item_id for e in history}
            out.append(self._ranked([i for i in self.item_ids if i not in seen], k))
        return out

    def search_batch(self, histories, queries: Sequence[str], k: int) -> list[list[Prediction]]:
        out = []
        for query in queries:
            words = set(query.lower().split())
            hits = [i for i in self.item_ids if words & set((self.titles[i] or "").lower().split())]
            out.append(self._ranked(hits or self.item_ids, k))
        return out

    def suggest_queries_batch(self, histories, k: int) -> list[list[Prediction]]:
        raise Unsupported("the toy family does not suggest queries")

    def title(self, item_id: str) -> str | None:
        return self.titles.get(item_id)


def load(model_dir: Path) -> ToyModel:
    return ToyModel(model_dir)


class ToyRanker:
    tasks = (RECOMMENDATION, SEARCH)

    def __init__(self, run_dir: Path, name: str | None):
        self.run_dir = Path(run_dir)
        self.name = name or "Toy"
        self.scores: np.ndarray | None = None
        self.index: dict[str, int] = {}

    def fit(self, dataset: Dataset, run_dir: Path | None = None) -> None:
        model = load(self.run_dir / MODEL_DIR)
        self.index = dataset.item_index
        self.scores = np.array([model.counts[i] for i in dataset.item_ids], dtype=np.float64)

    def score_candidates(self, samples: pl.DataFrame, candidates: list[list[str]]) -> np.ndarray:
        return np.array([[self.scores[self.index[i]] for i in row] for row in candidates])

    def score_all(self, samples: pl.DataFrame) -> np.ndarray:
        return np.broadcast_to(self.scores, (samples.height, self.scores.size))

    def top_k(self, samples: pl.DataFrame, k: int) -> list[list[str]]:
        raise Unsupported("ranks the catalogue with score_all")


def ranker(run_dir: Path, config: Any, name: str | None = None) -> ToyRanker:
    return ToyRanker(run_dir, name)
