"""Ranking metrics: from model scores to the rank of the target, and from ranks to numbers.

Every model, whatever it is, ends in one of three forms for a task and split:

* scores for the candidates of each sample (``[n_samples, n_candidates]``),
* scores for the whole catalogue (``[n_samples, n_items]``),
* a top-k list of item ids per sample (generative models).

Each form is turned into one vector of target ranks (1 = best), and every metric
is computed from ranks alone, so the numbers cannot depend on which model made
them. Ranks are floats: ``inf`` means "not retrieved" (a top-k list without the
target), which every metric scores as 0.

Ties are pessimistic: a target tied with ``m`` other items ranks *below all of
them*. Otherwise a model that gives every candidate the same score (a constant,
or a collapsed network) would be credited with HR@1 = 1 whenever the target
comes first in the list. With pessimistic ties it gets the worst rank instead.

There is exactly one target per sample, so full-catalogue Recall@k equals HR@k
over the catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The paper's candidate-list metrics (Tables 3 and 4).
CANDIDATE_CUTOFFS = {"HR": (1, 5, 10), "NDCG": (5, 10)}
#: Full-catalogue metrics (SPEC section 8).
FULL_CUTOFFS = {"Recall": (10, 20), "NDCG": (10, 20)}
#: The per-sample metric the significance tests pair (see ``significance.py``).
SIGNIFICANCE_METRIC = "NDCG@10"


def rank_of_target(scores: np.ndarray, target_index: np.ndarray | Sequence[int]) -> np.ndarray:
    """Pessimistic 1-based rank of each row's target among that row's scores.

    ``scores`` is ``[n, m]`` (candidates or the whole catalogue) and
    ``target_index[i]`` the column of row ``i``'s target. The rank is
    ``1 + #(other columns scoring >= the target)``, so ties count against the
    target. NaN scores are rejected: they would silently compare false.
    """
    scores = np.asarray(scores)
    target_index = np.asarray(target_index, dtype=np.int64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D [samples, items], got shape {scores.shape}")
    if target_index.shape != (scores.shape[0],):
        raise ValueError(
            f"target_index has shape {target_index.shape}, expected ({scores.shape[0]},)"
        )
    if scores.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    if np.any((target_index < 0) | (target_index >= scores.shape[1])):
        raise ValueError("target_index out of range of the score columns")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; a model must score every candidate")
    rows = np.arange(scores.shape[0])
    target = scores[rows, target_index]
    at_least = (scores >= target[:, None]).sum(axis=1)  # includes the target itself
    return at_least.astype(np.float64)


def rank_in_topk(topk: Sequence[Sequence[str]], targets: Sequence[str]) -> np.ndarray:
    """1-based rank of each target in a model's top-k list; ``inf`` when absent.

    Repeated ids in a list count once (at their first position), so a model
    cannot push the target down, or pad its list, with duplicates.
    """
    if len(topk) != len(targets):
        raise ValueError(f"{len(topk)} top-k lists for {len(targets)} targets")
    ranks = np.full(len(targets), np.inf)
    for row, (items, target) in enumerate(zip(topk, targets, strict=True)):
        seen: set[str] = set()
        for item in items:
            if item in seen:
                continue
            seen.add(item)
            if item == target:
                ranks[row] = len(seen)
                break
    return ranks


def per_sample_hr(ranks: np.ndarray, k: int) -> np.ndarray:
    """1.0 where the target is in the top ``k``, else 0.0 (one value per sample)."""
    return (np.asarray(ranks, dtype=np.float64) <= k).astype(np.float64)


def per_sample_ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` where ``rank <= k``, else 0 (one relevant item: IDCG = 1)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    hit = ranks <= k
    out = np.zeros_like(ranks)
    out[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
    return out


def per_sample_metrics(ranks: np.ndarray, cutoffs: dict[str, tuple[int, ...]]) -> dict:
    """Per-sample vectors named like ``HR@5``; ``HR``/``Recall`` share one definition."""
    out: dict[str, np.ndarray] = {}
    for name, ks in cutoffs.items():
        fn = per_sample_ndcg if name == "NDCG" else per_sample_hr
        for k in ks:
            out[f"{name}@{k}"] = fn(ranks, k)
    return out


def candidate_metrics(ranks: np.ndarray) -> dict[str, float]:
    """HR@1/5/10 and NDCG@5/10 (means over samples) from ranks among the candidates."""
    return _means(per_sample_metrics(ranks, CANDIDATE_CUTOFFS))


def full_catalogue_metrics(ranks: np.ndarray) -> dict[str, float]:
    """Recall@10/20 and NDCG@10/20 (means) from ranks over the whole catalogue."""
    return _means(per_sample_metrics(ranks, FULL_CUTOFFS))


def _means(per_sample: dict[str, np.ndarray]) -> dict[str, float]:
    return {
        name: float(values.mean()) if values.size else float("nan")
        for name, values in per_sample.items()
    }
