"""The amazon-unisrec loader on the real files, the jsonl loader, and the query protocol."""

from __future__ import annotations

import json

import polars as pl

from gensar.data import load_dataset, schema
from gensar.data.prepare import prepare_dataset
from gensar.data.text import item_text, query_from_categories

from conftest import shared_data


def test_query_protocol_from_category_path():
    levels = [
        "Industrial & Scientific",
        "Tapes, Adhesives & Sealants",
        "Adhesive Tapes",
        "Duct Tape",
    ]
    assert (
        query_from_categories(levels)
        == "industrial scientific tapes adhesives sealants adhesive duct tape"
    )
    assert query_from_categories(["Electronics"]) is None  # a bare root says nothing
    assert query_from_categories(["Electronics"], min_levels=1) == "electronics"
    assert query_from_categories(["Home and Kitchen", "For the Home"]) == "home kitchen"


def test_item_text_strips_html_and_drops_long_descriptions():
    assert item_text("Drill &amp; bits", "<b>Strong</b> drill") == "Drill & bits. Strong drill"
    assert item_text("Drill", "x" * 2001) == "Drill"


def test_amazon_scientific_counts(tmp_path):
    source = shared_data("amazon-scientific")
    manifest = prepare_dataset("amazon-unisrec", source, tmp_path / "ds", log=lambda *_: None)
    counts = manifest["counts"]
    assert counts["users"] == 8442
    assert counts["items"] == 4385
    assert counts["rec_interactions"] == 59427  # every purchase, histories uncapped
    assert 0 < counts["queries"] < 800
    assert counts["search_interactions"] == counts["search_sessions"]
    ds = load_dataset(tmp_path / "ds")
    item = ds.items.filter(pl.col("item_id") == "B0000223SI").row(0, named=True)
    assert item["title"].startswith("PORTER-CABLE 740000801")
    assert item["categories"] == [
        "Industrial & Scientific Abrasive & Finishing Products Manual Sanding Products Sanding Rolls"
    ]
    query_id = ds.events.filter(
        (pl.col("item_id") == "B0000223SI") & (pl.col("behaviour") == schema.SEARCH_ITEM)
    )["query_id"][0]
    assert (
        ds.query_text[query_id]
        == "industrial scientific abrasive finishing products manual sanding rolls"
    )
    # user 0's sequence is the test history followed by the test target, in order
    first_user = ds.events.filter(
        (pl.col("user_id") == "0") & (pl.col("behaviour") == schema.REC_ITEM)
    )
    assert first_user["item_id"][0] == "B00TNNWMXI" and first_user.height == 14
    assert (
        manifest["content_hash"] and len(manifest["source"]["files"]) == 5
    )  # text, item2index, 3 x .inter


def test_jsonl_sessions_with_several_clicks(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    items = [
        {"item_id": f"i{i}", "title": f"item {i}", "categories": ["Shop", "Tools", "Drills"]}
        for i in range(6)
    ]
    events = []
    for u in range(2):
        for t in range(5):
            events.append({"user_id": f"u{u}", "time": 10 * t, "item_id": f"i{t}"})
            events.append(
                {
                    "user_id": f"u{u}",
                    "time": 10 * t + 1,
                    "query": " Cordless DRILL ",
                    "items": [f"i{t}", f"i{t + 1}"],
                }
            )
    (raw / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (raw / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in events))
    prepare_dataset("jsonl", raw, tmp_path / "ds", log=lambda *_: None)
    ds = load_dataset(tmp_path / "ds")
    assert ds.queries["text"].to_list() == ["cordless drill"]
    sessions = (
        ds.events.filter(pl.col("session_id").is_not_null()).group_by("user_id", "session_id").len()
    )
    assert set(sessions["len"].to_list()) == {3}  # query + two clicks
    assert ds.samples.filter(pl.col("task") == "search").height > 0
    # derive_queries adds the category-path query for every purchase
    from gensar.data.prepare import PrepareConfig

    config = PrepareConfig(source_options={"derive_queries": True})
    prepare_dataset("jsonl", raw, tmp_path / "ds2", config, log=lambda *_: None)
    assert "shop tools drills" in load_dataset(tmp_path / "ds2").queries["text"].to_list()


def test_rec_training_sequences_hold_out_every_evaluated_target(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    sequences = ds.rec_training_sequences()
    held = ds.samples.filter(pl.col("split") != "train")
    for user, part in held.group_by("user_id"):
        cutoff = part["time"].min()
        user_rec = ds.events.filter(
            (pl.col("user_id") == user[0]) & (pl.col("behaviour") == schema.REC_ITEM)
        )
        expected = user_rec.filter(pl.col("time") < cutoff)["item_id"].to_list()
        assert sequences.get(user[0], []) == expected
    histories = ds.rec_histories(held.head(5))
    for history, (user, time) in zip(
        histories, held.head(5).select("user_id", "time").iter_rows(), strict=True
    ):
        rec = ds.events.filter(
            (pl.col("user_id") == user)
            & (pl.col("behaviour") == schema.REC_ITEM)
            & (pl.col("time") < time)
        )
        assert history == rec["item_id"].to_list()
