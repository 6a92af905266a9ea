"""From one model's output for one task and split to an :class:`EvaluationResult`.

The caller says which model it was (a name) and hands over plain arrays; nothing
here knows how they were produced. Candidate scores give the paper's metrics on
the shared candidate lists; full-catalogue scores, a top-k list or precomputed
ranks give Recall/NDCG@10/20 over the whole catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gensar.evaluation import metrics
from gensar.evaluation.candidates import CandidateSet


@dataclass
class EvaluationResult:
    """The numbers of one model on one task and split, and the per-sample values behind them.

    ``per_sample`` maps metric names (``HR@5``, ``full/NDCG@10``...) to vectors
    aligned with ``sample_ids``, so two models can be paired sample by sample
    (:mod:`gensar.evaluation.significance`).
    """

    model: str
    task: str
    split: str
    metrics: dict[str, float]
    sample_ids: np.ndarray
    per_sample: dict[str, np.ndarray] = field(repr=False)
    ties: str = metrics.DEFAULT_TIES  #: the tie rule the metrics were computed under

    def to_json(self) -> dict[str, Any]:
        """The summary (no per-sample vectors), for ``results.json``."""
        return {
            "model": self.model,
            "task": self.task,
            "split": self.split,
            "n_samples": int(self.sample_ids.size),
            "ties": self.ties,
            "metrics": {name: round(value, 6) for name, value in self.metrics.items()},
        }


FULL_PREFIX = "full/"


def evaluate_scores(
    model: str,
    candidates: CandidateSet,
    candidate_scores: np.ndarray | None = None,
    *,
    full_scores: np.ndarray | None = None,
    full_topk: Sequence[Sequence[str]] | None = None,
    full_ranks: metrics.TargetRanks | np.ndarray | None = None,
    item_index: dict[str, int] | None = None,
    ties: metrics.TieRule = metrics.DEFAULT_TIES,
) -> EvaluationResult:
    """Metrics of one model on one candidate set.

    ``candidate_scores`` is ``[n, n_candidates]`` in the order of
    ``candidates.candidates`` (higher = better). Full-catalogue metrics come from
    at most one of: ``full_scores`` ``[n, n_items]`` in the dataset's item order
    (needs ``item_index`` to find the targets' columns), ``full_topk`` (ranked
    item ids per sample) or ``full_ranks`` (already computed, e.g. chunk by chunk
    with :func:`metrics.rank_of_target`). Full-catalogue metric names carry the
    prefix ``full/`` (``full/Recall@10``). Every metric is computed under the
    tie rule ``ties`` (see :mod:`gensar.evaluation.metrics`); the per-sample
    ``rank`` is the mean possible rank under that rule.
    """
    metrics.check_ties(ties)
    n = len(candidates)
    values: dict[str, float] = {}
    per_sample: dict[str, np.ndarray] = {}
    if candidate_scores is not None:
        candidate_scores = np.asarray(candidate_scores)
        width = len(candidates.frame["candidates"][0]) if n else 0
        if candidate_scores.shape != (n, width):
            raise ValueError(
                f"{model}: candidate scores have shape {candidate_scores.shape}, "
                f"expected ({n}, {width}) for {candidates.task}/{candidates.split}"
            )
        ranks = metrics.rank_of_target(candidate_scores, candidates.target_index)
        per_sample.update(metrics.per_sample_metrics(ranks, metrics.CANDIDATE_CUTOFFS, ties))
        per_sample["rank"] = ranks.rank(ties)

    given = [x is not None for x in (full_scores, full_topk, full_ranks)]
    if sum(given) > 1:
        raise ValueError("pass only one of full_scores, full_topk and full_ranks")
    if full_scores is not None:
        if item_index is None:
            raise ValueError("full_scores needs item_index (item id -> column)")
        targets = np.array([item_index[t] for t in candidates.target_item_ids], dtype=np.int64)
        full_ranks = metrics.rank_of_target(full_scores, targets)
    elif full_topk is not None:
        full_ranks = metrics.rank_in_topk(full_topk, candidates.target_item_ids)
    if full_ranks is not None:
        full_ranks = metrics.as_target_ranks(full_ranks)
        if len(full_ranks) != n:
            raise ValueError(f"{model}: {len(full_ranks)} full-catalogue ranks for {n} samples")
        full = metrics.per_sample_metrics(full_ranks, metrics.FULL_CUTOFFS, ties)
        for name, vector in full.items():
            per_sample[FULL_PREFIX + name] = vector
        per_sample[FULL_PREFIX + "rank"] = full_ranks.rank(ties)

    for name, vector in per_sample.items():
        if not name.endswith("rank"):
            values[name] = float(vector.mean()) if vector.size else float("nan")
    return EvaluationResult(
        model=model,
        task=candidates.task,
        split=candidates.split,
        metrics=values,
        sample_ids=candidates.sample_ids,
        per_sample=per_sample,
        ties=ties,
    )
