"""BM25 search baseline: the query's BM25 score of each item's text.

The same index (bm25s, Lucene scoring, k1=0.9, b=0.4) as the one that picks the
search negatives, so on the 100-candidate lists this baseline is at its worst by
construction: the negatives are BM25's own best matches. Its full-catalogue
numbers are the meaningful ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from gensar.baselines.common import (
    ScoresCatalogue,
    candidate_rows,
    group_rows,
    query_texts,
    require_fitted,
)
from gensar.data.dataset import Dataset
from gensar.data.schema import SEARCH
from gensar.evaluation.bm25_index import LUCENE_B, LUCENE_K1, BM25Index


class BM25Search(ScoresCatalogue):
    """Lexical search over item text; ignores the user."""

    tasks = (SEARCH,)

    def __init__(self, k1: float = LUCENE_K1, b: float = LUCENE_B, name: str = "BM25"):
        self.name = name
        self.k1 = k1
        self.b = b
        self.dataset: Dataset | None = None
        self.index: BM25Index | None = None

    def fit(self, dataset: Dataset, run_dir: Path | None = None) -> None:
        self.dataset = dataset
        self.index = BM25Index(dataset.items["text"].to_list(), k1=self.k1, b=self.b)

    def score_candidates(self, samples: pl.DataFrame, candidates: list[list[str]]) -> np.ndarray:
        require_fitted(self.index, self.name)
        rows = candidate_rows(candidates, self.dataset)
        out = np.empty(rows.shape, dtype=np.float32)
        for text, where in group_rows(query_texts(samples, self.dataset)):
            out[where] = self.index.scores(text)[rows[where]]
        return out

    def score_all(self, samples: pl.DataFrame) -> np.ndarray:
        require_fitted(self.index, self.name)
        out = np.empty((samples.height, self.index.n_docs), dtype=np.float32)
        for text, where in group_rows(query_texts(samples, self.dataset)):
            out[where] = self.index.scores(text)
        return out
