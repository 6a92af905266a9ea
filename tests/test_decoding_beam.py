"""Constrained beam search: valid and unique items, the same as stock generate, exact when exhaustive."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import (
    BertConfig,
    EncoderDecoderConfig,
    EncoderDecoderModel,
    T5Config,
    T5ForConditionalGeneration,
)

from gensar.decoding import (
    IdentifierCatalogue,
    SpecialTokens,
    beam_search,
    restricted_beam_search,
    score_candidates,
)
from gensar.decoding.reference import check_same_ranking as assert_same_ranking
from gensar.decoding.reference import stock_beam_search
from gensar.decoding.shared_attention import SHARED_KV
from gensar.errors import GensarError

VOCAB = 120
SPECIAL = SpecialTokens(decoder_start=0, eos=1, pad=0)
BEHAVIOUR = 5


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and on a loaded machine the idle-spinning
    OpenMP workers make each tiny matmul cost milliseconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_t5(seed: int = 0, **overrides) -> T5ForConditionalGeneration:
    """A 2+2-layer T5 (relu, tied embeddings); ``overrides`` change any T5Config field."""
    torch.manual_seed(seed)
    settings = dict(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5ForConditionalGeneration(T5Config(**{**settings, **overrides})).eval()


def tiny_bert2bert(seed: int = 0) -> EncoderDecoderModel:
    """BERT encoder (48-d) and a smaller BERT decoder with cross-attention (enc_to_dec_proj in between)."""
    torch.manual_seed(seed)
    common = dict(
        vocab_size=VOCAB, num_attention_heads=4, initializer_range=0.3, hidden_dropout_prob=0.0
    )
    encoder = BertConfig(hidden_size=48, num_hidden_layers=2, intermediate_size=64, **common)
    decoder = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        intermediate_size=64,
        is_decoder=True,
        add_cross_attention=True,
        **common,
    )
    config = EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.eos_token_id, config.pad_token_id = 0, 1, 0
    return EncoderDecoderModel(config=config).eval()


def random_catalogue(
    n: int, length: int = 3, codes_per_level: int = 6, seed: int = 0
) -> IdentifierCatalogue:
    """Unique identifiers; level l uses token ids 20 + l * codes_per_level ... (like <m1_k>, <m2_k>, ...)."""
    rng = np.random.default_rng(seed)
    rows: set[tuple[int, ...]] = set()
    while len(rows) < n:
        rows.add(
            tuple(
                20 + level * codes_per_level + int(rng.integers(codes_per_level))
                for level in range(length)
            )
        )
    codes = np.asarray(sorted(rows))[rng.permutation(n)]
    return IdentifierCatalogue(BEHAVIOUR, codes, items=rng.permutation(1000)[:n], name="test ids")


def random_inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Instructions of different lengths (right-padded), token ids clear of the code tokens."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(60, VOCAB, (batch, 12), generator=gen)
    mask = torch.ones_like(ids)
    for b in range(batch):
        cut = int(torch.randint(6, 13, (1,), generator=gen))
        mask[b, cut:] = 0
        ids[b, cut:] = SPECIAL.pad
    return ids, mask


def rows(result, start: int, stop: int | None = None, k: int | None = None):
    """Inputs ``start:stop`` and the first ``k`` ranks of a RankedItems."""
    stop = start + 1 if stop is None else stop
    return type(result)(result.items[start:stop, :k], result.scores[start:stop, :k])


@pytest.fixture(scope="module")
def t5():
    return tiny_t5()


@pytest.fixture(scope="module")
def catalogue():
    return random_catalogue(90)


def check_valid(result, allowed: list[set[int]], k: int) -> None:
    """Every item real and allowed, none twice, scores descending, padding only at the end."""
    for b, row in enumerate(result.to_lists()):
        items = [i for i, _ in row]
        assert set(items) <= allowed[b]
        assert len(items) == len(set(items)) == min(k, len(allowed[b]))
        scores = [s for _, s in row]
        assert scores == sorted(scores, reverse=True)
        assert all(np.isfinite(scores))
    assert ((result.items < 0) == torch.isinf(result.scores)).all()


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n_items=st.integers(1, 60),
    batch=st.integers(1, 3),
    num_beams=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_results_are_valid_unique_and_scored_exactly(t5, n_items, batch, num_beams, seed, data):
    """Property: only catalogue items, each once; the scores are the items' exact log-likelihoods."""
    catalogue = random_catalogue(n_items, seed=seed)
    top_k = data.draw(st.integers(1, num_beams))
    ids, mask = random_inputs(batch, seed)
    result = beam_search(t5, ids, mask, catalogue, SPECIAL, num_beams=num_beams, top_k=top_k)
    assert result.items.shape == (batch, top_k)
    check_valid(result, [set(catalogue.items.tolist())] * batch, top_k)
    exact = score_candidates(t5, ids, mask, catalogue, result.items, SPECIAL)
    finite = result.items >= 0
    assert torch.allclose(exact.scores[finite], result.scores[finite], atol=1e-4)


