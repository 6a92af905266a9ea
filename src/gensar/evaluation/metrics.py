"""Ranking metrics: from model scores to where the target stands, and from there to numbers.

Every model, whatever it is, ends in one of three forms for a task and split:

* scores for the candidates of each sample (``[n_samples, n_candidates]``),
* scores for the whole catalogue (``[n_samples, n_items]``),
* a top-k list of item ids per sample (generative models).

Each form is turned into one :class:`TargetRanks`: per sample, how many items
score *strictly better* than the target (``better``) and how many *tie* with it
(``tied``, the target itself not counted). Every metric is computed from those
two numbers alone, so the numbers cannot depend on which model made them.
``better = inf`` means "not retrieved" (a top-k list without the target), which
every metric scores as 0.

Ties (``evaluate.ties``, written into every results header):

* ``expected`` (default): the exact expectation of the metric when the target's
  ties are put in a uniformly random order. The target's rank is then uniform on
  ``better+1 .. better+tied+1``, so for ``n = tied + 1`` positions

      E[HR@k]   = #{p in that range : p <= k} / n
      E[NDCG@k] = (1/n) * sum_{p in that range, p <= k} 1 / log2(p + 1)

  (the metric averaged over the positions, *not* the metric at the mean rank,
  which NDCG's concavity would bias). A constant scorer lands exactly at chance:
  HR@10 = 10/100 on 100-candidate lists. Nobody gains or loses from coarse
  scores: BM25's equal scores for items with the same text length, Popularity's
  equal counts, and a beam-restricted ranking that leaves the candidates it
  pruned tied at ``-inf`` at the bottom are all counted fairly.
* ``pessimistic``: the target ranks below all its ties (rank ``better+tied+1``),
  the previous rule of this project; coarse scorers are under-counted.
* ``optimistic``: above all its ties (rank ``better+1``); a constant scorer would
  get HR@1 = 1.

There is exactly one target per sample, so full-catalogue Recall@k equals HR@k
over the catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

#: The paper's candidate-list metrics (Tables 3 and 4).
CANDIDATE_CUTOFFS = {"HR": (1, 5, 10), "NDCG": (5, 10)}
#: Full-catalogue metrics (SPEC section 8).
FULL_CUTOFFS = {"Recall": (10, 20), "NDCG": (10, 20)}
#: The per-sample metric the significance tests pair (see ``significance.py``).
SIGNIFICANCE_METRIC = "NDCG@10"

TieRule = Literal["expected", "pessimistic", "optimistic"]
TIE_RULES: tuple[str, ...] = get_args(TieRule)
DEFAULT_TIES: TieRule = "expected"
#: One line per rule, for results headers.
TIE_RULE_TEXT = {
    "expected": "expected (each metric is its exact expectation when the target's "
    "tied items are ordered uniformly at random; a constant scorer gets chance level)",
    "pessimistic": "pessimistic (the target ranks below every item it ties with)",
    "optimistic": "optimistic (the target ranks above every item it ties with)",
}


@dataclass(frozen=True)
class TargetRanks:
    """Where each sample's target stands: items strictly better, and items tied with it."""

    better: np.ndarray  #: float [n]; ``inf`` = not retrieved
    tied: np.ndarray  #: float [n]; other items with exactly the target's score

    @classmethod
    def from_ranks(cls, ranks: np.ndarray | Sequence[float]) -> TargetRanks:
        """Untied 1-based ranks (``inf`` = absent), e.g. positions in a top-k list."""
        ranks = np.asarray(ranks, dtype=np.float64)
        return cls(ranks - 1.0, np.zeros_like(ranks))

    @classmethod
    def concat(cls, parts: Sequence[TargetRanks]) -> TargetRanks:
        if not parts:
            return cls(np.zeros(0), np.zeros(0))
        return cls(
            np.concatenate([p.better for p in parts]), np.concatenate([p.tied for p in parts])
        )

    def take(self, rows: np.ndarray) -> TargetRanks:
        return TargetRanks(self.better[rows], self.tied[rows])

    def __len__(self) -> int:
        return int(self.better.shape[0])

    def rank(self, ties: TieRule = DEFAULT_TIES) -> np.ndarray:
        """The 1-based rank under a tie rule (``expected``: the mean of the possible ranks)."""
        check_ties(ties)
        if ties == "optimistic":
            return self.better + 1.0
        if ties == "pessimistic":
            return self.better + self.tied + 1.0
        return self.better + self.tied / 2.0 + 1.0


def check_ties(ties: str) -> None:
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; use one of {', '.join(TIE_RULES)}")


def as_target_ranks(ranks: TargetRanks | np.ndarray | Sequence[float]) -> TargetRanks:
    """Accept a :class:`TargetRanks` or plain untied 1-based ranks."""
    if isinstance(ranks, TargetRanks):
        return ranks
    return TargetRanks.from_ranks(ranks)


