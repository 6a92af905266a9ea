"""Paired t-tests between models, as the paper reports them (Tables 3-4: p < 0.05).

The test pairs per-sample **NDCG@10 on the candidate lists** (the paper's headline
metric; ``metrics.SIGNIFICANCE_METRIC``) of two models on the same samples, with
``scipy.stats.ttest_rel`` (two-sided). Each model is tested against the best
*other* model of the same task (highest mean), which for the best model is the
runner-up: exactly the "improvement over the second best" of the paper.

scipy returns NaN (and warns) when the paired differences have no variance. The
answer is known there: identical vectors give p = 1 (no evidence of a
difference), a constant non-zero difference gives p = 0 (the same shift on every
sample). Fewer than two samples give p = 1. "No variance" allows float rounding
noise (a spread below 1e-12 of the differences' size).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

from gensar.evaluation.evaluate import EvaluationResult
from gensar.evaluation.metrics import SIGNIFICANCE_METRIC

#: Paired differences whose spread is below this (relative) are treated as constant:
#: float noise such as (x + 0.25) - x must not turn "the same shift everywhere" into NaN.
_CONSTANT = 1e-12


class Comparison(NamedTuple):
    """One model against the best other model of its task and split."""

    model: str
    other: str
    metric: str
    mean: float
    other_mean: float
    p_value: float


def paired_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test p-value of ``a`` against ``b``; never NaN."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples need equal 1-D shapes, got {a.shape} and {b.shape}")
    diff = a - b
    if diff.size < 2:
        return 1.0
    scale = max(1.0, float(np.abs(diff).max()))
    if float(np.ptp(diff)) <= _CONSTANT * scale:  # no variance: scipy would give NaN
        return 1.0 if abs(float(diff.mean())) <= _CONSTANT * scale else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(stats.ttest_rel(a, b).pvalue)
    return 1.0 if np.isnan(p_value) else p_value


def compare_to_best_other(
    results: Sequence[EvaluationResult], metric: str = SIGNIFICANCE_METRIC
) -> dict[tuple[str, str, str], Comparison]:
    """For every (model, task, split), the test against the best other model there.

    Results are grouped by task and split; within a group the per-sample vectors
    must cover the same samples in the same order (they do when every model
    ranked the same candidate file). Groups with one model are skipped.
    """
    groups: dict[tuple[str, str], list[EvaluationResult]] = {}
    for result in results:
        if metric in result.per_sample:
            groups.setdefault((result.task, result.split), []).append(result)
    out: dict[tuple[str, str, str], Comparison] = {}
    for (task, split), group in groups.items():
        for result in group:
            others = [r for r in group if r.model != result.model]
            if not others:
                continue
            best = max(others, key=lambda r: r.metrics[metric])
            if not np.array_equal(result.sample_ids, best.sample_ids):
                raise ValueError(
                    f"{result.model} and {best.model} were evaluated on different samples "
                    f"for {task}/{split}; rank the same candidate file with both"
                )
            out[result.model, task, split] = Comparison(
                model=result.model,
                other=best.model,
                metric=metric,
                mean=result.metrics[metric],
                other_mean=best.metrics[metric],
                p_value=paired_p_value(result.per_sample[metric], best.per_sample[metric]),
            )
    return out
