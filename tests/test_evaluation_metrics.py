"""Metrics against hand-computed values, pessimistic ties, and the evaluate_scores wrapper."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from gensar.evaluation.candidates import CANDIDATES_SCHEMA, CandidateSet
from gensar.evaluation.evaluate import evaluate_scores
from gensar.evaluation.metrics import (
    candidate_metrics,
    full_catalogue_metrics,
    per_sample_hr,
    per_sample_ndcg,
    rank_in_topk,
    rank_of_target,
)


def scores_with_target_at(ranks: list[int], width: int = 100, seed: int = 0) -> tuple:
    """Rows of distinct scores where the target (at a random column) has the given rank."""
    rng = np.random.default_rng(seed)
    scores = np.empty((len(ranks), width))
    targets = rng.integers(0, width, size=len(ranks))
    for row, (rank, target) in enumerate(zip(ranks, targets, strict=True)):
        values = np.arange(width, 0, -1, dtype=float)  # 100, 99, ..., 1: value of rank r is 101-r
        others = np.delete(values, rank - 1)
        rng.shuffle(others)
        scores[row] = np.insert(others, target, values[rank - 1])
    return scores, targets


def test_ranks_1_3_7_12_among_100_match_hand_computed_metrics():
    scores, targets = scores_with_target_at([1, 3, 7, 12])
    ranks = rank_of_target(scores, targets)
    assert ranks.tolist() == [1, 3, 7, 12]
    got = candidate_metrics(ranks)
    assert got["HR@1"] == pytest.approx(1 / 4)
    assert got["HR@5"] == pytest.approx(2 / 4)
    assert got["HR@10"] == pytest.approx(3 / 4)
    # NDCG@k = 1/log2(rank+1) when rank <= k: rank 1 -> 1, rank 3 -> 1/2, rank 7 -> 1/3.
    assert got["NDCG@5"] == pytest.approx((1 + 0.5) / 4)
    assert got["NDCG@10"] == pytest.approx((1 + 0.5 + 1 / 3) / 4)
    assert per_sample_ndcg(ranks, 10).tolist() == pytest.approx([1, 0.5, 1 / 3, 0])
    assert per_sample_hr(ranks, 5).tolist() == [1, 1, 0, 0]


def test_ndcg_at_the_cutoff_boundary():
    ranks = np.array([5.0, 6.0, 10.0, 11.0])
    assert per_sample_ndcg(ranks, 5).tolist() == pytest.approx([1 / math.log2(6), 0, 0, 0])
    assert per_sample_ndcg(ranks, 10).tolist() == pytest.approx(
        [1 / math.log2(6), 1 / math.log2(7), 1 / math.log2(11), 0]
    )


def test_ties_rank_the_target_below_every_tied_item():
    constant = np.zeros((1, 100))
    assert rank_of_target(constant, [0]).tolist() == [100]
    assert candidate_metrics(rank_of_target(constant, [0]))["HR@10"] == 0.0
    # Two items above the target, two tied with it, the rest below: rank 5, not 3.
    row = np.array([[9.0, 9.0, 5.0, 5.0, 5.0, 1.0, 1.0]])
    for target in (2, 3, 4):
        assert rank_of_target(row, [target]).tolist() == [5]
    assert rank_of_target(np.array([[-np.inf, -np.inf, 0.0]]), [0]).tolist() == [3]


def test_nan_scores_and_bad_target_index_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        rank_of_target(np.array([[0.1, np.nan]]), [0])
    with pytest.raises(ValueError, match="out of range"):
        rank_of_target(np.zeros((1, 3)), [3])
    with pytest.raises(ValueError, match="shape"):
        rank_of_target(np.zeros((2, 3)), [0])


def test_full_catalogue_recall_equals_hit_rate_over_the_catalogue():
    scores, targets = scores_with_target_at([1, 15, 20, 21, 400], width=500, seed=3)
    ranks = rank_of_target(scores, targets)
    got = full_catalogue_metrics(ranks)
    assert got["Recall@10"] == pytest.approx(1 / 5)
    assert got["Recall@20"] == pytest.approx(3 / 5)
    assert got["NDCG@10"] == pytest.approx(1 / 5)
    assert got["NDCG@20"] == pytest.approx((1 + 1 / math.log2(16) + 1 / math.log2(21)) / 5)


def test_rank_in_topk_counts_first_occurrences_and_misses_score_zero():
    topk = [["a", "b", "t"], ["b", "b", "t"], ["a", "b"], []]
    ranks = rank_in_topk(topk, ["t", "t", "t", "t"])
    assert ranks[:2].tolist() == [3, 2]
    assert np.isinf(ranks[2:]).all()
    got = full_catalogue_metrics(ranks)
    assert got["Recall@10"] == pytest.approx(0.5)
    assert got["NDCG@10"] == pytest.approx((0.5 + 1 / math.log2(3)) / 4)


def make_candidate_set(lists: list[list[str]], targets: list[int]) -> CandidateSet:
    frame = pl.DataFrame(
        {
            "sample_id": list(range(len(lists))),
            "user_id": [f"u{i}" for i in range(len(lists))],
            "target_item_id": [row[t] for row, t in zip(lists, targets, strict=True)],
            "query_id": [None] * len(lists),
            "candidates": lists,
            "target_index": targets,
        },
        schema=CANDIDATES_SCHEMA,
    )
    return CandidateSet("recommendation", "test", frame)


def test_evaluate_scores_combines_candidate_and_full_catalogue_forms():
    cands = make_candidate_set([["a", "b", "c"], ["c", "a", "b"]], [1, 0])
    item_index = {"a": 0, "b": 1, "c": 2}
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.2, 0.1]])  # ranks 2 and (tie) 2
    full = np.array([[0.1, 0.9, 0.3], [0.2, 0.8, 0.7]])  # targets b (rank 1) and c (rank 2)
    result = evaluate_scores("m", cands, scores, full_scores=full, item_index=item_index)
    assert result.per_sample["rank"].tolist() == [2, 2]
    assert result.metrics["HR@1"] == 0.0
    assert result.metrics["NDCG@5"] == pytest.approx(1 / math.log2(3))
    assert result.per_sample["full/rank"].tolist() == [1, 2]
    assert result.metrics["full/NDCG@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    from_topk = evaluate_scores("m", cands, scores, full_topk=[["b"], ["b", "c"]])
    assert from_topk.metrics == result.metrics
    assert result.to_json()["n_samples"] == 2
    with pytest.raises(ValueError, match="shape"):
        evaluate_scores("m", cands, scores[:, :2])
    with pytest.raises(ValueError, match="only one"):
        evaluate_scores("m", cands, scores, full_topk=[[], []], full_ranks=np.ones(2))