def rank_of_target(scores: np.ndarray, target_index: np.ndarray | Sequence[int]) -> TargetRanks:
    """How many columns beat, and how many tie with, each row's target column.

    ``scores`` is ``[n, m]`` (candidates or the whole catalogue) and
    ``target_index[i]`` the column of row ``i``'s target. ``-inf`` scores
    (e.g. candidates a restricted beam pruned) tie with each other like any
    equal scores. NaN scores are rejected: they would silently compare false.
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
        return TargetRanks(np.zeros(0), np.zeros(0))
    if np.any((target_index < 0) | (target_index >= scores.shape[1])):
        raise ValueError("target_index out of range of the score columns")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; a model must score every candidate")
    rows = np.arange(scores.shape[0])
    target = scores[rows, target_index][:, None]
    better = (scores > target).sum(axis=1)
    tied = (scores == target).sum(axis=1) - 1  # the target ties with itself
    return TargetRanks(better.astype(np.float64), tied.astype(np.float64))


def rank_in_topk(topk: Sequence[Sequence[str]], targets: Sequence[str]) -> TargetRanks:
    """Position of each target in a model's top-k list (no ties); ``inf`` when absent.

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
    return TargetRanks.from_ranks(ranks)


def _positions(ranks: TargetRanks, k: int, ties: TieRule) -> tuple[np.ndarray, ...]:
    """(first, last, n): the target's possible ranks under ``ties``, clipped to ``k``.

    ``first..last`` are the possible ranks that lie within the cut-off (empty
    when ``last < first``) and ``n`` the number of possible ranks in all.
    """
    check_ties(ties)
    better = np.asarray(ranks.better, dtype=np.float64)
    tied = np.asarray(ranks.tied, dtype=np.float64)
    if ties == "optimistic":
        low, high = better + 1, better + 1
    elif ties == "pessimistic":
        low, high = better + tied + 1, better + tied + 1
    else:
        low, high = better + 1, better + tied + 1
    n = tied + 1 if ties == "expected" else np.ones_like(tied)
    last = np.minimum(high, k)
    return low, last, n


def per_sample_hr(
    ranks: TargetRanks | np.ndarray, k: int, ties: TieRule = DEFAULT_TIES
) -> np.ndarray:
    """Probability that the target is in the top ``k`` (1/0 without ties), per sample."""
    low, last, n = _positions(as_target_ranks(ranks), k, ties)
    inside = np.clip(last - low + 1, 0, None)
    inside = np.where(np.isfinite(low), inside, 0.0)
    return inside / n


def per_sample_ndcg(
    ranks: TargetRanks | np.ndarray, k: int, ties: TieRule = DEFAULT_TIES
) -> np.ndarray:
    """Expected ``1 / log2(rank + 1)`` over the target's possible ranks within ``k``.

    One relevant item, so IDCG = 1. With ``D[j] = sum_{p<=j} 1/log2(p+1)`` the sum
    over possible ranks ``low..last`` is ``D[last] - D[low-1]``.
    """
    low, last, n = _positions(as_target_ranks(ranks), k, ties)
    cumulative = np.concatenate(([0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))))
    hit = np.isfinite(low) & (low <= k)
    out = np.zeros(low.shape, dtype=np.float64)
    first = low[hit].astype(np.int64)
    stop = last[hit].astype(np.int64)
    out[hit] = (cumulative[stop] - cumulative[first - 1]) / n[hit]
    return out


def per_sample_metrics(
    ranks: TargetRanks | np.ndarray,
    cutoffs: dict[str, tuple[int, ...]],
    ties: TieRule = DEFAULT_TIES,
) -> dict:
    """Per-sample vectors named like ``HR@5``; ``HR``/``Recall`` share one definition."""
    ranks = as_target_ranks(ranks)
    out: dict[str, np.ndarray] = {}
    for name, ks in cutoffs.items():
        fn = per_sample_ndcg if name == "NDCG" else per_sample_hr
        for k in ks:
            out[f"{name}@{k}"] = fn(ranks, k, ties)
    return out


def candidate_metrics(
    ranks: TargetRanks | np.ndarray, ties: TieRule = DEFAULT_TIES
) -> dict[str, float]:
    """HR@1/5/10 and NDCG@5/10 (means over samples) from ranks among the candidates."""
    return _means(per_sample_metrics(ranks, CANDIDATE_CUTOFFS, ties))


def full_catalogue_metrics(
    ranks: TargetRanks | np.ndarray, ties: TieRule = DEFAULT_TIES
) -> dict[str, float]:
    """Recall@10/20 and NDCG@10/20 (means) from ranks over the whole catalogue."""
    return _means(per_sample_metrics(ranks, FULL_CUTOFFS, ties))


def _means(per_sample: dict[str, np.ndarray]) -> dict[str, float]:
    return {
        name: float(values.mean()) if values.size else float("nan")
        for name, values in per_sample.items()
    }
