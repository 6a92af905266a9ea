"""Popularity baseline: every user gets the most-clicked items (a sanity floor).

Counts come from the recommendation clicks a model may train on
(``Dataset.rec_training_sequences``: each user's rec clicks before their first
validation or test target), so the held-out targets do not inflate their own
counts. Items never clicked tie at zero, and ties rank pessimistically, so this
baseline gets no credit from the order of the candidate list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from gensar.baselines.common import ScoresCatalogue, candidate_rows, require_fitted
from gensar.data.dataset import Dataset
from gensar.data.schema import RECOMMENDATION, SEARCH


class Popularity(ScoresCatalogue):
    """Score = number of training rec clicks of the item, whatever the user or query."""

    tasks = (RECOMMENDATION, SEARCH)

    def __init__(self, name: str = "Popularity"):
        self.name = name
        self.dataset: Dataset | None = None
        self.counts: np.ndarray | None = None

    def fit(self, dataset: Dataset, run_dir: Path | None = None) -> None:
        self.dataset = dataset
        counts = np.zeros(len(dataset.item_ids), dtype=np.float64)
        index = dataset.item_index
        for items in dataset.rec_training_sequences().values():
            for item in items:
                counts[index[item]] += 1
        self.counts = counts

    def score_candidates(self, samples: pl.DataFrame, candidates: list[list[str]]) -> np.ndarray:
        require_fitted(self.counts, self.name)
        return self.counts[candidate_rows(candidates, self.dataset)]

    def score_all(self, samples: pl.DataFrame) -> np.ndarray:
        require_fitted(self.counts, self.name)
        return np.broadcast_to(self.counts, (samples.height, self.counts.size))
