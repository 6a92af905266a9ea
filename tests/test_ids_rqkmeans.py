"""Residual k-means identifiers, the RQ-VAE checkpoint rule, and the code-meaning diagnostics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_ids_build import catalogue, write_embeddings  # noqa: F401  (fixture)

from gensar.ids import IndexConfig, ItemIdentifiers, build_identifiers
from gensar.ids.collisions import collision_rate
from gensar.ids.diagnostics import modal_share, normalized_mutual_information
from gensar.ids.identifiers import PLOT, REPORT
from gensar.ids.rqkmeans import ResidualKMeans, balanced_assign, lloyd
from gensar.ids.train import select_checkpoint


def _clustered(n: int = 600, dim: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, dim, generator=g) * 3
    return centres[torch.arange(n) % 10] + torch.randn(n, dim, generator=g)


def _fvu(model: ResidualKMeans, inputs, levels: int) -> dict[str, float]:
    return {k: v["fraction_unexplained"] for k, v in model.reconstruction(inputs).items()}


# --- residual k-means --------------------------------------------------------------------


def test_each_level_reconstructs_better():
    x = _clustered()
    previous = 1.0
    for levels in (1, 2, 3, 4):
        config = IndexConfig(
            method="rqkmeans", variant="semantic", levels=levels, codebook_size=16, seed=3
        )
        model = ResidualKMeans(config, semantic_dim=x.shape[1], collaborative_dim=0)
        model.fit({"semantic": x})
        fvu = model.reconstruction({"semantic": x})["semantic"]["fraction_unexplained"]
        assert fvu < previous - 0.01, (levels, fvu, previous)
        previous = fvu


def test_joint_split_keeps_exactly_the_shared_leading_codes():
    sem, col = _clustered(seed=1), _clustered(dim=8, seed=2)
    config = IndexConfig(codebook_size=16, shared_levels=2, specific_levels=2, seed=0)
    model = ResidualKMeans(config, semantic_dim=sem.shape[1], collaborative_dim=col.shape[1])
    encoded = model.fit({"semantic": sem, "collaborative": col})
    levels = model.identifier_levels()
    assert levels == {
        "semantic": ["m1", "m2", "s1", "s2"],
        "collaborative": ["m1", "m2", "c1", "c2"],
    }
    names = model.level_names
    sem_codes = encoded.codes[:, [names.index(n) for n in levels["semantic"]]]
    col_codes = encoded.codes[:, [names.index(n) for n in levels["collaborative"]]]
    assert torch.equal(sem_codes[:, :2], col_codes[:, :2])  # L_m shared leading codes
    assert not torch.equal(sem_codes[:, 2], col_codes[:, 2])  # then each side's own codes
    # shared code vectors span both sides, specific ones one side each (Eq. 3-4)
    books = model.codebooks()
    assert books["m1"].shape == (16, 24 + 8)
    assert books["s1"].shape == (16, 24) and books["c1"].shape == (16, 8)
    # the specific levels quantise the right half of the shared residual
    ds = sem.shape[1]
    x = model.normalized({"semantic": sem, "collaborative": col})
    shared = books["m1"][encoded.codes[:, 0]] + books["m2"][encoded.codes[:, 1]]
    residual_c = torch.cat([x["semantic"], x["collaborative"]], 1)[:, ds:] - shared[:, ds:]
    assert torch.allclose(encoded.level_inputs[names.index("c1")], residual_c, atol=1e-5)


def test_semantic_weight_moves_the_shared_levels_towards_a_side():
    sem, col = _clustered(seed=1), _clustered(dim=8, seed=5)
    fvu = {}
    for weight in (0.1, 0.9):
        config = IndexConfig(
            codebook_size=8, shared_levels=1, specific_levels=0, semantic_weight=weight
        )
        model = ResidualKMeans(config, semantic_dim=24, collaborative_dim=8)
        model.fit({"semantic": sem, "collaborative": col})
        fvu[weight] = _fvu(model, {"semantic": sem, "collaborative": col}, 1)
    assert fvu[0.9]["semantic"] < fvu[0.1]["semantic"]
    assert fvu[0.9]["collaborative"] > fvu[0.1]["collaborative"]


def test_balanced_assignment_respects_capacity_and_prefers_near_columns():
    g = torch.Generator().manual_seed(0)
    dist = torch.rand(50, 7, generator=g)
    assign = balanced_assign(dist, capacity=8)
    counts = torch.bincount(assign, minlength=7)
    assert counts.max() <= 8 and counts.sum() == 50 and (assign >= 0).all()
    # with room everywhere it is the plain argmin
    assert torch.equal(balanced_assign(dist, capacity=50), dist.argmin(1))
    with pytest.raises(ValueError):
        balanced_assign(dist, capacity=7)


def test_balanced_kmeans_caps_cluster_sizes_and_lowers_collisions():
    g = torch.Generator().manual_seed(0)
    # a dense blob of 300 items and a sparse one of 20: plain k-means crowds the blob
    x = torch.cat([0.05 * torch.randn(300, 4, generator=g), torch.randn(20, 4, generator=g) + 8])
    codes = {}
    for balanced in (False, True):
        config = IndexConfig(variant="semantic", levels=2, codebook_size=16, balanced=balanced)
        model = ResidualKMeans(config, semantic_dim=4, collaborative_dim=0)
        codes[balanced] = model.fit({"semantic": x}).codes
    for j in range(2):
        assert torch.bincount(codes[True][:, j], minlength=16).max() <= 20  # ceil(320 / 16)
    assert torch.bincount(codes[False][:, 0], minlength=16).max() > 20
    assert collision_rate(codes[True].numpy()) <= collision_rate(codes[False].numpy())
    # lloyd() itself returns k centres whichever way it assigns
    assert lloyd(x, 16, 3, torch.Generator().manual_seed(1), balanced=True).shape == (16, 4)


# --- checkpoint rule ---------------------------------------------------------------------


def _record(epoch: int, recon: float, collisions: float) -> dict:
    return {
        "epoch": epoch,
        "recon_semantic": recon / 2,
        "recon_collaborative": recon / 2,
        "collision_mean": collisions,
    }


def test_converged_rule_never_returns_a_checkpoint_far_from_the_best_reconstruction():
    # epoch 10: untrained, no collisions; later ones reconstruct 4x better with a few
    history = [
        _record(10, 0.80, 0.000),
        _record(20, 0.30, 0.010),
        _record(30, 0.205, 0.004),
        _record(40, 0.200, 0.006),
    ]
    assert select_checkpoint(history, "collisions") == 0  # the authors' rule picks it
    assert select_checkpoint(history, "converged", 0.05) == 2
    assert select_checkpoint(history, "converged", 0.0) == 3
    assert select_checkpoint(history, "last") == 3


@pytest.mark.parametrize("seed", range(20))
def test_converged_rule_bound_holds_on_random_histories(seed):
    rng = np.random.default_rng(seed)
    history = [
        _record(i, float(r), float(c)) for i, (r, c) in enumerate(rng.random((12, 2)) + 0.01)
    ]
    chosen = history[select_checkpoint(history, "converged", 0.05)]
    best = min(r["recon_semantic"] + r["recon_collaborative"] for r in history)
    assert chosen["recon_semantic"] + chosen["recon_collaborative"] <= 1.05 * best + 1e-9


# --- diagnostics -------------------------------------------------------------------------


def test_nmi_is_one_for_codes_equal_to_categories_and_near_zero_for_random_codes():
    rng = np.random.default_rng(0)
    categories = rng.integers(0, 8, size=20000)
    assert normalized_mutual_information(categories, categories) == pytest.approx(1.0)
    relabelled = (categories * 7 + 3) % 8  # a renaming of the same partition
    assert normalized_mutual_information(relabelled, categories) == pytest.approx(1.0)
    random_codes = rng.integers(0, 8, size=20000)
    assert normalized_mutual_information(random_codes, categories) < 0.002
    assert normalized_mutual_information(np.zeros(20000), categories) == 0.0


def test_modal_share():
    labels = np.array([0, 0, 0, 1, 2, 2, 2, 2, 2, 2])
    groups = [np.array([0, 1, 2, 3, 4]), np.array([5, 6, 7, 8, 9]), np.array([0, 1])]
    assert modal_share(labels, groups, min_group=5) == pytest.approx((3 / 5 + 1.0) / 2)
    assert np.isnan(modal_share(labels, groups, min_group=6))


# --- end to end --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kmeans_run(catalogue, tmp_path_factory):  # noqa: F811
    run = tmp_path_factory.mktemp("rqkmeans")
    write_embeddings(catalogue, run)
    config = IndexConfig(method="rqkmeans", codebook_size=16, rqkmeans_iters=10)
    return run, build_identifiers(catalogue, run, config, progress=False)


def test_rqkmeans_stage_writes_unique_identifiers_and_diagnostics(kmeans_run):
    run, report = kmeans_run
    assert report["method"] == "rqkmeans"
    ids = ItemIdentifiers.load(run)
    for kind in ("semantic", "collaborative"):
        assert report["collision_rate"][kind]["argmax"] > 0  # items 0 and 1 are identical
        assert report["collision_rate"][kind]["final"] == 0.0
        assert collision_rate(ids.codes_matrix(kind)) == 0.0
    assert (ids.codes_matrix("semantic")[:, :2] == ids.codes_matrix("collaborative")[:, :2]).all()
    vectors = ids.code_vectors()  # token init reads the codebooks whatever the method
    assert vectors["<m1_0>"].shape == (48 + 16,) and vectors["<c1_0>"].shape == (16,)
    diag = report["diagnostics"]["by_level"]
    assert [r["level"] for r in diag["semantic"]] == ids.levels["semantic"]
    first = diag["semantic"][0]
    # synthetic items: categories are unrelated to the embeddings' topics, so these are
    # only range checks; the real agreement is measured in benchmarks/index_methods.py
    assert 0.0 <= first["nmi_category"] <= 1.0 and 0.0 <= first["random_nmi_category"] <= 1.0
    on_disk = json.loads((run / "identifiers" / REPORT).read_text())
    assert on_disk["reconstruction"] == report["reconstruction"]
    assert (run / "identifiers" / PLOT).stat().st_size > 0


def test_index_report_command(kmeans_run):
    from typer.testing import CliRunner

    from gensar.cli import app

    run, _ = kmeans_run
    result = CliRunner().invoke(app, ["index-report", str(run)])
    assert result.exit_code == 0, result.output
    assert "variance unexplained" in result.output and "modal share" in result.output
    assert "m1" in result.output
    as_json = CliRunner().invoke(app, ["index-report", str(run), "--json"])
    assert json.loads(as_json.output)["method"] == "rqkmeans"


def test_index_report_without_identifiers(tmp_path):
    from typer.testing import CliRunner

    from gensar.cli import app

    result = CliRunner().invoke(app, ["index-report", str(tmp_path)])
    assert result.exit_code != 0
    assert "index_report.json" in str(result.exception) or "index_report.json" in result.output
