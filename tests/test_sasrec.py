"""SASRec network and helpers: padding, causality, settings, batching, ranking metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gensar.config import validate
from gensar.embed.collab import (
    evaluate,
    item_popularity,
    make_batches,
    prefix_examples,
    train_epoch,
)
from gensar.embed.sasrec import SASRec, SASRecConfig, pad_left
from gensar.errors import ConfigError


def small_model(**kw) -> SASRec:
    torch.manual_seed(0)
    config = SASRecConfig(
        **{"hidden": 16, "layers": 2, "heads": 2, "max_len": 8, "dropout": 0.0, **kw}
    )
    return SASRec(n_items=20, config=config).eval()


def test_pad_left_keeps_newest_items_and_pads_on_the_left():
    tokens = pad_left([[1, 2, 3], [4], []], max_len=8)
    assert tokens.tolist() == [[1, 2, 3], [0, 0, 4], [0, 0, 0]]
    assert pad_left([list(range(1, 12))], max_len=4).tolist() == [[8, 9, 10, 11]]
    assert pad_left([[]], max_len=4).shape == (1, 1)


def test_outputs_are_causal():
    """The state at position t must not depend on items after t."""
    model = small_model()
    a = torch.tensor([[3, 5, 7, 9, 11]])
    b = torch.tensor([[3, 5, 7, 2, 4]])
    with torch.no_grad():
        ha, hb = model(a).hidden, model(b).hidden
    torch.testing.assert_close(ha[:, :3], hb[:, :3])
    assert not torch.allclose(ha[:, 3:], hb[:, 3:])


@pytest.mark.parametrize("norm,init", [("post", "recbole"), ("pre", "scaled")])
def test_both_block_layouts_are_causal_and_padding_invariant(norm, init):
    model = small_model(norm=norm, init=init)
    a, b = torch.tensor([[3, 5, 7, 9]]), torch.tensor([[3, 5, 7, 2]])
    with torch.no_grad():
        torch.testing.assert_close(model(a).hidden[:, :3], model(b).hidden[:, :3])
        padded = model.user_states(torch.tensor([[0, 0, 3, 5, 7, 9]]))
        torch.testing.assert_close(model.user_states(a), padded, atol=1e-5, rtol=1e-5)


def test_the_recbole_layout_is_what_it_claims():
    """2 blocks, 2 heads, hidden 64, FFN 256, GELU, post-LN, input LN, N(0, 0.02)."""
    config = SASRecConfig(heads=2, ffn=256, activation="gelu", norm="post", init="recbole")
    torch.manual_seed(0)
    model = SASRec(2000, config)
    block = model.blocks[0]
    assert len(model.blocks) == 2 and not block.norm_first
    assert block.linear1.out_features == 256 and block.self_attn.num_heads == 2
    assert model.input_norm is not None and model.final_norm is None
    assert model.item_vectors.std().item() == pytest.approx(0.02, rel=0.05)
    assert block.linear1.bias.abs().max().item() == 0.0
    assert torch.all(model.item_emb.weight[0] == 0)


def test_defaults_are_the_sweep_winner_recboles_code_with_positions_from_the_end():
    config = SASRecConfig()
    assert (config.layers, config.heads, config.hidden, config.ffn) == (2, 2, 64, 256)
    assert (config.activation, config.norm, config.init) == ("gelu", "post", "recbole")
    assert (config.dropout, config.loss, config.lr, config.beta2) == (0.5, "ce", 1e-3, 0.999)
    assert (config.examples, config.positions, config.ffn_dropout) == ("prefix", "end", False)
    assert (config.layer_norm_eps, config.batches, config.patience) == (1e-12, "by_length", 10)
    model = SASRec(50, config)
    assert not model.blocks[0].norm_first and model.final_norm is None
    assert model.input_norm is not None


def test_extra_left_padding_does_not_change_the_user_state():
    model = small_model()
    with torch.no_grad():
        short = model.user_states(torch.tensor([[4, 6, 8]]))
        padded = model.user_states(torch.tensor([[0, 0, 0, 4, 6, 8]]))
        empty = model(torch.tensor([[0, 0]]))
    torch.testing.assert_close(short, padded)
    assert torch.isfinite(empty.hidden).all()
    assert not empty.mask.any()


def test_padding_row_is_not_an_item():
    model = small_model()
    assert model.item_vectors.shape == (20, 16)
    assert model.scores(torch.zeros(3, 16)).shape == (3, 20)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"dropout": 1.5}, "dropout"),
        ({"hidden": 64, "heads": 3}, "heads"),
        ({"lr": 0}, "lr"),
        ({"patience": 0}, "patience"),
        ({"loss": "hinge"}, "loss"),
        ({"epochs": 3}, "epochs"),
    ],
)
def test_bad_settings_are_one_line_config_errors(data, field):
    with pytest.raises(ConfigError) as err:
        validate(SASRecConfig, data, source="run.yaml")
    message = str(err.value)
    assert "run.yaml" in message and "\n" not in message
    assert field in message


def test_batches_cover_every_sequence_once_and_repeat_with_the_seed():
    sequences = [[1] * n for n in np.random.default_rng(1).integers(2, 30, size=1000)]
    first = make_batches(sequences, 32, np.random.default_rng(7))
    again = make_batches(sequences, 32, np.random.default_rng(7))
    flat = np.concatenate(first)
    assert sorted(flat.tolist()) == list(range(1000))
    assert all(len(b) <= 32 for b in first)
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    # grouped by length: padding inside a batch is much less than with random batches
    lengths = np.array([len(s) for s in sequences])
    waste = sum((lengths[b].max() - lengths[b]).sum() for b in first)
    assert waste < 0.2 * sum((lengths.max() - lengths[b]).sum() for b in first)


class FixedScores(nn.Module):
    """A stand-in model whose scores for every history are one fixed vector."""

    max_len = 4

    def __init__(self, scores: list[float]):
        super().__init__()
        self.fixed = torch.tensor(scores)

    def user_states(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.zeros(tokens.shape[0], 1)

    def scores(self, states: torch.Tensor) -> torch.Tensor:
        return self.fixed.expand(states.shape[0], -1)


def test_full_catalogue_ndcg_and_hit_rate():
    scores = [float(20 - i) for i in range(20)]  # item i is ranked i-th (0-based)
    model = FixedScores(scores)
    targets = np.array([0, 2, 9, 10, 19])
    result = evaluate(model, [[1]] * 5, targets, batch_size=2, device="cpu")
    expected = (1.0 + 1 / math.log2(4) + 1 / math.log2(11)) / 5
    assert result.ndcg == pytest.approx(expected)
    assert result.hr == pytest.approx(3 / 5)
    assert result.n == 5


def test_popularity_counts_training_items():
    counts = item_popularity([[1, 2, 2], [3, 1]], n_items=4)
    assert counts.tolist() == [2.0, 2.0, 1.0, 0.0]


# ----------------------------------------------------------------------------- RecBole's code


def test_positions_from_the_start_give_a_prefix_its_own_state():
    """positions: start numbers each row's first real item 0, so the state after item t
    of a longer sequence is the state of that prefix fed alone (what makes one pass over a
    sequence equal to RecBole's per-prefix examples); counted from the end it is not."""
    seq = torch.tensor([[3, 5, 7, 9, 11]])
    prefix = torch.tensor([[0, 0, 3, 5, 7]])  # padded, as in a batch of longer rows
    start, end = small_model(positions="start"), small_model(positions="end")
    with torch.no_grad():
        assert start._positions(prefix != 0).tolist() == [[0, 0, 0, 1, 2]]
        torch.testing.assert_close(start(seq).hidden[:, 2], start.user_states(prefix))
        assert not torch.allclose(end(seq).hidden[:, 2], end.user_states(prefix), atol=1e-4)
        # either way, left padding alone does not move a user's state
        for model in (start, end):
            padded = model.user_states(torch.cat([torch.zeros(1, 3, dtype=torch.long), seq], 1))
            torch.testing.assert_close(model.user_states(seq), padded, atol=1e-5, rtol=1e-5)


def _only_ffn_dropout_left(model: SASRec) -> SASRec:
    """Train mode with every dropout off except the one inside the feed-forward."""
    model.train()
    model.emb_dropout.p = 0.0
    for block in model.blocks:
        block.dropout1.p = block.dropout2.p = 0.0
        block.self_attn.dropout = 0.0
    return model


@pytest.mark.parametrize("ffn_dropout", [True, False])
def test_ffn_dropout_switches_the_inner_feed_forward_dropout(ffn_dropout):
    model = _only_ffn_dropout_left(small_model(dropout=0.5, ffn_dropout=ffn_dropout))
    items = torch.tensor([[3, 5, 7, 9]])
    with torch.no_grad():
        a, b = model(items).hidden, model(items).hidden
    assert torch.allclose(a, b) is not ffn_dropout
    block = model.blocks[0]
    assert (block.dropout1.p, block.dropout2.p) == (0.0, 0.0)  # the others stay separate


def test_layer_norm_eps_reaches_every_block_norm():
    model = small_model(layer_norm_eps=1e-12, norm="pre", init="scaled")
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 2 * 2 + 1  # two per block and the final one
    assert all(m.eps == 1e-12 for m in norms)
    coarse = small_model(layer_norm_eps=1e-5, norm="pre", init="scaled")
    assert all(m.eps == 1e-5 for m in coarse.modules() if isinstance(m, nn.LayerNorm))


def test_prefix_examples_are_every_prefix_with_its_next_item():
    assert prefix_examples([[1, 2, 3, 4], [5], [6, 7]], window=3) == [
        [1, 2],
        [1, 2, 3],
        [2, 3, 4],  # the newest window - 1 = 2 inputs, then the target
        [6, 7],
    ]


def _epoch_loss(examples: str, positions: str) -> float:
    torch.manual_seed(0)
    config = SASRecConfig(
        hidden=16, heads=2, max_len=8, dropout=0.0, lr=1e-12, batch_size=4,
        examples=examples, positions=positions,
    )  # fmt: skip
    model = SASRec(n_items=20, config=config)
    sequences = [[1, 4, 2, 9], [3, 3, 7, 1, 5, 6], [8, 2], [11, 12, 13, 14, 15]]
    return train_epoch(
        model, torch.optim.Adam(model.parameters(), lr=1e-12), sequences, config,
        np.random.default_rng(0), torch.Generator().manual_seed(0), "cpu",
    ).loss  # fmt: skip


def test_prefix_examples_train_the_same_targets_as_whole_sequences():
    """With positions from the start, per-prefix examples and one pass per sequence score
    the same (context, next item) pairs: the same mean loss at a frozen model. Counted
    from the end, a prefix inside a sequence sits at other positions, so they differ."""
    assert _epoch_loss("prefix", "start") == pytest.approx(_epoch_loss("sequence", "start"))
    assert _epoch_loss("prefix", "end") != pytest.approx(_epoch_loss("sequence", "end"))


def test_random_batches_are_plain_random_draws():
    sequences = [[1] * n for n in np.random.default_rng(1).integers(2, 30, size=1000)]
    batches = make_batches(sequences, 32, np.random.default_rng(7), by_length=False)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert [len(b) for b in batches] == [32] * 31 + [8]
    lengths = np.array([len(s) for s in sequences])
    spread = np.mean([lengths[b].std() for b in batches])
    assert spread > 0.8 * lengths.std()  # not grouped by length
    grouped = make_batches(sequences, 32, np.random.default_rng(7))
    assert np.mean([lengths[b].std() for b in grouped]) < 0.2 * lengths.std()
