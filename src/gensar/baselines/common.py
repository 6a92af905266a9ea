"""Small pieces every baseline needs: query texts of samples, candidate rows, grouping."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from gensar.data.dataset import Dataset
from gensar.errors import DataError
from gensar.families.protocols import Unsupported


def query_texts(samples: pl.DataFrame, dataset: Dataset) -> list[str]:
    """The text of each sample's current query (search samples only)."""
    texts = dataset.query_text
    out = []
    for query_id in samples["query_id"].to_list():
        if query_id is None or query_id not in texts:
            raise DataError(
                f"sample query {query_id!r} is not in queries.parquet",
                where=dataset.path,
                fix="score search samples only, from the dataset they were prepared with",
            )
        out.append(texts[query_id])
    return out


def candidate_rows(candidates: list[list[str]], dataset: Dataset) -> np.ndarray:
    """``[n, n_candidates]`` item rows (dataset item order) of the candidate ids."""
    index = dataset.item_index
    try:
        return np.array([[index[item] for item in row] for row in candidates], dtype=np.int64)
    except KeyError as err:
        raise DataError(
            f"candidate item {err.args[0]!r} is not in the dataset",
            where=dataset.path,
            fix="rebuild the candidates for this dataset",
        ) from None


def group_rows(keys: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    """Each distinct key once with the rows that carry it (queries repeat a lot)."""
    rows: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        rows.setdefault(key, []).append(row)
    for key, positions in rows.items():
        yield key, np.array(positions, dtype=np.int64)


def require_fitted(value: object, name: str) -> None:
    if value is None:
        raise RuntimeError(f"{name} is not fitted: call fit(dataset, run_dir) first")


class ScoresCatalogue:
    """Mixin of the baselines that score every item (``score_all``) instead of a top-k:
    the :class:`~gensar.families.protocols.Ranker` protocol's ``top_k`` is unsupported."""

    def top_k(self, samples: pl.DataFrame, k: int) -> list[list[str]]:
        raise Unsupported("ranks the catalogue with score_all")