def test_same_top_k_as_stock_generate_t5(t5, catalogue):
    ids, mask = random_inputs(4, seed=1)
    ours = beam_search(t5, ids, mask, catalogue, SPECIAL, num_beams=6, top_k=6)
    stock = stock_beam_search(t5, ids, mask, catalogue, SPECIAL, num_beams=6, top_k=6)
    assert (ours.items >= 0).all()
    assert_same_ranking(ours, stock)


def test_same_top_k_as_stock_generate_bert2bert(catalogue):
    model = tiny_bert2bert()
    ids, mask = random_inputs(3, seed=2)
    ours = beam_search(model, ids, mask, catalogue, SPECIAL, num_beams=6, top_k=5)
    stock = stock_beam_search(model, ids, mask, catalogue, SPECIAL, num_beams=6, top_k=5)
    assert (ours.items >= 0).all()
    assert_same_ranking(ours, stock)
    # the inputs matter (a random model that ignored them would make this test vacuous)
    assert not torch.allclose(ours.scores[0], ours.scores[1], atol=1e-3)


@pytest.mark.parametrize("include_eos", [True, False])
def test_exhaustive_beam_equals_exact_ranking_of_whole_catalogue(t5, include_eos):
    """With at least as many beams as items nothing is pruned: the result is the exact ranking."""
    catalogue = random_catalogue(40, seed=3)
    ids, mask = random_inputs(2, seed=3)
    result = beam_search(t5, ids, mask, catalogue, SPECIAL, num_beams=40, include_eos=include_eos)
    every = [catalogue.items.tolist()] * 2
    exact = score_candidates(
        t5, ids, mask, catalogue, every, SPECIAL, include_eos=include_eos
    ).ranked()
    assert_same_ranking(result, exact)


def test_restricted_search_returns_only_candidates_and_is_exact_when_exhaustive(t5, catalogue):
    rng = np.random.default_rng(4)
    lists = [rng.choice(catalogue.items, size, replace=False).tolist() for size in (10, 3, 7)]
    ids, mask = random_inputs(3, seed=4)
    narrow = restricted_beam_search(t5, ids, mask, catalogue, lists, SPECIAL, num_beams=4, top_k=4)
    check_valid(narrow, [set(c) for c in lists], 4)
    wide = restricted_beam_search(t5, ids, mask, catalogue, lists, SPECIAL, num_beams=10)
    check_valid(wide, [set(c) for c in lists], 10)
    exact = score_candidates(t5, ids, mask, catalogue, lists, SPECIAL).ranked()
    assert_same_ranking(wide, exact)
    stock = stock_beam_search(
        t5, ids, mask, catalogue, SPECIAL, num_beams=4, top_k=2, candidates=lists
    )
    assert_same_ranking(rows(narrow, 0, 3, k=2), stock)


def test_batch_with_padding_equals_one_input_at_a_time(t5, catalogue):
    """Each input's beams share its own encoder rows and padding mask, never a neighbour's."""
    ids, mask = random_inputs(3, seed=5)
    together = beam_search(t5, ids, mask, catalogue, SPECIAL, num_beams=8, top_k=5)
    for b in range(3):
        n = int(mask[b].sum())
        alone = beam_search(t5, ids[b : b + 1, :n], None, catalogue, SPECIAL, num_beams=8, top_k=5)
        assert_same_ranking(rows(together, b), alone)


def test_model_state_is_restored_even_after_an_error(t5, catalogue):
    before = t5.decoder.config._attn_implementation
    t5.train()
    try:
        ids, mask = random_inputs(1)
        beam_search(t5, ids, mask, catalogue, SPECIAL, num_beams=3)
        assert t5.training
        with pytest.raises(IndexError):  # a token id outside the vocabulary, raised mid-search
            beam_search(t5, ids + VOCAB, None, catalogue, SPECIAL, num_beams=3)
    finally:
        t5.eval()
    assert t5.decoder.config._attn_implementation == before != SHARED_KV


def test_user_errors(t5, catalogue):
    ids, mask = random_inputs(2)
    with pytest.raises(GensarError, match="top_k"):
        beam_search(t5, ids, mask, catalogue, SPECIAL, num_beams=3, top_k=4)
    with pytest.raises(GensarError, match="3 candidate groups for 2 inputs"):
        beam_search(t5, ids, mask, catalogue, SPECIAL, trie=catalogue.restricted_trie([[], [], []]))
    with pytest.raises(GensarError, match="attention_mask has shape"):
        beam_search(t5, ids, mask[:, :3], catalogue, SPECIAL)
    clash = IdentifierCatalogue(BEHAVIOUR, [[1, 21], [22, 23]])  # EOS used as a code
    with pytest.raises(GensarError, match="both special tokens and code tokens"):
        beam_search(t5, ids, mask, clash, SPECIAL)


def test_empty_candidate_list_gives_padding_only(t5, catalogue):
    ids, mask = random_inputs(2)
    result = restricted_beam_search(t5, ids, mask, catalogue, [[], []], SPECIAL, num_beams=3)
    assert (result.items == -1).all() and torch.isinf(result.scores).all()
    mixed = restricted_beam_search(
        t5, ids, mask, catalogue, [[], catalogue.items[:2].tolist()], SPECIAL, num_beams=3
    )
    assert mixed.to_lists()[0] == [] and len(mixed.to_lists()[1]) == 2
