"""Units of the identifier stage: k-means, one quantiser level, collisions, Sinkhorn, de-duplication."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gensar.config import validate
from gensar.errors import ConfigError
from gensar.ids.assign import disambiguate, sinkhorn, sinkhorn_reassign
from gensar.ids.collisions import (
    collision_groups,
    collision_rate,
    level_usage,
    occurrence_index,
)
from gensar.ids.config import IndexConfig
from gensar.ids.quantize import ResidualQuantizer, kmeans


def test_kmeans_uses_every_centre_and_separates_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(8, 4, generator=g) * 10
    x = centres.repeat_interleave(50, 0) + 0.1 * torch.randn(400, 4, generator=g)
    found = kmeans(x, 8, 20, torch.Generator().manual_seed(1))
    assert found.shape == (8, 4)
    assign = torch.cdist(x, found).argmin(1)
    assert len(torch.unique(assign)) == 8
    # each true cluster is matched by a centre within the noise radius
    assert torch.cdist(centres, found).min(1).values.max() < 1.0


def test_kmeans_with_fewer_points_than_codes():
    x = torch.randn(5, 3)
    found = kmeans(x, 12, 10, torch.Generator().manual_seed(0))
    assert found.shape == (12, 3) and torch.isfinite(found).all()


def test_quantizer_picks_nearest_code_and_loss_trains_codebook():
    q = ResidualQuantizer(4, 2, beta=0.25)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]))
    x = torch.tensor([[0.9, 0.1], [0.1, 0.8], [4.0, 4.0]], requires_grad=True)
    out = q(x)
    assert out.codes.tolist() == [1, 2, 3]
    assert not out.vectors.requires_grad
    out.loss.backward()
    assert q.codebook.grad is not None and x.grad is not None


def test_reset_codes_moves_dead_codes_onto_residuals():
    q = ResidualQuantizer(6, 2)
    x = torch.randn(20, 2)
    dead = torch.tensor([1, 4])
    q.reset_codes(dead, x, torch.Generator().manual_seed(0))
    for code in dead.tolist():
        assert torch.isclose(q.codebook[code].unsqueeze(0), x).all(1).any()


def test_collision_rate_and_groups():
    codes = np.array([[1, 2], [1, 2], [3, 4], [1, 2], [3, 5], [3, 4]])
    assert collision_rate(codes) == pytest.approx(1 - 3 / 6)
    groups = collision_groups(codes)
    assert [g.tolist() for g in groups] == [[0, 1, 3], [2, 5]]
    assert occurrence_index(codes).tolist() == [0, 1, 0, 2, 0, 1]
    assert collision_rate(np.array([[1], [2]])) == 0.0


def test_level_usage_and_perplexity():
    usage = level_usage(np.array([0, 0, 1, 1]), 4)
    assert usage["used"] == 2 and usage["usage"] == 0.5
    assert usage["perplexity"] == pytest.approx(2.0)


def test_sinkhorn_marginals():
    cost = torch.rand(5, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1
    plan = sinkhorn(cost, 0.05, 200).exp()
    assert torch.allclose(plan.sum(1), torch.full((5,), 1 / 5, dtype=plan.dtype), atol=1e-6)
    assert torch.allclose(plan.sum(0), torch.full((7,), 1 / 7, dtype=plan.dtype), atol=1e-3)
    # epsilon 0.003 (the authors') stays finite thanks to the log domain
    assert torch.isfinite(sinkhorn(cost, 0.003, 50)).all()


def test_disambiguate_appends_a_level_only_when_needed():
    unique = np.array([[1, 2], [1, 3]])
    out, added = disambiguate(unique)
    assert not added and out is unique
    codes = np.array([[1, 2], [1, 2], [0, 0], [1, 2]])
    out, added = disambiguate(codes)
    assert added and out.shape == (4, 3)
    assert out[:, 2].tolist() == [0, 1, 0, 2]
    assert collision_rate(out) == 0.0
    assert (out[:, :2] == codes).all()


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 60),
    k=st.integers(2, 6),
    free_only=st.booleans(),
)
def test_sinkhorn_reassign_never_increases_collisions(seed, n, k, free_only):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, size=(n, 2))
    q = ResidualQuantizer(k, 3)
    residuals = torch.from_numpy(rng.normal(size=(n, 3)).astype(np.float32))
    config = IndexConfig(codebook_size=k, sinkhorn_free_codes_only=free_only)
    out, rounds = sinkhorn_reassign(codes, residuals, q, config)
    assert collision_rate(out) <= collision_rate(codes)
    assert (out[:, 0] == codes[:, 0]).all()  # only the last level moves
    previous = collision_rate(codes)
    for r in rounds:
        assert r.collision_rate <= previous
        previous = r.collision_rate


def test_sinkhorn_reassign_resolves_separable_collisions():
    # 8 items share (0, 0); their residuals sit on 8 different codes of 16.
    q = ResidualQuantizer(16, 2)
    with torch.no_grad():
        q.codebook.copy_(torch.randn(16, 2, generator=torch.Generator().manual_seed(0)) * 3)
    residuals = q.codebook[:8].detach() + 0.01
    codes = np.zeros((8, 2), dtype=np.int64)
    out, _ = sinkhorn_reassign(codes, residuals, q, IndexConfig(codebook_size=16))
    assert collision_rate(out) < collision_rate(codes)


@pytest.mark.parametrize(
    "override",
    [
        {"codebook_size": 1},
        {"codebook_size": 100000},
        {"shared_levels": -1},
        {"specific_levels": 9},
        {"shared_levels": 0, "specific_levels": 0},
        {"hidden_dims": []},
        {"variant": "both"},
        {"epochs": 0},
        {"no_such_setting": 1},
    ],
)
def test_bad_settings_give_one_line_config_error(override):
    with pytest.raises(ConfigError) as err:
        validate(IndexConfig, override, source="run.yaml")
    message = str(err.value)
    assert "\n" not in message and message.startswith("run.yaml:")


def _inputs(n: int = 200, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "semantic": torch.randn(n, 24, generator=g),
        "collaborative": torch.randn(n, 12, generator=g) * 0.01,
    }


TINY = {
    "method": "rqvae",
    "codebook_size": 8,
    "latent_dim": 4,
    "hidden_dims": [16],
    "epochs": 6,
    "batch_size": 64,
    "check_every": 2,
}


@pytest.mark.parametrize("rule", ["collisions", "last", "converged"])
def test_checkpoint_rule(rule):
    from gensar.ids.train import train_rqvae

    result = train_rqvae(_inputs(), IndexConfig(**TINY, checkpoint=rule), progress=False)
    epochs = [h["epoch"] for h in result.history]
    assert epochs == [2, 4, 6]
    if rule == "last":
        assert result.best_epoch == 6
    elif rule == "converged":
        chosen = next(h for h in result.history if h["epoch"] == result.best_epoch)
        best = min(h["recon_semantic"] + h["recon_collaborative"] for h in result.history)
        assert chosen["recon_semantic"] + chosen["recon_collaborative"] <= 1.05 * best + 1e-9
    else:
        best = min(h["collision_mean"] for h in result.history)
        chosen = next(h for h in result.history if h["epoch"] == result.best_epoch)
        assert chosen["collision_mean"] == best


def test_input_normalisation_balances_the_two_reconstructions():
    from gensar.ids.train import train_rqvae

    result = train_rqvae(_inputs(), IndexConfig(**TINY), progress=False)
    first = result.history[0]
    # both towers are measured in unit-variance space, so neither MSE is negligible
    assert 0.1 < first["recon_collaborative"] / first["recon_semantic"] < 10


def test_saved_model_reloads_identically(tmp_path):
    from gensar.ids.rqvae import load_rqvae, save_rqvae
    from gensar.ids.train import train_rqvae

    inputs = _inputs()
    model = train_rqvae(inputs, IndexConfig(**TINY), progress=False).model
    save_rqvae(model, tmp_path / "rqvae.safetensors")
    again = load_rqvae(tmp_path / "rqvae.safetensors")
    assert again.level_names == model.level_names
    assert torch.equal(model.encode_all(inputs).codes, again.encode_all(inputs).codes)


def test_free_code_dedup_keeps_length_and_falls_back_when_a_prefix_is_full():
    import torch

    from gensar.ids.assign import free_code_dedup
    from gensar.ids.quantize import ResidualQuantizer

    quantizer = ResidualQuantizer(4, 2)
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]))
    codes = np.array([[7, 0], [7, 0], [7, 0], [8, 1]])
    residuals = torch.tensor([[0.0, 0.0], [0.9, 0.1], [0.1, 0.8], [1.0, 0.0]])
    moved = free_code_dedup(codes, residuals, quantizer)
    assert moved.shape == codes.shape
    assert collision_rate(moved) == 0.0
    assert moved[:, 1].tolist() == [0, 1, 2, 1]  # each duplicate took its nearest free code
    full = np.array([[7, 0], [7, 1], [7, 2], [7, 3], [7, 3]])
    assert free_code_dedup(full, torch.zeros(5, 2), quantizer) is None
