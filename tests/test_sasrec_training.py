"""Training SASRec end to end: learning, export, leakage, repeatability, the recommender."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from gensar.data import schema
from gensar.data.dataset import Dataset, load_dataset
from gensar.embed import collab
from gensar.embed.collab import SASRecRecommender, train_collaborative, validation_cases
from gensar.embed.sasrec import SASRecConfig
from gensar.embed.store import ItemEmbeddings
from gensar.errors import DataError, GensarError

from conftest import write_synthetic_jsonl

FAST = {"max_epochs": 25, "patience": 8, "lr": 5e-3, "dropout": 0.2, "hidden": 32}


@pytest.fixture(scope="module")
def topic_dataset(tmp_path_factory):
    """200 users who mostly buy within one of 6 topics of 10 items each."""
    from gensar.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("topics")
    raw = write_synthetic_jsonl(root / "raw", n_users=200, n_items=60, events_per_user=15)
    prepare_dataset("jsonl", raw, root / "dataset", log=lambda *_: None)
    return root / "dataset"


@pytest.fixture(scope="module")
def trained(topic_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    summary = train_collaborative(
        topic_dataset, run, SASRecConfig(**FAST), progress=False, log=lambda *_: None
    )
    return run, summary


def popularity_ndcg(dataset_dir) -> float:
    """NDCG@10 of ranking by training popularity (ties broken at random, seeded)."""
    dataset = load_dataset(dataset_dir)
    popularity = collab.item_popularity(
        collab.training_token_sequences(dataset), len(dataset.item_ids)
    )
    _, targets = validation_cases(dataset, 50)
    jitter = np.random.default_rng(0).random((len(targets), len(popularity))) * 1e-3
    scores = popularity[None] + jitter
    rank = (scores > scores[np.arange(len(targets)), targets][:, None]).sum(1)
    return float(np.where(rank < 10, 1 / np.log2(rank + 2), 0.0).mean())


def test_training_lowers_the_loss_and_beats_popularity(trained, topic_dataset):
    run, summary = trained
    log = [json.loads(line) for line in (run / "embeddings/sasrec/metrics.jsonl").open()]
    assert len(log) == summary["epochs_run"]
    assert log[-1]["loss"] < 0.9 * log[0]["loss"]
    best = max(r["valid_ndcg10"] for r in log)
    assert summary["valid_ndcg@10"] == pytest.approx(best, abs=1e-6)
    assert summary["valid_ndcg@10"] > 2 * popularity_ndcg(topic_dataset)


def test_embeddings_follow_the_dataset_item_order(trained, topic_dataset):
    run, summary = trained
    dataset = load_dataset(topic_dataset)
    emb = ItemEmbeddings.load(run / "embeddings/collab.safetensors")
    assert emb.item_ids == dataset.item_ids
    assert emb.matrix.shape == (len(dataset.item_ids), FAST["hidden"])
    assert emb.meta["valid_ndcg@10"] == pytest.approx(summary["valid_ndcg@10"])
    assert emb.meta["config"]["hidden"] == FAST["hidden"]
    weights = load_file(str(run / "embeddings/sasrec/model.safetensors"))
    # the exported rows are the model's item table without the padding row
    np.testing.assert_array_equal(emb.matrix, weights["item_emb.weight"][1:].numpy())
    config = json.loads((run / "embeddings/sasrec/config.json").read_text())
    assert config["item_ids"] == dataset.item_ids
    # items of one topic end up closer to each other than to other topics
    unit = emb.matrix / np.linalg.norm(emb.matrix, axis=1, keepdims=True)
    sim = unit @ unit.T
    topic = np.arange(len(emb.item_ids)) % 6  # item i is in topic i % 6
    same = topic[:, None] == topic[None]
    off_diagonal = ~np.eye(len(topic), dtype=bool)
    assert sim[same & off_diagonal].mean() > sim[~same].mean() + 0.1


def leaked_positions(dataset: Dataset, sequences: list[list[int]]) -> int:
    """How many training tokens lie at or after the user's first held-out target."""
    held = (
        dataset.samples.filter(pl.col("split") != "train")
        .group_by("user_id")
        .agg(pl.col("time").min().alias("cutoff"))
    )
    rec = dataset.events.filter(pl.col("behaviour") == schema.REC_ITEM).join(held, on="user_id")
    allowed = rec.filter(pl.col("time") < pl.col("cutoff")).group_by("user_id").len()
    n_allowed = dict(allowed.iter_rows())
    index = dataset.item_index
    leaks = 0
    full = {
        user: [index[i] + 1 for i in items]
        for user, items in rec.sort("event_id")
        .group_by("user_id", maintain_order=True)
        .agg("item_id")
        .iter_rows()
    }
    for seq in sequences:
        # find the user whose full rec sequence starts with this one
        owners = [u for u, items in full.items() if items[: len(seq)] == seq]
        assert owners, "a training sequence is not the start of any user's rec sequence"
        leaks += min(max(0, len(seq) - n_allowed.get(u, 0)) for u in owners)
    return leaks


