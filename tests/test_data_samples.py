"""SPEC section 2: history windows, tie order, leakage guard, filters and the split."""

from __future__ import annotations

import polars as pl
import pytest

from gensar.data import schema
from gensar.data.prepare import canonical_order
from gensar.data.samples import SampleOptions, build_samples

R, Q, S = schema.REC_ITEM, schema.SEARCH_QUERY, schema.SEARCH_ITEM


def events_frame(rows: list[tuple]) -> pl.DataFrame:
    """rows: (user, time, behaviour, item, query, session)."""
    frame = pl.DataFrame(
        rows,
        schema={
            "user_id": pl.String,
            "time": pl.Int64,
            "behaviour": pl.String,
            "item_id": pl.String,
            "query_id": pl.String,
            "session_id": pl.Int64,
        },
        orient="row",
    )
    return canonical_order(frame)


def purchase(
    user: str, time: int, item: str, query: str | None, session: int | None
) -> list[tuple]:
    rows = [(user, time, R, item, None, None)]
    if query is not None:
        rows += [(user, time, Q, None, query, session), (user, time, S, item, query, session)]
    return rows


def amazon_like_user(user: str = "u", n: int = 8) -> list[tuple]:
    rows = []
    for t in range(n):
        rows += purchase(user, t, f"i{t}", f"q{t % 3}", t)
    return rows


def test_ties_put_rec_before_search_and_query_before_click():
    # Input order deliberately scrambled: search click first, then query, then rec.
    rows = [("u", 5, S, "a", "q", 1), ("u", 5, Q, None, "q", 1), ("u", 5, R, "a", None, None)]
    ordered = events_frame(rows)
    assert ordered["behaviour"].to_list() == [R, Q, S]
    assert ordered["event_id"].to_list() == [0, 1, 2]


def test_history_window_keeps_last_five_rec_and_last_five_sessions():
    samples, _ = build_samples(events_frame(amazon_like_user(n=9)), SampleOptions())
    test_rec = samples.filter(
        (pl.col("task") == "recommendation") & (pl.col("split") == "test")
    ).row(0, named=True)
    history = test_rec["history"]
    rec_items = [h["item_id"] for h in history if h["behaviour"] == R]
    queries = [h for h in history if h["behaviour"] == Q]
    assert rec_items == ["i3", "i4", "i5", "i6", "i7"]  # target i8; last five before it
    assert len(queries) == 5
    # merged by time, rec first at equal time
    assert [h["behaviour"] for h in history[:3]] == [R, Q, S]
    assert [h["time"] for h in history] == sorted(h["time"] for h in history)


def test_window_sizes_are_options():
    options = SampleOptions(max_rec_history=2, max_search_sessions=1)
    samples, _ = build_samples(events_frame(amazon_like_user(n=9)), options)
    history = samples.filter(pl.col("split") == "test")["history"][0]
    assert sum(h["behaviour"] == R for h in history) == 2
    assert sum(h["behaviour"] == Q for h in history) == 1


def test_leakage_guard_drops_the_same_purchase_from_search_history():
    samples, _ = build_samples(events_frame(amazon_like_user(n=6)), SampleOptions())
    for row in samples.filter(pl.col("task") == "search").iter_rows(named=True):
        rec_items = [h["item_id"] for h in row["history"] if h["behaviour"] == R]
        assert row["target_item_id"] not in rec_items[-1:], (
            "the target leaked in as the last rec item"
        )
        assert all(h["time"] < row["time"] for h in row["history"])
    unguarded, _ = build_samples(
        events_frame(amazon_like_user(n=6)), SampleOptions(leakage_guard=False)
    )
    leaked = [
        row
        for row in unguarded.filter(pl.col("task") == "search").iter_rows(named=True)
        if row["history"][-1]["behaviour"] == R
        and row["history"][-1]["item_id"] == row["target_item_id"]
    ]
    assert leaked, "without the guard the same-time rec event is in the history"


def test_search_target_carries_its_query_and_excludes_its_own_session():
    samples, _ = build_samples(events_frame(amazon_like_user(n=6)), SampleOptions())
    row = samples.filter(pl.col("task") == "search").row(0, named=True)
    assert row["query_id"] is not None
    own_session_events = [h for h in row["history"] if h["time"] == row["time"]]
    assert own_session_events == []


def test_filters_need_prior_rec_and_search_and_three_targets():
    # first purchase has no history: never a target; with 3 purchases only 2 targets remain -> user dropped
    samples, dropped = build_samples(events_frame(amazon_like_user(n=3)), SampleOptions())
    assert samples.height == 0
    assert dropped["users_without_target"] == 1
    samples, _ = build_samples(events_frame(amazon_like_user(n=4)), SampleOptions())
    assert samples.filter(pl.col("task") == "recommendation").height == 3
    # a user with only rec events has no search history: no targets at all
    rec_only = [("u", t, R, f"i{t}", None, None) for t in range(10)]
    samples, _ = build_samples(events_frame(rec_only), SampleOptions())
    assert samples.height == 0
    samples, _ = build_samples(events_frame(rec_only), SampleOptions(min_search_history=0))
    assert samples.filter(pl.col("task") == "recommendation").height == 9


def test_leave_one_out_split_per_user_and_task():
    rows = amazon_like_user("a", 7) + amazon_like_user("b", 9)
    samples, _ = build_samples(events_frame(rows), SampleOptions())
    for (_user, _task), part in samples.group_by("user_id", "task"):
        part = part.sort("time")
        splits = part["split"].to_list()
        assert splits[-1] == "test" and splits[-2] == "valid"
        assert set(splits[:-2]) == {"train"}
        assert part.filter(pl.col("split") == "test")["time"][0] == part["time"].max()
    assert samples["sample_id"].to_list() == list(range(samples.height))


def test_unusable_user_can_be_an_error():
    from gensar.errors import DataError

    rows = amazon_like_user("good", 8) + amazon_like_user("short", 2)
    with pytest.raises(DataError, match="'short' has no usable target"):
        build_samples(events_frame(rows), SampleOptions(on_unusable_user="error"))
