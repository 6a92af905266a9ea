"""Metrics against hand-computed values, the three tie rules (against brute force), and the
evaluate_scores wrapper."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest

from gensar.evaluation.candidates import CANDIDATES_SCHEMA, CandidateSet
from gensar.evaluation.evaluate import evaluate_scores
from gensar.evaluation.metrics import (
    TargetRanks,
    candidate_metrics,
    full_catalogue_metrics,
    per_sample_hr,
    per_sample_metrics,
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
    assert ranks.rank().tolist() == [1, 3, 7, 12]
    assert ranks.tied.tolist() == [0, 0, 0, 0]
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


def test_pessimistic_and_optimistic_ties_put_the_target_below_or_above_its_ties():
    constant = np.zeros((1, 100))
    assert rank_of_target(constant, [0]).rank("pessimistic").tolist() == [100]
    assert candidate_metrics(rank_of_target(constant, [0]), "pessimistic")["HR@10"] == 0.0
    assert candidate_metrics(rank_of_target(constant, [0]), "optimistic")["HR@1"] == 1.0
    # Two items above the target, two tied with it, the rest below: ranks 3..5.
    row = np.array([[9.0, 9.0, 5.0, 5.0, 5.0, 1.0, 1.0]])
    for target in (2, 3, 4):
        ranks = rank_of_target(row, [target])
        assert (ranks.better.tolist(), ranks.tied.tolist()) == ([2], [2])
        assert ranks.rank("pessimistic").tolist() == [5]
        assert ranks.rank("optimistic").tolist() == [3]
        assert ranks.rank("expected").tolist() == [4]
    # Candidates a restricted beam pruned come back at -inf: tied with each other.
    pruned = rank_of_target(np.array([[-np.inf, -np.inf, 0.0]]), [0])
    assert (pruned.better.tolist(), pruned.tied.tolist()) == ([1], [1])
    with pytest.raises(ValueError, match="tie rule"):
        candidate_metrics(pruned, "random")


def brute_force(scores: np.ndarray, target: int, cutoffs: dict) -> dict[str, float]:
    """Average each metric over every ordering of the items tied with the target."""
    value = scores[target]
    better = int((scores > value).sum())
    tied = [j for j in range(len(scores)) if scores[j] == value]
    totals: dict[str, float] = {}
    orders = list(itertools.permutations(tied))
    for order in orders:
        rank = better + order.index(target) + 1
        for name, ks in cutoffs.items():
            for k in ks:
                hit = rank <= k
                got = (1 / math.log2(rank + 1) if name == "NDCG" else 1.0) if hit else 0.0
                totals[f"{name}@{k}"] = totals.get(f"{name}@{k}", 0.0) + got
    return {name: total / len(orders) for name, total in totals.items()}


@pytest.mark.parametrize("seed", range(12))
def test_expected_ties_equal_the_average_over_every_ordering_of_the_ties(seed):
    rng = np.random.default_rng(seed)
    width = int(rng.integers(3, 9))
    levels = int(rng.integers(1, 4))  # few distinct values: many ties, up to all tied
    scores = rng.integers(0, levels, size=(6, width)).astype(float)
    targets = rng.integers(0, width, size=6)
    cutoffs = {"HR": (1, 2, 3, 5), "NDCG": (1, 2, 3, 5)}
    got = per_sample_metrics(rank_of_target(scores, targets), cutoffs, "expected")
    for row in range(6):
        want = brute_force(scores[row], int(targets[row]), cutoffs)
        for name, value in want.items():
            assert got[name][row] == pytest.approx(value, abs=1e-12), (row, name)


def test_expected_ties_are_not_the_metric_at_the_mean_rank():
    # Target tied with 2 others at the top: ranks 1, 2, 3 each with probability 1/3.
    ranks = TargetRanks(np.array([0.0]), np.array([2.0]))
    want = (1 + 1 / math.log2(3) + 1 / math.log2(4)) / 3
    assert per_sample_ndcg(ranks, 10).tolist() == pytest.approx([want])
    assert want != pytest.approx(1 / math.log2(2 + 1))  # NDCG at the mean rank 2
    # A cut-off through the tie block: ranks 9..12, two of four inside HR@10.
    block = TargetRanks(np.array([8.0]), np.array([3.0]))
    assert per_sample_hr(block, 10).tolist() == [0.5]


@pytest.mark.parametrize("width", [100, 7])
def test_a_constant_scorer_gets_chance_level_metrics(width):
    constant = np.zeros((5, width))
    got = candidate_metrics(rank_of_target(constant, [0, 1, 2, 3, 4]))
    for k in (1, 5, 10):
        assert got[f"HR@{k}"] == pytest.approx(min(k, width) / width)
    for k in (5, 10):
        chance = sum(1 / math.log2(p + 1) for p in range(1, min(k, width) + 1)) / width
        assert got[f"NDCG@{k}"] == pytest.approx(chance)
    if width == 100:
        assert (got["HR@1"], got["HR@10"]) == pytest.approx((0.01, 0.10))


def test_not_retrieved_scores_zero_under_every_rule():
    absent = rank_in_topk([["a"]], ["t"])
    for ties in ("expected", "pessimistic", "optimistic"):
        assert candidate_metrics(absent, ties) == {k: 0.0 for k in candidate_metrics(absent)}


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
    assert ranks.rank()[:2].tolist() == [3, 2]
    assert np.isinf(ranks.rank()[2:]).all()
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
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.2, 0.1]])  # ranks 2 and (tie) 1 or 2
    full = np.array([[0.1, 0.9, 0.3], [0.2, 0.8, 0.7]])  # targets b (rank 1) and c (rank 2)
    result = evaluate_scores("m", cands, scores, full_scores=full, item_index=item_index)
    assert result.ties == "expected" and result.to_json()["ties"] == "expected"
    assert result.per_sample["rank"].tolist() == [2, 1.5]
    assert result.metrics["HR@1"] == 0.25
    assert result.metrics["NDCG@5"] == pytest.approx((3 / math.log2(3) + 1) / 4)
    worst = evaluate_scores("m", cands, scores, ties="pessimistic")
    assert worst.per_sample["rank"].tolist() == [2, 2]
    assert worst.metrics["HR@1"] == 0.0
    assert worst.metrics["NDCG@5"] == pytest.approx(1 / math.log2(3))
    assert result.per_sample["full/rank"].tolist() == [1, 2]
    assert result.metrics["full/NDCG@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    from_topk = evaluate_scores("m", cands, scores, full_topk=[["b"], ["b", "c"]])
    assert from_topk.metrics == result.metrics
    assert result.to_json()["n_samples"] == 2
    with pytest.raises(ValueError, match="shape"):
        evaluate_scores("m", cands, scores[:, :2])
    with pytest.raises(ValueError, match="only one"):
        evaluate_scores("m", cands, scores, full_topk=[[], []], full_ranks=np.ones(2))
