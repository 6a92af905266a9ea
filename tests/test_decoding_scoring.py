"""Exact candidate scoring equals stock teacher-forced log-likelihood, for T5 and bert2bert."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_decoding_beam import (  # noqa: F401 - one_thread is an autouse fixture
    SPECIAL,
    one_thread,
    random_catalogue,
    random_inputs,
    tiny_bert2bert,
    tiny_t5,
)

from gensar.decoding import CandidateScores, score_candidates
from gensar.decoding.reference import stock_candidate_scores
from gensar.errors import GensarError


@pytest.fixture(scope="module")
def catalogue():
    return random_catalogue(80, length=4, seed=7)


def candidate_lists(catalogue, sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.choice(catalogue.items, size, replace=False).tolist() for size in sizes]


@pytest.mark.parametrize("build", [tiny_t5, tiny_bert2bert], ids=["t5", "bert2bert"])
def test_scores_and_ranking_equal_stock_teacher_forcing(build, catalogue):
    model = build()
    ids, mask = random_inputs(3, seed=8)
    lists = candidate_lists(catalogue, (25, 25, 25), seed=8)
    ours = score_candidates(model, ids, mask, catalogue, lists, SPECIAL)
    stock = stock_candidate_scores(model, ids, mask, catalogue, lists, SPECIAL)
    assert torch.equal(ours.items, stock.items)
    assert torch.allclose(ours.scores, stock.scores, atol=1e-4, rtol=0)
    # ranking by our scores == ranking by stock scores (random models leave no ties this close)
    gaps = stock.scores.sort(dim=1).values.diff(dim=1)
    assert gaps.min() > 2e-4
    assert torch.equal(ours.ranked().items, stock.ranked().items)


def test_ragged_lists_are_padded_and_chunking_changes_nothing(catalogue):
    model = tiny_t5()
    ids, mask = random_inputs(4, seed=9)
    lists = candidate_lists(catalogue, (5, 0, 12, 1), seed=9)
    whole = score_candidates(model, ids, mask, catalogue, lists, SPECIAL)
    chunked = score_candidates(model, ids, mask, catalogue, lists, SPECIAL, max_tokens=1)
    assert whole.items.shape == (4, 12)
    assert torch.equal(whole.items, chunked.items)
    assert torch.allclose(whole.scores, chunked.scores, atol=1e-5, equal_nan=False)
    for b, cands in enumerate(lists):
        assert whole.items[b, : len(cands)].tolist() == cands
        assert torch.isfinite(whole.scores[b, : len(cands)]).all()
        assert (whole.items[b, len(cands) :] == -1).all()
        assert torch.isinf(whole.scores[b, len(cands) :]).all()
    ranked = whole.ranked().to_lists()
    assert [len(r) for r in ranked] == [5, 0, 12, 1]


def test_without_eos_scores_drop_exactly_the_eos_term(catalogue):
    model = tiny_t5()
    ids, mask = random_inputs(2, seed=10)
    lists = candidate_lists(catalogue, (6, 6), seed=10)
    with_eos = score_candidates(model, ids, mask, catalogue, lists, SPECIAL)
    without = score_candidates(model, ids, mask, catalogue, lists, SPECIAL, include_eos=False)
    assert (without.scores > with_eos.scores).all()  # log p(EOS) < 0 is no longer added


def test_ties_are_broken_by_item_index_not_by_list_position():
    scores = torch.tensor([[-1.0, -2.0, -1.0, -1.0]])
    ranked = CandidateScores(torch.tensor([[9, 4, 3, 7]]), scores).ranked()
    assert ranked.items.tolist() == [[3, 7, 9, 4]]
    padded = CandidateScores(
        torch.tensor([[-1, 5]]), torch.tensor([[float("-inf"), -3.0]])
    ).ranked()
    assert padded.items.tolist() == [[5, -1]]


def test_candidate_errors(catalogue):
    model = tiny_t5()
    ids, mask = random_inputs(2)
    with pytest.raises(GensarError, match="1 candidate lists for 2 inputs"):
        score_candidates(model, ids, mask, catalogue, [[int(catalogue.items[0])]], SPECIAL)
    missing = int(catalogue.items.max()) + 1
    with pytest.raises(GensarError, match=f"item {missing} has no identifier"):
        score_candidates(model, ids, mask, catalogue, [[missing], []], SPECIAL)