def test_training_sees_no_held_out_target(tiny_dataset, tmp_path, monkeypatch):
    """Spy on what training actually receives, then check it against the split."""
    seen: list[list[list[int]]] = []
    real_epoch = collab.train_epoch

    def spy(model, optimiser, sequences, *args, **kwargs):
        seen.append([list(s) for s in sequences])
        return real_epoch(model, optimiser, sequences, *args, **kwargs)

    monkeypatch.setattr(collab, "train_epoch", spy)
    config = SASRecConfig(max_epochs=1, hidden=16)
    train_collaborative(tiny_dataset, tmp_path, config, progress=False, log=lambda *_: None)
    dataset = load_dataset(tiny_dataset)
    assert seen and len(seen[0]) > 0
    assert leaked_positions(dataset, seen[0]) == 0

    # the check itself has teeth: all rec events (what a careless trainer would use)
    # put every validation and test target into training
    def all_events(self):
        rec = self.events.filter(pl.col("behaviour") == schema.REC_ITEM).sort("event_id")
        return dict(rec.group_by("user_id", maintain_order=True).agg("item_id").iter_rows())

    monkeypatch.setattr(Dataset, "rec_training_sequences", all_events)
    careless = collab.training_token_sequences(load_dataset(tiny_dataset))
    held_out = dataset.samples.filter(
        (pl.col("split") != "train") & (pl.col("task") == "recommendation")
    ).height
    assert leaked_positions(dataset, careless) >= held_out


