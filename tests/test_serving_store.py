"""History store (SQLite), micro-batcher and settings: the serving parts that need no model."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pytest
import torch

from gensar.errors import GensarError
from gensar.serving.batching import MicroBatcher
from gensar.serving.store import Behaviour, HistoryStore, StoredEvent, model_window

R, Q, S = "rec_item", "search_query", "search_item"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Session scope so that it also covers building ``tiny_run`` (8x faster on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def events(*spec: str) -> list[StoredEvent]:
    """'r1 q s2' -> rec i1, a query, a search click on i2 (seq = position)."""
    out = []
    for n, token in enumerate(spec):
        kind = {"r": R, "q": Q, "s": S}[token[0]]
        item = f"i{token[1:]}" if kind != Q else None
        out.append(StoredEvent(n, kind, item, "text" if kind == Q else None, n))
    return out


def test_window_keeps_last_rec_items_and_whole_last_sessions():
    log = events("r1", "q", "s1", "r2", "q", "s2", "s3", "r3", "r4", "q", "s4")
    window, full = model_window(reversed(log), max_rec=2, max_sessions=2)
    # last two rec items (r3, r4) and the last two sessions (q s2 s3, q s4), in order
    assert [e.seq for e in window] == [4, 5, 6, 7, 8, 9, 10]
    assert full


def test_window_of_short_history_is_everything_and_not_full():
    log = events("r1", "q", "s1")
    window, full = model_window(reversed(log), max_rec=5, max_sessions=5)
    assert window == log
    assert not full


def test_window_with_zero_sessions_has_only_rec_items():
    log = events("r1", "q", "s1", "r2")
    window, _ = model_window(reversed(log), max_rec=5, max_sessions=0)
    assert [e.behaviour for e in window] == [R, R]


@pytest.fixture
def store(tmp_path):
    s = HistoryStore(tmp_path / "h.sqlite3")
    yield s
    s.close()


def test_store_is_wal_and_synchronous_full(store):
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_append_then_window_across_many_chunks(store):
    # 300 behaviours: the window's rec items are at the end, its sessions far back.
    store.append("u", [Behaviour(Q, query="old"), Behaviour(S, "i0")])
    store.append("u", [Behaviour(R, f"i{n}") for n in range(300)])
    store.append("other", [Behaviour(R, "x")])
    window = store.window("u", max_rec=5, max_sessions=5)
    assert [e.item_id for e in window] == [None, "i0", "i295", "i296", "i297", "i298", "i299"]
    assert store.count("u") == 302
    assert store.window("nobody", 5, 5) is None


def test_group_commit_returns_last_seq_per_user(store):
    last = store.append_many(
        [("a", [Behaviour(R, "i1"), Behaviour(R, "i2")]), ("b", [Behaviour(R, "i3")])]
    )
    assert last == [2, 3]
    assert [e.item_id for e in store.newest("a")] == ["i2", "i1"]


def test_committed_events_are_visible_to_a_second_connection(tmp_path):
    writer = HistoryStore(tmp_path / "h.sqlite3")
    reader = HistoryStore(tmp_path / "h.sqlite3")
    writer.append("u", [Behaviour(R, "i1")])
    assert [e.item_id for e in reader.newest("u")] == ["i1"]
    writer.close()
    reader.close()


def test_users_by_prefix(store):
    for user in ("b2", "a1", "b1", "c"):
        store.append(user, [Behaviour(R, "i1")])
    assert store.users("b", 10) == ["b1", "b2"]
    assert store.users("", 2) == ["a1", "b1"]


def test_import_dataset_converts_queries_to_text_once(tiny_dataset, tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    added = store.import_dataset(tiny_dataset)
    source = pl.read_parquet(tiny_dataset / "events.parquet")
    queries = pl.read_parquet(tiny_dataset / "queries.parquet")
    assert added == source.height
    assert store.import_dataset(tiny_dataset) == 0  # already there: a restart imports nothing
    user = source["user_id"][0]
    mine = source.filter(pl.col("user_id") == user).sort("event_id")
    text = dict(zip(queries["query_id"], queries["text"], strict=True))
    stored = list(reversed(store.newest(user, limit=10_000)))
    assert len(stored) == mine.height
    for row, event in zip(mine.iter_rows(named=True), stored, strict=True):
        assert event.behaviour == row["behaviour"]
        if row["behaviour"] == Q:
            assert (event.query, event.item_id) == (text[row["query_id"]], None)
        else:
            assert (event.item_id, event.query) == (row["item_id"], None)
    store.close()


def test_import_refuses_a_store_with_live_events(tiny_dataset, tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    store.append("u", [Behaviour(R, "i1")])
    with pytest.raises(GensarError, match="already holds live events"):
        store.import_dataset(tiny_dataset)
    store.close()


def test_import_refuses_another_dataset(tiny_dataset, tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    store.import_dataset(tiny_dataset)
    store.conn.execute("UPDATE meta SET value = 'other' WHERE key = 'dataset_hash'")
    with pytest.raises(GensarError, match="another dataset"):
        store.import_dataset(tiny_dataset)
    store.close()


def test_failed_transaction_leaves_nothing(store):
    with pytest.raises(sqlite3.IntegrityError):
        store.append("u", [Behaviour(R, "i1"), Behaviour(None, "i2")])  # behaviour NOT NULL
    assert store.count("u") == 0


# -- micro-batching -------------------------------------------------------------------------------
def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches():
    calls: list[list[int]] = []

    def double(batch: list[int]) -> list[int]:
        calls.append(list(batch))
        time.sleep(0.02)  # a model call: requests arriving meanwhile form the next batch
        return [2 * x for x in batch]

    async def main():
        batcher = MicroBatcher(double, ThreadPoolExecutor(1), max_batch=8, max_wait_ms=20)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(n) for n in range(20)))
        await batcher.stop()
        return results

    assert run(main()) == [2 * n for n in range(20)]
    assert sum(len(c) for c in calls) == 20
    assert max(len(c) for c in calls) == 8
    assert len(calls) <= 4  # 20 requests in batches of up to 8, not 20 calls


def test_batching_off_runs_one_at_a_time():
    sizes: list[int] = []
    active = threading.Semaphore(1)

    def ident(batch):
        assert active.acquire(blocking=False), "two model calls at once"
        sizes.append(len(batch))
        time.sleep(0.005)
        active.release()
        return batch

    async def main():
        batcher = MicroBatcher(ident, ThreadPoolExecutor(1), enabled=False)
        await batcher.start()
        return await asyncio.gather(*(batcher.submit(n) for n in range(10)))

    assert run(main()) == list(range(10))
    assert sizes == [1] * 10


def test_a_failing_request_does_not_fail_its_batch():
    def picky(batch):
        if 3 in batch:
            raise ValueError("three is bad")
        return [x + 1 for x in batch]

    async def main():
        batcher = MicroBatcher(picky, ThreadPoolExecutor(1), max_batch=8, max_wait_ms=20)
        await batcher.start()
        results = await asyncio.gather(
            *(batcher.submit(n) for n in range(6)), return_exceptions=True
        )
        await batcher.stop()
        return results

    results = run(main())
    assert isinstance(results[3], ValueError)
    assert [r for n, r in enumerate(results) if n != 3] == [1, 2, 3, 5, 6]


def test_a_lone_request_waits_at_most_max_wait():
    async def main():
        batcher = MicroBatcher(lambda b: b, ThreadPoolExecutor(1), max_batch=16, max_wait_ms=30)
        await batcher.start()
        start = time.perf_counter()
        await batcher.submit(1)
        took = time.perf_counter() - start
        await batcher.stop()
        return took

    assert run(main()) < 0.5  # 30 ms wait; generous bound for a busy machine


def test_batchers_sharing_a_lane_take_turns_and_batch_what_queued_meanwhile():
    """While one kind's call runs, the other kind queues; it all goes into the next call."""
    calls: list[tuple[str, int]] = []
    busy = threading.Lock()

    def model(kind):
        def run_batch(batch):
            assert busy.acquire(blocking=False), "two model calls at once"
            calls.append((kind, len(batch)))
            time.sleep(0.1)
            busy.release()
            return batch

        return run_batch

    async def main():
        pool = ThreadPoolExecutor(2)  # the lane, not the pool, keeps calls apart
        lane = asyncio.Lock()
        a = MicroBatcher(model("a"), pool, max_batch=16, max_wait_ms=1, lane=lane, name="a")
        b = MicroBatcher(model("b"), pool, max_batch=16, max_wait_ms=1, lane=lane, name="b")
        await a.start()
        await b.start()
        first = asyncio.ensure_future(a.submit(0))
        await asyncio.sleep(0.03)  # a's first call is running now
        rest = [b.submit(n) for n in range(10)] + [a.submit(n) for n in range(1, 11)]
        results = await asyncio.gather(first, *rest)
        await a.stop()
        await b.stop()
        return results

    results = run(main())
    assert results == [0, *range(10), *range(1, 11)]
    assert calls == [("a", 1), ("b", 10), ("a", 10)]


# -- configuration --------------------------------------------------------------------------------
def test_serve_config_from_yaml_section_and_overrides(tmp_path):
    from gensar.serving.config import load_serve_config

    file = tmp_path / "serve.yaml"
    file.write_text("serve:\n  port: 9000\n  max_k: 20\n")
    config = load_serve_config(file, ["batching=false", "api_key=abcdefgh12"])
    assert (config.port, config.max_k, config.batching, config.api_key) == (
        9000,
        20,
        False,
        "abcdefgh12",
    )
    assert config.host == "127.0.0.1" and config.is_local()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("port=70000", "field 'port'"),
        ("max_batch=0", "field 'max_batch'"),
        ("api_key=short", "field 'api_key'"),
        ("synchronous=off", "field 'synchronous'"),
        ("bogus=1", "unknown setting"),
    ],
)
def test_bad_serve_settings_are_config_errors(override, message):
    from gensar.errors import ConfigError
    from gensar.serving.config import load_serve_config

    with pytest.raises(ConfigError, match=message):
        load_serve_config(None, [override])
