"""The identifier stage end to end on a small synthetic catalogue (300 items, clustered embeddings)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from safetensors.numpy import load_file

from gensar.data.dataset import load_dataset
from gensar.embed.store import ItemEmbeddings
from gensar.errors import DataError, GensarError
from gensar.ids import IndexConfig, ItemIdentifiers, build_identifiers
from gensar.ids.collisions import collision_rate
from gensar.ids.identifiers import PLOT, REPORT, TABLE, WEIGHTS

from conftest import write_synthetic_jsonl

SMALL = {  # the RQ-VAE; residual k-means end to end: tests/test_ids_rqkmeans.py
    "method": "rqvae",
    "codebook_size": 16,
    "latent_dim": 8,
    "hidden_dims": [64, 32],
    "epochs": 40,
    "batch_size": 128,
    "check_every": 5,
    "kmeans_iters": 10,
}


def small(**changes) -> IndexConfig:
    return IndexConfig(**{**SMALL, **changes})


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    """A prepared 300-item dataset; items 0 and 1 get identical embeddings (a forced collision)."""
    from gensar.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("ids")
    raw = write_synthetic_jsonl(root / "raw", n_users=80, n_items=300, events_per_user=15)
    dataset = root / "dataset"
    prepare_dataset("jsonl", raw, dataset, log=lambda *_: None)
    return dataset


def write_embeddings(dataset: Path, run: Path, *, rows: int | None = None, seed: int = 0) -> None:
    item_ids = load_dataset(dataset).item_ids
    n = len(item_ids)
    rng = np.random.default_rng(seed)
    topic = np.arange(n) % 12
    semantic = rng.normal(size=(12, 48))[topic] + 0.4 * rng.normal(size=(n, 48))
    collab = rng.normal(size=(7, 16))[np.arange(n) % 7] * 0.1 + 0.03 * rng.normal(size=(n, 16))
    semantic[1], collab[1] = semantic[0], collab[0]
    rows = n if rows is None else rows
    ItemEmbeddings(item_ids[:rows], semantic[:rows].astype(np.float32)).save(
        run / "embeddings" / "semantic.safetensors"
    )
    ItemEmbeddings(item_ids[:rows], collab[:rows].astype(np.float32)).save(
        run / "embeddings" / "collab.safetensors"
    )


@pytest.fixture(scope="module")
def joint(catalogue, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    write_embeddings(catalogue, run)
    report = build_identifiers(catalogue, run, small(check_every=1), progress=False)
    return run, report


def test_outputs_exist_and_table_has_the_documented_columns(joint, catalogue):
    run, _ = joint
    folder = run / "identifiers"
    for name in (WEIGHTS, TABLE, REPORT, PLOT):
        assert (folder / name).is_file(), name
    frame = pl.read_parquet(folder / TABLE)
    assert frame.columns == [
        "item_id",
        "shared",
        "semantic",
        "collaborative",
        "semantic_tokens",
        "collaborative_tokens",
    ]
    assert frame["item_id"].to_list() == load_dataset(catalogue).item_ids
    assert frame.schema["shared"] == pl.List(pl.Int64)
    first = frame.row(0, named=True)
    assert first["semantic_tokens"].startswith(
        f"<m1_{first['shared'][0]}><m2_{first['shared'][1]}><s1_"
    )
    assert "<c1_" in first["collaborative_tokens"]


def test_identifiers_share_exactly_the_shared_codes(joint):
    ids = ItemIdentifiers.load(joint[0])
    sem, col = ids.codes_matrix("semantic"), ids.codes_matrix("collaborative")
    assert ids.shared.shape[1] == 2
    assert (sem[:, :2] == col[:, :2]).all()
    # the specific parts are separate codebooks: not the same sequence for every item
    assert not np.array_equal(sem[:, 2:4], col[:, 2:4])


def test_reconstruction_loss_improves_during_training(joint):
    history = joint[1]["training"]["history"]
    first, last = history[0], history[-1]
    assert last["recon_semantic"] < first["recon_semantic"]
    assert last["recon_collaborative"] < first["recon_collaborative"]
    assert last["loss"] < first["loss"]


def test_collisions_never_increase_and_final_identifiers_are_unique(joint):
    run, report = joint
    for kind in ("semantic", "collaborative"):
        rates = report["collision_rate"][kind]
        assert rates["argmax"] > 0  # items 0 and 1 are identical
        assert rates["sinkhorn"] <= rates["argmax"]
        assert rates["final"] == 0.0
    ids = ItemIdentifiers.load(run)
    for kind in ("semantic", "collaborative"):
        matrix = ids.codes_matrix(kind)
        assert collision_rate(matrix) == 0.0
        assert len({len(row) for row in matrix.tolist()}) == 1  # one length per kind
    # the forced duplicate was moved to a free last-level code: no extra level needed
    assert not ids.disambiguation_levels


def test_lookups_round_trip_in_both_directions(joint):
    ids = ItemIdentifiers.load(joint[0] / "identifiers")
    for item in ids.item_ids:
        assert ids.item_for_semantic(ids.semantic_tokens(item)) == item
        assert ids.item_for_semantic("".join(ids.semantic_tokens(item))) == item
        assert ids.item_for_semantic(ids.semantic_codes(item)) == item
        assert ids.item_for_collaborative(ids.collaborative_tokens(item)) == item
        assert ids.item_for_collaborative(ids.collaborative_codes(item)) == item
    item = ids.item_ids[0]
    assert ids.item_for_semantic(ids.collaborative_tokens(item)) is None
    assert ids.item_for_collaborative([10**6] * 5) is None
    with pytest.raises(KeyError):
        ids.semantic_codes("no-such-item")


def test_tokens_and_code_vectors(joint):
    ids = ItemIdentifiers.load(joint[0])
    tokens = ids.all_tokens()
    assert tokens == ItemIdentifiers.load(joint[0]).all_tokens()
    assert len(tokens) == len(set(tokens))
    used = {
        t
        for item in ids.item_ids
        for t in ids.semantic_tokens(item) + ids.collaborative_tokens(item)
    }
    assert used <= set(tokens)
    assert tokens[0] == "<m1_0>" and "<s1_15>" in tokens and "<c2_15>" in tokens
    vectors = ids.code_vectors()
    assert vectors["<m1_3>"].shape == (16,)  # shared: 2d
    assert vectors["<s2_3>"].shape == (8,) and vectors["<c1_0>"].shape == (8,)
    for level in ids.disambiguation_levels:
        assert f"<{level}_0>" not in vectors


def test_report_contents(joint):
    report = json.loads((joint[0] / "identifiers" / REPORT).read_text())
    levels = {row["level"]: row for row in report["codebook_usage"]}
    assert {"m1", "m2", "s1", "s2", "c1", "c2"} <= set(levels)
    assert all(0 < row["used"] <= row["of"] for row in levels.values())
    assert report["seed"] == 42 and report["settings"]["codebook_size"] == 16
    assert set(report["timings_s"]) >= {"train", "assign", "total"}
    assert report["reconstruction"]["semantic"]["mse"] > 0


def test_save_table_elsewhere_loads_without_weights(joint, tmp_path):
    ids = ItemIdentifiers.load(joint[0])
    ids.save_table(tmp_path)
    copy = ItemIdentifiers.load(tmp_path)
    assert copy.all_tokens() == ids.all_tokens()
    assert copy.semantic_tokens(ids.item_ids[5]) == ids.semantic_tokens(ids.item_ids[5])
    with pytest.raises(DataError):
        copy.code_vectors()


def test_same_seed_gives_bit_identical_identifiers(joint, catalogue, tmp_path):
    run, _ = joint
    write_embeddings(catalogue, tmp_path)
    build_identifiers(catalogue, tmp_path, small(check_every=1), progress=False)
    a = pl.read_parquet(run / "identifiers" / TABLE)
    b = pl.read_parquet(tmp_path / "identifiers" / TABLE)
    assert a.equals(b)
    wa, wb = (
        load_file(str(run / "identifiers" / WEIGHTS)),
        load_file(str(tmp_path / "identifiers" / WEIGHTS)),
    )
    assert wa.keys() == wb.keys()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("shared, specific", [(0, 2), (2, 0)])
def test_zero_shared_or_zero_specific_levels(catalogue, tmp_path, shared, specific):
    write_embeddings(catalogue, tmp_path)
    report = build_identifiers(
        catalogue,
        tmp_path,
        small(shared_levels=shared, specific_levels=specific, epochs=10),
        progress=False,
    )
    ids = ItemIdentifiers.load(tmp_path)
    assert ids.shared.shape[1] == shared
    for kind in ("semantic", "collaborative"):
        assert report["collision_rate"][kind]["final"] == 0.0
        assert collision_rate(ids.codes_matrix(kind)) == 0.0
        item = ids.item_ids[7]
        assert ids.item_for(kind, ids.tokens(item, kind)) == item
    if specific == 0:  # one identifier: both kinds hold the same codes
        assert np.array_equal(ids.codes_matrix("semantic"), ids.codes_matrix("collaborative"))
    else:
        assert ids.semantic_tokens(ids.item_ids[0])[0].startswith("<s1_")


@pytest.mark.parametrize("variant", ["semantic", "collaborative"])
def test_ablation_variants_have_one_identifier(catalogue, tmp_path, variant):
    write_embeddings(catalogue, tmp_path)
    if variant == "semantic":  # the variant must not need the other embedding
        (tmp_path / "embeddings" / "collab.safetensors").unlink()
    build_identifiers(
        catalogue, tmp_path, small(variant=variant, levels=3, epochs=10), progress=False
    )
    frame = pl.read_parquet(tmp_path / "identifiers" / TABLE)
    assert frame["semantic_tokens"].to_list() == frame["collaborative_tokens"].to_list()
    assert all(len(row) == 0 for row in frame["shared"].to_list())
    ids = ItemIdentifiers.load(tmp_path)
    assert ids.variant == variant
    prefix = "<s" if variant == "semantic" else "<c"
    assert all(t.startswith(prefix) for t in ids.all_tokens())
    assert collision_rate(ids.codes_matrix("semantic")) == 0.0
    assert len(ids.semantic_codes(ids.item_ids[0])) == 4  # 3 levels + the disambiguation code


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_wrong_number_of_embedding_rows(catalogue, tmp_path):
    write_embeddings(catalogue, tmp_path, rows=250)
    with pytest.raises(DataError) as err:
        build_identifiers(catalogue, tmp_path, small(epochs=1), progress=False)
    assert "rows" in one_line(err) and "semantic.safetensors" in str(err.value)


def test_missing_embeddings(catalogue, tmp_path):
    with pytest.raises(DataError) as err:
        build_identifiers(catalogue, tmp_path, small(epochs=1), progress=False)
    assert "not found" in one_line(err)


def test_older_dataset_schema(catalogue, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(catalogue, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["schema_version"] = 0
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GensarError) as err:
        build_identifiers(old, tmp_path, small(epochs=1), progress=False)
    assert "schema version" in one_line(err)


def test_non_finite_embeddings(catalogue, tmp_path):
    write_embeddings(catalogue, tmp_path)
    path = tmp_path / "embeddings" / "collab.safetensors"
    emb = ItemEmbeddings.load(path)
    emb.matrix[3, 0] = np.nan
    emb.save(path)
    with pytest.raises(DataError) as err:
        build_identifiers(catalogue, tmp_path, small(epochs=1), progress=False)
    assert "NaN" in one_line(err)


def test_index_command(catalogue, tmp_path, capsys):
    from gensar.cli import main

    run = tmp_path / "run"
    write_embeddings(catalogue, run)
    config = tmp_path / "run.yaml"
    config.write_text(
        "index:\n  method: rqvae\n  codebook_size: 16\n  latent_dim: 8\n  hidden_dims: [32]\n"
    )
    with pytest.raises(SystemExit) as done:
        main(
            [
                "index",
                str(catalogue),
                "--run",
                str(run),
                "-c",
                str(config),
                "--set",
                "index.epochs=3",
            ]
        )
    output = capsys.readouterr()
    assert done.value.code in (0, None), output.err
    assert "semantic collisions" in output.out
    assert ItemIdentifiers.load(run).codebook_size == 16