def test_same_seed_same_embeddings(tiny_dataset, tmp_path):
    def run(name, seed):
        config = SASRecConfig(max_epochs=3, patience=3, hidden=16, seed=seed)
        train_collaborative(
            tiny_dataset, tmp_path / name, config, progress=False, log=lambda *_: None
        )
        return ItemEmbeddings.load(tmp_path / name / "embeddings/collab.safetensors").matrix

    a, b, c = run("a", 0), run("b", 0), run("c", 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bce_loss_trains(topic_dataset, tmp_path):
    config = SASRecConfig(**{**FAST, "loss": "bce", "max_epochs": 10, "patience": 10})
    summary = train_collaborative(
        topic_dataset, tmp_path, config, progress=False, log=lambda *_: None
    )
    log = [json.loads(x) for x in (tmp_path / "embeddings/sasrec/metrics.jsonl").open()]
    assert summary["epochs_run"] == len(log) == 10
    assert all(np.isfinite(r["loss"]) for r in log)
    assert log[-1]["loss"] < 0.85 * log[0]["loss"]
    assert summary["valid_ndcg@10"] > 2 * popularity_ndcg(topic_dataset)


def test_round_trip_reproduces_the_best_validation_score(trained, topic_dataset):
    run, summary = trained
    rec = SASRecRecommender.load(run / "embeddings/sasrec", device="cpu")
    dataset = load_dataset(topic_dataset)
    inputs, targets = validation_cases(dataset, rec.config.max_len)
    again = collab.evaluate(rec.model, inputs, targets, 64, "cpu")
    assert again.ndcg == pytest.approx(summary["valid_ndcg@10"], abs=1e-12)

    histories = dataset.rec_histories(dataset.samples_for("recommendation", "valid"), 50)
    first = rec.score_all(histories)
    second = SASRecRecommender.load(run / "embeddings/sasrec", device="cpu").score_all(histories)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (len(histories), len(dataset.item_ids))
    assert rec.item_ids == dataset.item_ids


def test_scores_of_candidates_match_the_full_ranking(trained):
    run, _ = trained
    rec = SASRecRecommender.load(run / "embeddings/sasrec", device="cpu")
    histories = [["i0", "i6", "i12"], ["i1"], [], ["unknown", "i5"]]
    candidates = [["i0", "i3", "i18"], ["i2", "i7", "i59"], ["i4", "i10", "i40"], ["i5", "i1"]]
    full = rec.score_all(histories)
    scored = rec.score_candidates(histories, candidates)
    assert scored.shape == (4, 3)
    for row, cands in enumerate(candidates):
        for col, item in enumerate(cands):
            assert scored[row, col] == pytest.approx(full[row, rec.item_index[item]], rel=1e-5)
    assert scored[3, 2] == -np.inf  # a shorter candidate list is padded
    # unknown ids are skipped; an empty history gets the popularity ranking
    np.testing.assert_allclose(full[3], rec.score_all([["i5"]])[0], rtol=1e-5, atol=1e-5)
    assert np.isfinite(full[2]).all() and full[2].std() > 0
    assert rec.recommend(["i0", "i6"], k=3, exclude_history=True)[0][0] not in {"i0", "i6"}


def test_topic_history_recommends_the_topic(trained):
    run, _ = trained
    rec = SASRecRecommender.load(run / "embeddings/sasrec", device="cpu")
    top = [item for item, _ in rec.recommend(["i0", "i6", "i12", "i18", "i24"], k=5)]
    assert sum(int(item[1:]) % 6 == 0 for item in top) >= 4


def test_bad_inputs_are_clear_errors(tmp_path, trained):
    with pytest.raises(DataError, match="not a prepared gensar dataset"):
        train_collaborative(tmp_path, tmp_path / "run", progress=False)
    with pytest.raises(DataError, match="dataset directory not found"):
        train_collaborative(tmp_path / "missing", tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "embeddings").exists()
    with pytest.raises(GensarError, match="not a trained SASRec folder"):
        SASRecRecommender.load(tmp_path)
    rec = SASRecRecommender.load(trained[0] / "embeddings/sasrec", device="cpu")
    with pytest.raises(GensarError, match="not in the model's catalogue"):
        rec.score_candidates([["i1"]], [["nope"]])
    with pytest.raises(GensarError, match="candidate lists"):
        rec.score_candidates([["i1"], ["i2"]], [["i3"]])


def test_command_trains_and_reports_bad_settings(tiny_dataset, tmp_path, capsys):
    from gensar.cli import main

    def cli(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as done:
            main(["embed", "collab", *args])
        out = capsys.readouterr()
        return done.value.code or 0, out.out, out.err

    code, out, err = cli(
        str(tiny_dataset),
        "--run",
        str(tmp_path),
        "--set",
        "collab.max_epochs=1",
        "--set",
        "collab.hidden=16",
    )
    assert code == 0, err
    assert json.loads(out[out.index("{") :])["epochs_run"] == 1
    assert (tmp_path / "embeddings/collab.safetensors").is_file()
    code, out, err = cli(str(tiny_dataset), "--run", str(tmp_path), "--set", "collab.dropout=2")
    assert code == 2
    assert "dropout" in err and "Traceback" not in err
    code, out, err = cli(str(tmp_path / "nowhere"), "--run", str(tmp_path))
    assert code == 2 and "dataset directory not found" in err


def test_threads_setting_is_restored(tiny_dataset, tmp_path):
    before = torch.get_num_threads()
    config = SASRecConfig(max_epochs=1, hidden=16, threads=1)
    train_collaborative(tiny_dataset, tmp_path, config, progress=False, log=lambda *_: None)
    assert torch.get_num_threads() == before


def test_a_model_saved_before_the_recbole_options_loads_as_it_was_built(tiny_dataset, tmp_path):
    """config.json written before positions/examples/ffn_dropout/layer_norm_eps existed
    describes a model built the old way, whatever the defaults are now."""
    import shutil

    old = SASRecConfig(max_epochs=1, hidden=16, **collab.BEFORE_OPTIONS)
    train_collaborative(tiny_dataset, tmp_path / "run", old, progress=False, log=lambda *_: None)
    saved = tmp_path / "run/embeddings/sasrec"
    legacy = tmp_path / "legacy"
    shutil.copytree(saved, legacy)
    info = json.loads((legacy / "config.json").read_text())
    for key in collab.BEFORE_OPTIONS:
        del info["config"][key]
    (legacy / "config.json").write_text(json.dumps(info))

    rec, again = (SASRecRecommender.load(p, device="cpu") for p in (saved, legacy))
    assert again.config == rec.config
    histories = [["i0", "i6", "i12"], ["i1", "i2"]]
    np.testing.assert_array_equal(rec.score_all(histories), again.score_all(histories))
