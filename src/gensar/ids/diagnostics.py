"""What the codes mean: agreement of identifier prefixes with item categories and queries.

Generative retrieval works when items that belong together share identifier
prefixes. For each identifier and each depth j, the prefix of the first j codes
groups the items; these measures say how well those groups line up with

* the items' categories (the full category path, one label per item), by the
  normalised mutual information (NMI, arithmetic normalisation:
  I(U; V) / ((H(U) + H(V)) / 2), 0 for independent labels, 1 when one
  determines the other);
* the search queries (each distinct (query, clicked item) pair of the search
  events once), by NMI and by the *modal share*: over the queries with at least
  ``min_group`` distinct items, the mean share of the query's items that hold
  its most common prefix (1: the query's items all sit under one prefix).

Each figure comes with the same figure for random codes of the same sizes: the
prefixes shuffled over the items (the group sizes stay exactly the same), mean
over ``random_draws`` shuffles. NMI has a positive bias with many small groups,
so only the gap to this baseline means anything.

NMI is written here with NumPy (a contingency table and three entropies)
rather than taken from scikit-learn, which is not a dependency of the project.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gensar.data import schema
from gensar.data.dataset import Dataset
from gensar.ids.identifiers import COLLABORATIVE, SEMANTIC, ItemIdentifiers


def _labels(values: np.ndarray) -> np.ndarray:
    """Dense integer labels 0..n-1 of the rows of ``values`` (1-D or 2-D)."""
    values = np.asarray(values)
    if values.ndim == 2:
        if values.shape[1] == 0:
            return np.zeros(values.shape[0], dtype=np.int64)
        return np.unique(values, axis=0, return_inverse=True)[1].reshape(-1)
    return np.unique(values, return_inverse=True)[1].reshape(-1)


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """NMI of two labelings of the same rows (arithmetic normalisation, natural log).

    Two constant labelings carry no information about each other: 0 then, and
    0 when only one of them is constant.
    """
    a, b = _labels(a), _labels(b)
    if len(a) != len(b):
        raise ValueError(f"labelings of {len(a)} and {len(b)} rows")
    if len(a) == 0:
        return 0.0
    ha, hb = _entropy(np.bincount(a)), _entropy(np.bincount(b))
    if ha == 0.0 or hb == 0.0:
        return 0.0
    joint = np.bincount(a * (int(b.max()) + 1) + b)
    mutual = ha + hb - _entropy(joint)
    return float(max(0.0, mutual) / ((ha + hb) / 2))


def modal_share(labels: np.ndarray, groups: Sequence[np.ndarray], min_group: int = 5) -> float:
    """Mean over groups (row indices) of >= ``min_group`` rows of the most common label's share."""
    labels = _labels(labels)
    shares = [np.bincount(labels[g]).max() / len(g) for g in groups if len(g) >= min_group]
    return float(np.mean(shares)) if shares else float("nan")


def query_groups(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (query, item-row) pairs of the search clicks, as two aligned int arrays."""
    events = dataset.events
    pairs = (
        events.filter(events["behaviour"] == schema.SEARCH_ITEM)
        .select("query_id", "item_id")
        .unique(maintain_order=True)
    )
    index = dataset.item_index
    rows = np.array([index[i] for i in pairs["item_id"].to_list()], dtype=np.int64)
    queries = _labels(np.array(pairs["query_id"].to_list(), dtype=object).astype(str))
    return queries, rows


def item_categories(dataset: Dataset) -> np.ndarray:
    """One label per item: its full category path ('' when it has none)."""
    paths = [" > ".join(c or []) for c in dataset.items["categories"].to_list()]
    return _labels(np.array(paths, dtype=object).astype(str))


def _groups(queries: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(queries, kind="stable")
    cuts = np.nonzero(np.diff(queries[order]))[0] + 1
    return [rows[part] for part in np.split(order, cuts)]


def prefix_agreement(
    prefix: np.ndarray,
    categories: np.ndarray,
    queries: np.ndarray,
    query_rows: np.ndarray,
    groups: list[np.ndarray],
    min_group: int,
) -> dict[str, float]:
    """The three measures for one prefix matrix [N, j]."""
    labels = _labels(prefix)
    return {
        "nmi_category": normalized_mutual_information(labels, categories),
        "nmi_query": normalized_mutual_information(labels[query_rows], queries)
        if len(query_rows)
        else float("nan"),
        "modal_share_query": modal_share(labels, groups, min_group),
    }


def identifier_diagnostics(
    dataset: Dataset,
    identifiers: ItemIdentifiers,
    *,
    min_group: int = 5,
    random_draws: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Per identifier and depth: NMI with categories and queries, modal share, and random codes."""
    categories = item_categories(dataset)
    queries, query_rows = query_groups(dataset)
    groups = _groups(queries, query_rows)
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {
        "query_groups": int(sum(1 for g in groups if len(g) >= min_group)),
        "min_group": min_group,
        "random_draws": random_draws,
        "by_level": {},
    }
    for kind in (SEMANTIC, COLLABORATIVE):
        matrix = identifiers.codes_matrix(kind)
        rows: list[dict[str, Any]] = []
        for depth, level in enumerate(identifiers.levels[kind], start=1):
            prefix = _labels(matrix[:, :depth])
            measured = prefix_agreement(prefix, categories, queries, query_rows, groups, min_group)
            draws = [
                prefix_agreement(
                    rng.permutation(prefix), categories, queries, query_rows, groups, min_group
                )
                for _ in range(random_draws)
            ]
            rows.append(
                {
                    "level": level,
                    "depth": depth,
                    "prefixes": int(prefix.max()) + 1 if len(prefix) else 0,
                    **measured,
                    **{
                        f"random_{name}": float(np.mean([d[name] for d in draws]))
                        for name in measured
                    },
                }
            )
        out["by_level"][kind] = rows
    return out
