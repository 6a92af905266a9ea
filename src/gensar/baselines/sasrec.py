"""Adapter that lets the project's SASRec (``gensar.embed.collab``) be evaluated like any model.

SASRec reads a user's whole recommendation sequence, not the mixed 5+5 history
window of the generative model, so the adapter hands it
``Dataset.rec_histories(samples)``: each sample's rec clicks strictly before the
sample's time. The recommender is imported lazily, so this module loads even
where ``gensar.embed.collab`` does not exist yet.

Expected of the recommender (duck-typed): ``score_candidates(histories,
candidates) -> [n, n_candidates]`` and ``score_all(histories) -> [n, n_items]``
in the order of its ``item_ids`` (re-ordered here to the dataset's item order
when they differ), higher = better. By default it is loaded with
``SASRecRecommender.load(run_dir / "embeddings/sasrec")``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from gensar import layout
from gensar.baselines.common import ScoresCatalogue, require_fitted
from gensar.data.dataset import Dataset
from gensar.data.schema import RECOMMENDATION
from gensar.errors import DataError

Loader = Callable[[Dataset, Path | None], Any]


SASREC_DIR = Path(layout.EMBEDDINGS) / layout.SASREC


def load_from_run(dataset: Dataset, run_dir: Path | None) -> Any:
    """Default loader: ``SASRecRecommender.load(run_dir / "embeddings/sasrec")``."""
    from gensar.embed.collab import SASRecRecommender

    if run_dir is None:
        raise ValueError("SASRec needs the run directory that holds its trained weights")
    return SASRecRecommender.load(Path(run_dir) / SASREC_DIR)


class SASRecBaseline(ScoresCatalogue):
    """Sequential recommendation by SASRec over each sample's earlier rec clicks."""

    tasks = (RECOMMENDATION,)

    def __init__(
        self,
        recommender: Any = None,
        *,
        loader: Loader = load_from_run,
        max_history: int | None = None,
        name: str = "SASRec",
    ):
        self.name = name
        self.recommender = recommender
        self.loader = loader
        self.max_history = max_history
        self.dataset: Dataset | None = None

    def fit(self, dataset: Dataset, run_dir: Path | None = None) -> None:
        self.dataset = dataset
        if self.recommender is None:
            self.recommender = self.loader(dataset, run_dir)

    def _histories(self, samples: pl.DataFrame) -> list[list[str]]:
        require_fitted(self.dataset, self.name)
        return self.dataset.rec_histories(samples, max_len=self.max_history)

    def score_candidates(self, samples: pl.DataFrame, candidates: list[list[str]]) -> np.ndarray:
        histories = self._histories(samples)
        return np.asarray(self.recommender.score_candidates(histories, candidates))

    def score_all(self, samples: pl.DataFrame) -> np.ndarray:
        """Catalogue scores in the dataset's item order (items SASRec lacks get -inf)."""
        histories = self._histories(samples)
        if not hasattr(self.recommender, "score_all"):
            raise NotImplementedError(f"{self.name} cannot score the whole catalogue")
        scores = np.asarray(self.recommender.score_all(histories))
        own = getattr(self.recommender, "item_ids", None)
        if own is None or list(own) == self.dataset.item_ids:
            return scores
        column = {item: col for col, item in enumerate(own)}
        pairs = [
            (i, column[item]) for i, item in enumerate(self.dataset.item_ids) if item in column
        ]
        if not pairs:
            raise DataError(
                f"{self.name} knows none of the dataset's items",
                where=self.dataset.path,
                fix="evaluate SASRec on the dataset it was trained on",
            )
        ours, theirs = (np.array(side, dtype=np.int64) for side in zip(*pairs, strict=True))
        out = np.full((scores.shape[0], len(self.dataset.item_ids)), -np.inf, dtype=scores.dtype)
        out[:, ours] = scores[:, theirs]
        return out
