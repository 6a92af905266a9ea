"""Paired t-tests: scipy's values on ordinary data, defined values (never NaN) on degenerate data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from gensar.evaluation.evaluate import EvaluationResult
from gensar.evaluation.significance import compare_to_best_other, paired_p_value


def test_p_value_matches_scipy_on_a_known_example():
    a = np.array([0.5, 0.63, 0.0, 1.0, 0.39, 0.43, 0.5, 0.0])
    b = np.array([0.39, 0.5, 0.0, 0.63, 0.39, 0.0, 0.43, 0.0])
    expected = stats.ttest_rel(a, b).pvalue
    assert paired_p_value(a, b) == pytest.approx(expected)
    assert 0.0 < expected < 0.1  # a real, non-trivial p-value


def test_degenerate_inputs_give_defined_p_values_without_warnings():
    a = np.array([0.1, 0.5, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert paired_p_value(a, a.copy()) == 1.0
        assert paired_p_value(a + 0.25, a) == 0.0
        assert paired_p_value(np.zeros(5), np.zeros(5)) == 1.0
        assert paired_p_value(np.array([1.0]), np.array([0.0])) == 1.0
    with pytest.raises(ValueError, match="equal"):
        paired_p_value(np.zeros(3), np.zeros(4))


def result(model: str, values: list[float], task: str = "search") -> EvaluationResult:
    vector = np.array(values)
    return EvaluationResult(
        model=model,
        task=task,
        split="test",
        metrics={"NDCG@10": float(vector.mean())},
        sample_ids=np.arange(vector.size),
        per_sample={"NDCG@10": vector},
    )


def test_each_model_is_tested_against_the_best_other_model_of_its_task():
    rng = np.random.default_rng(0)
    base = rng.random(200)
    results = [
        result("best", (base + 0.2).tolist()),
        result("second", (base + rng.normal(0.1, 0.05, 200)).tolist()),
        result("worst", base.tolist()),
        result("alone", base.tolist(), task="recommendation"),
    ]
    comparisons = compare_to_best_other(results)
    assert comparisons["best", "search", "test"].other == "second"
    assert comparisons["second", "search", "test"].other == "best"
    assert comparisons["worst", "search", "test"].other == "best"
    assert ("alone", "recommendation", "test") not in comparisons
    p = comparisons["best", "search", "test"].p_value
    assert p == pytest.approx(
        stats.ttest_rel(results[0].per_sample["NDCG@10"], results[1].per_sample["NDCG@10"]).pvalue
    )
    assert p < 1e-6
    assert comparisons["worst", "search", "test"].p_value == 0.0  # a constant shift of 0.2


def test_models_scored_on_different_samples_cannot_be_paired():
    a, b = result("a", [0.1, 0.2]), result("b", [0.3, 0.4])
    b.sample_ids = np.array([5, 6])
    with pytest.raises(ValueError, match="different samples"):
        compare_to_best_other([a, b])
