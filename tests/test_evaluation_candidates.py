"""Candidate lists: shared bytes, the target once, negatives as the protocol says."""

from __future__ import annotations

import json
import random
from pathlib import Path

import bm25s
import numpy as np
import polars as pl
import pytest
from scipy import stats

from gensar.data.dataset import load_dataset
from gensar.errors import DataError
from gensar.evaluation import candidates as cand_module
from gensar.evaluation.candidates import (
    CandidateConfig,
    build_candidates,
    candidates_path,
    load_candidates,
)

SMALL = CandidateConfig(n_negatives=20, bm25_pool=25, seed=3)


@pytest.fixture(scope="module")
def built(tiny_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cands")
    build_candidates(tiny_dataset, out, SMALL)
    return out


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tiny_dataset, built, tmp_path):
    again = tmp_path / "again"
    other = tmp_path / "other"
    build_candidates(tiny_dataset, again, SMALL)
    build_candidates(tiny_dataset, other, SMALL.model_copy(update={"seed": 4}))
    for task in ("recommendation", "search"):
        for split in ("valid", "test"):
            first = candidates_path(built, task, split).read_bytes()
            assert candidates_path(again, task, split).read_bytes() == first
            assert candidates_path(other, task, split).read_bytes() != first


def test_built_once_and_loaded_twice_is_identical_and_rebuild_is_skipped(tiny_dataset, built):
    path = candidates_path(built, "search", "test")
    before = path.stat().st_mtime_ns
    build_candidates(tiny_dataset, built, SMALL)  # same data and settings: kept as is
    assert path.stat().st_mtime_ns == before
    first = load_candidates(built, "search", "test")
    second = load_candidates(built, "search", "test")
    assert first.frame.equals(second.frame)
    manifest = json.loads((built / "candidates" / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 3
    assert manifest["files"]["search_test"]["rows"] == len(first)


def test_every_list_holds_the_target_exactly_once_at_the_recorded_position(tiny_dataset, built):
    dataset = load_dataset(tiny_dataset)
    catalogue = set(dataset.item_ids)
    for task in ("recommendation", "search"):
        for split in ("valid", "test"):
            cands = load_candidates(built, task, split)
            expected = dataset.samples_for(task, split)["sample_id"].sort().to_list()
            assert cands.sample_ids.tolist() == expected
            positions = set()
            for row, target, index in zip(
                cands.candidates, cands.target_item_ids, cands.target_index, strict=True
            ):
                assert len(row) == SMALL.n_negatives + 1
                assert len(set(row)) == len(row)
                assert row.count(target) == 1 and row[index] == target
                assert set(row) <= catalogue
                positions.add(int(index))
            assert len(positions) > 3  # shuffled, not always first


def test_recommendation_negatives_avoid_the_users_whole_history(tiny_dataset, built):
    history = load_dataset(tiny_dataset).user_items()
    for split in ("valid", "test"):
        cands = load_candidates(built, "recommendation", split)
        for user, row, index in zip(
            cands.frame["user_id"], cands.candidates, cands.target_index, strict=True
        ):
            negatives = set(row) - {row[index]}
            assert not negatives & history[user]


def test_search_negatives_are_the_bm25_top_of_the_query(tiny_dataset, built):
    """Checked with bm25s directly: no item outside the list beats a negative from the pool."""
    dataset = load_dataset(tiny_dataset)
    texts = dataset.items["text"].to_list()
    model = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    model.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    cands = load_candidates(built, "search", "test")
    checked = 0
    for query_id, row, index in zip(
        cands.frame["query_id"], cands.candidates, cands.target_index, strict=True
    ):
        tokens = bm25s.tokenize([dataset.query_text[query_id]], stopwords="en", return_ids=False)
        scores = np.asarray(model.get_scores(tokens[0]))
        score = dict(zip(dataset.item_ids, scores, strict=True))
        negatives = [item for i, item in enumerate(row) if i != index]
        target = row[index]
        outside = [score[i] for i in dataset.item_ids if i not in row]
        matching = sum(1 for item in dataset.item_ids if score[item] > 0 and item != target)
        if matching >= SMALL.n_negatives:
            # The negatives are exactly a top-20 of the non-target items (ties aside).
            assert min(score[i] for i in negatives) >= max(outside)
            assert min(score[i] for i in negatives) > 0
            checked += 1
        else:
            # Every matching item is in, the rest is random filling.
            assert sum(1 for i in negatives if score[i] > 0) == matching
    assert checked > 10


def skewed_dataset(folder: Path, search_shift: int = 0) -> Path:
    """200 items with Zipf-like popularity, 150 users with 10 purchases (also searched).

    Each purchase is followed by a search that clicks item ``(i + search_shift) % 200``
    (the purchased item itself by default, as in amazon-unisrec).
    """
    from gensar.data.prepare import prepare_dataset

    rng = random.Random(1)
    raw = folder / "raw"
    raw.mkdir(parents=True)
    n_items = 200
    weights = [1 / (rank + 1) for rank in range(n_items)]
    items = [
        {"item_id": f"i{i}", "title": f"thing {i} topic{i % 5}", "categories": ["Shop"]}
        for i in range(n_items)
    ]
    events = []
    for u in range(150):
        for step in range(10):
            item = f"i{rng.choices(range(n_items), weights)[0]}"
            time = u * 1000 + 2 * step
            events.append({"user_id": f"u{u}", "time": time, "item_id": item})
            clicked = f"i{(int(item[1:]) + search_shift) % n_items}"
            query = f"topic{int(clicked[1:]) % 5} thing"
            events.append(
                {"user_id": f"u{u}", "time": time + 1, "query": query, "items": [clicked]}
            )
    (raw / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (raw / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in events))
    prepare_dataset("jsonl", raw, folder / "dataset", log=lambda *_: None)
    return folder / "dataset"


def test_recommendation_negatives_follow_popularity(tmp_path):
    dataset_dir = skewed_dataset(tmp_path)
    config = CandidateConfig(n_negatives=50, tasks=["recommendation"], splits=["test"])
    build_candidates(dataset_dir, tmp_path / "run", config)
    cands = load_candidates(tmp_path / "run", "recommendation", "test")
    dataset = load_dataset(dataset_dir)
    counts = dataset.events.filter(pl.col("behaviour") == "rec_item")["item_id"].value_counts()
    popularity = dict(counts.iter_rows())
    drawn: dict[str, int] = {}
    for row, index in zip(cands.candidates, cands.target_index, strict=True):
        for i, item in enumerate(row):
            if i != index:
                drawn[item] = drawn.get(item, 0) + 1
    items = sorted(popularity)
    rho = stats.spearmanr([popularity[i] for i in items], [drawn.get(i, 0) for i in items])
    assert rho.statistic > 0.7
    never_clicked = set(dataset.item_ids) - set(popularity)
    assert not never_clicked & set(drawn)


def test_rec_negative_weights_count_rec_interactions_only(tmp_path):
    """Weights are the rec_item counts; search clicks neither add weight nor create it."""
    dataset = load_dataset(skewed_dataset(tmp_path, search_shift=100))
    weights = cand_module.rec_negative_weights(dataset)
    rec = dataset.events.filter(pl.col("behaviour") == "rec_item")
    want = np.zeros(len(dataset.item_ids))
    for item, count in rec["item_id"].value_counts().iter_rows():
        want[dataset.item_index[item]] = count
    np.testing.assert_array_equal(weights, want)
    assert weights.sum() == rec.height == 1500  # every purchase once, not twice
    searched = set(dataset.events.filter(pl.col("behaviour") == "search_item")["item_id"])
    only_searched = searched - set(rec["item_id"])
    assert only_searched  # the shifted clicks reach items nobody bought
    assert all(weights[dataset.item_index[i]] == 0 for i in only_searched)
    builder = cand_module._Builder(dataset, CandidateConfig(n_negatives=30))
    np.testing.assert_allclose(builder.popularity, want / want.sum())
    frame = builder.build("recommendation", "test")
    drawn = {item for row in frame["candidates"] for item in row} - set(frame["target_item_id"])
    assert drawn and not drawn & only_searched


def test_exact_gumbel_path_draws_valid_negatives(tiny_dataset, monkeypatch):
    """Users whose history holds most of the popularity use the exact Gumbel-top-k draw."""
    monkeypatch.setattr(cand_module, "_REJECTION_MIN_MASS", 1.1)  # force it for everyone
    dataset = load_dataset(tiny_dataset)
    builder = cand_module._Builder(dataset, SMALL)
    frame = builder.build("recommendation", "test")
    history = dataset.user_items()
    rows = zip(frame["user_id"], frame["candidates"], frame["target_index"], strict=True)
    for user, row, index in rows:
        row = list(row)
        assert len(set(row)) == SMALL.n_negatives + 1
        assert not (set(row) - {row[index]}) & history[user]


def test_clear_errors_for_too_small_catalogues_and_missing_files(tiny_dataset, tmp_path):
    with pytest.raises(DataError, match="n_negatives"):
        build_candidates(tiny_dataset, tmp_path, CandidateConfig())  # 60 items < 100
    with pytest.raises(DataError, match="n_negatives"):  # a user's history leaves too few items
        build_candidates(tiny_dataset, tmp_path, CandidateConfig(n_negatives=58))
    with pytest.raises(DataError, match="no candidate lists"):
        load_candidates(tmp_path / "nothing", "search", "test")


def test_a_file_not_described_by_the_manifest_is_refused(tiny_dataset, tmp_path):
    """A leftover list from other settings must never be ranked by mistake."""
    build_candidates(tiny_dataset, tmp_path, SMALL)
    stale = candidates_path(tmp_path, "search", "valid").read_bytes()
    build_candidates(
        tiny_dataset, tmp_path, SMALL.model_copy(update={"splits": ["test"], "seed": 9})
    )
    load_candidates(tmp_path, "search", "test")  # the new file is fine
    with pytest.raises(DataError, match="not the file described"):
        load_candidates(tmp_path, "search", "valid")  # still on disk, but from seed 3
    assert candidates_path(tmp_path, "search", "valid").read_bytes() == stale
