"""Evaluate ranking models on one dataset: shared candidate lists, one metrics module.

Full-catalogue Recall/NDCG@10/20 are computed on a fixed random subset of the
test samples (``full_samples``; the same rows for every model) because ranking
the catalogue by beam search is the expensive part of evaluating a generative
model on a CPU; candidate-list metrics always use every test sample.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gensar.data.dataset import Dataset
from gensar.evaluation import metrics
from gensar.evaluation.candidates import CandidateSet
from gensar.evaluation.evaluate import FULL_PREFIX, EvaluationResult, evaluate_scores
from gensar.evaluation.protocol import evaluate_model
from gensar.families.protocols import Unsupported

_logger = logging.getLogger(__name__)


def full_catalogue_rows(n: int, full_samples: int | None, seed: int = 0) -> np.ndarray:
    """The subset of rows (sorted) used for full-catalogue metrics; all rows when None."""
    if full_samples is None or full_samples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=full_samples, replace=False))


def evaluate_ranker(
    model,
    dataset: Dataset,
    candidates: CandidateSet,
    *,
    full_samples: int | None = 2000,
    seed: int = 0,
    batch_size: int = 256,
    ties: metrics.TieRule = metrics.DEFAULT_TIES,
) -> EvaluationResult:
    """Candidate metrics on every sample, full-catalogue metrics on the shared subset."""
    result = evaluate_model(
        model, dataset, candidates, full_catalogue=False, batch_size=batch_size, ties=ties
    )
    rows = full_catalogue_rows(len(candidates), full_samples, seed)
    subset = CandidateSet(
        candidates.task, candidates.split, candidates.frame[rows], candidates.path
    )
    samples = subset.samples(dataset)
    parts: list[metrics.TargetRanks] = []
    for start in range(0, len(rows), batch_size):
        chunk = samples.slice(start, batch_size)
        stop = start + chunk.height
        targets = subset.target_item_ids[start:stop]
        if hasattr(model, "top_k"):
            try:
                parts.append(metrics.rank_in_topk(model.top_k(chunk, 20), targets))
                continue
            except Unsupported:  # the model ranks the catalogue by score_all instead
                pass
        try:
            scores = model.score_all(chunk)
        except NotImplementedError:  # Unsupported too: candidate metrics only
            return result
        target_cols = np.array([dataset.item_index[t] for t in targets], dtype=np.int64)
        parts.append(metrics.rank_of_target(np.asarray(scores, dtype=np.float64), target_cols))
    full = evaluate_scores(
        model.name, subset, full_ranks=metrics.TargetRanks.concat(parts), ties=ties
    )
    for name, value in full.metrics.items():
        result.metrics[name] = value
    for name, vector in full.per_sample.items():
        if name.startswith(FULL_PREFIX):  # aligned with every sample: NaN outside the subset
            padded = np.full(len(candidates), np.nan)
            padded[rows] = vector
            result.per_sample[name] = padded
    return result


#: Candidate metrics also reported under a model's exact variant (beside its own figure).
EXACT_PREFIX = "exact/"
EXACT_METRICS = ("HR@10", "NDCG@10")


def evaluate_tasks(
    model,
    dataset: Dataset,
    candidate_sets: dict[str, CandidateSet],
    *,
    full_samples: int | None = 2000,
    seed: int = 0,
    ties: metrics.TieRule = metrics.DEFAULT_TIES,
    exact=None,
    log=None,
) -> list[EvaluationResult]:
    """Evaluate one fitted model on each task it supports: the one loop of ``gensar
    evaluate`` and the benchmark. ``exact``: the same model ranking candidate lists
    without pruning (fitted), reported as ``exact/HR@10``, ``exact/NDCG@10``."""
    log = log or _logger.info
    results = []
    for task, cands in candidate_sets.items():
        if task not in model.tasks:
            continue
        log(f"evaluating {model.name} on {task}/{cands.split} ({len(cands):,} lists)")
        result = evaluate_ranker(
            model, dataset, cands, full_samples=full_samples, seed=seed, ties=ties
        )
        if exact is not None:
            extra = evaluate_model(
                exact, dataset, cands, full_catalogue=False, batch_size=256, ties=ties
            )
            for name in EXACT_METRICS:
                result.metrics[EXACT_PREFIX + name] = extra.metrics[name]
                result.per_sample[EXACT_PREFIX + name] = extra.per_sample[name]
        results.append(result)
    return results


def evaluate_models(
    models,
    dataset: Dataset,
    candidate_sets: dict[str, CandidateSet],
    *,
    full_samples: int | None = 2000,
    seed: int = 0,
    run_dir: Path | None = None,
    log=None,
    ties: metrics.TieRule = metrics.DEFAULT_TIES,
) -> list[EvaluationResult]:
    """Fit (load) and evaluate each model on each task it supports."""
    log = log or _logger.info
    results = []
    for model in models:
        model.fit(dataset, run_dir)
        results += evaluate_tasks(
            model, dataset, candidate_sets, full_samples=full_samples, seed=seed, ties=ties, log=log
        )
    return results
