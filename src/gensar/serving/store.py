"""Live user histories in SQLite: the full event log, and the model's window read fast.

Durability: the database runs in write-ahead-log mode and every ``append`` is one
transaction that is committed before the HTTP reply is sent. Once ``COMMIT``
returns, the transaction is in the WAL file: with ``synchronous=FULL`` the WAL is
fsync'ed at every commit, so an acknowledged event survives a killed process, an
OS crash and a power cut. With ``synchronous=NORMAL`` (WAL mode) the fsync
happens only at checkpoints: the commit is still in the OS page cache, so a
killed *process* loses nothing either, but a power cut may roll back the last
transactions. FULL is the default; NORMAL is the faster choice where the
machine's power is not the risk.

Order: ``seq`` (the rowid) is the arrival order and the only order the model
sees; ``time`` is kept as information (the dataset's time, or the client's or
the server's clock for live events).

The model reads only a window of a history (the last ``max_rec`` rec items and
the last ``max_sessions`` search sessions, paper 3.3), so reads walk the
``(user_id, seq)`` index backwards in small chunks and stop as soon as the window
is full: the cost does not grow with the length of the log.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

from gensar.data import schema
from gensar.errors import GensarError

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY,
    user_id   TEXT    NOT NULL,
    behaviour TEXT    NOT NULL,
    item_id   TEXT,
    query     TEXT,
    time      INTEGER,
    origin    TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_STORE_COLUMNS = {"seq", "user_id", "behaviour", "item_id", "query", "time", "origin"}

#: Most behaviours read back when building one window (bounds a pathological log).
SCAN_LIMIT = 2_000
READ_CHUNK = 64


class Behaviour(NamedTuple):
    """One behaviour as given to the store (the API's history form)."""

    behaviour: str
    item_id: str | None = None
    query: str | None = None
    time: int | None = None


class StoredEvent(NamedTuple):
    """One behaviour as stored: ``seq`` is its place in the global arrival order."""

    seq: int
    behaviour: str
    item_id: str | None
    query: str | None
    time: int | None


class HasBehaviour(Protocol):
    @property
    def behaviour(self) -> str: ...


E = TypeVar("E", bound=HasBehaviour)


def model_window(
    newest_first: Iterable[E], max_rec: int, max_sessions: int
) -> tuple[list[E], bool]:
    """The behaviours the model sees, oldest first, and whether the window is full.

    Mirrors the sample windows of training (``gensar.data.samples``): the last
    ``max_rec`` rec items and the last ``max_sessions`` search sessions, where a
    session is a query and the search clicks after it, merged in arrival order.
    """
    out: list[E] = []
    rec = sessions = 0
    for event in newest_first:
        if rec >= max_rec and sessions >= max_sessions:
            return out[::-1], True
        if event.behaviour == schema.REC_ITEM:
            if rec < max_rec:
                out.append(event)
                rec += 1
        else:
            if sessions < max_sessions:
                out.append(event)
            if event.behaviour == schema.SEARCH_QUERY:
                sessions += 1
    return out[::-1], rec >= max_rec and sessions >= max_sessions


class HistoryStore:
    """One SQLite connection to the history database; use it from one thread at a time."""

    def __init__(self, path: str | Path, *, synchronous: str = "full"):
        self.path = Path(path)
        if self.path.is_dir():
            raise GensarError(
                "the history store is a directory, not a SQLite file",
                where=self.path,
                fix="set serve.store to a file path (e.g. runs/x/serving/history.sqlite3)",
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode (isolation_level=None): transactions are explicit BEGIN/COMMIT.
            self.conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except (OSError, sqlite3.Error) as err:
            raise GensarError(
                f"cannot open the history store ({err})",
                where=self.path,
                fix="set serve.store to a writable file path",
            ) from None
        try:  # read-only look first: a database of something else must not be altered
            tables = {
                row[0]: {c[1] for c in self.conn.execute(f"PRAGMA table_info('{row[0]}')")}
                for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.Error as err:
            self.conn.close()
            raise GensarError(
                f"not a gensar history store ({err})",
                where=self.path,
                fix="point serve.store at the service's own SQLite file, or at a new path",
            ) from None
        if tables and not tables.get("events", set()) >= _STORE_COLUMNS:
            self.conn.close()
            raise GensarError(
                "a SQLite database, but not a gensar history store (no gensar 'events' table); "
                "left untouched",
                where=self.path,
                fix="point serve.store at the service's own SQLite file, or at a new path",
            )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    # -- writes ------------------------------------------------------------------------------------
    def append_many(self, batches: Sequence[tuple[str, Sequence[Behaviour]]]) -> list[int]:
        """Append several users' behaviours in ONE committed transaction (group commit).

        Returns, per batch, the ``seq`` of its last behaviour. When this returns,
        every behaviour is durable (see the module docstring).
        """
        now = int(time.time())
        last: list[int] = []
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for user_id, behaviours in batches:
                seq = 0
                for b in behaviours:
                    cur.execute(
                        "INSERT INTO events (user_id, behaviour, item_id, query, time, origin) "
                        "VALUES (?, ?, ?, ?, ?, 'api')",
                        (
                            user_id,
                            b.behaviour,
                            b.item_id,
                            b.query,
                            now if b.time is None else b.time,
                        ),
                    )
                    seq = int(cur.lastrowid or 0)
                last.append(seq)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return last

    def append(self, user_id: str, behaviours: Sequence[Behaviour]) -> int:
        return self.append_many([(user_id, behaviours)])[0]

    # -- reads -------------------------------------------------------------------------------------
    def newest(self, user_id: str, *, before: int | None = None, limit: int = READ_CHUNK):
        """Up to ``limit`` behaviours of a user, newest first, with ``seq < before``."""
        rows = self.conn.execute(
            "SELECT seq, behaviour, item_id, query, time FROM events "
            "WHERE user_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (user_id, before if before is not None else 2**62, limit),
        ).fetchall()
        return [StoredEvent(*row) for row in rows]

    def window(self, user_id: str, max_rec: int, max_sessions: int) -> list[StoredEvent] | None:
        """The model's window of this user's history, oldest first; None for an unknown user."""
        seen: list[StoredEvent] = []
        before = None
        while len(seen) < SCAN_LIMIT:
            chunk = self.newest(user_id, before=before, limit=READ_CHUNK)
            seen.extend(chunk)
            if len(chunk) < READ_CHUNK:
                break
            if model_window(seen, max_rec, max_sessions)[1]:
                break
            before = chunk[-1].seq
        if not seen:
            return None
        return model_window(seen, max_rec, max_sessions)[0]

    def count(self, user_id: str) -> int:
        return self.conn.execute(
            "SELECT COUNT(*) FROM events WHERE user_id = ?", (user_id,)
        ).fetchone()[0]

    def users(self, prefix: str = "", limit: int = 50) -> list[str]:
        """User ids in sorted order, starting with ``prefix`` (for the demo's picker)."""
        rows = self.conn.execute(
            "SELECT DISTINCT user_id FROM events WHERE user_id >= ? AND user_id < ? "
            "ORDER BY user_id LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        ).fetchall()
        return [row[0] for row in rows]

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def total_events(self) -> int:
        row = self.conn.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    # -- the dataset's histories -----------------------------------------------------------------
    def import_dataset(self, dataset_dir: str | Path) -> int:
        """Load a prepared dataset's ``events.parquet`` once, in the API's history form.

        Returns the number of events imported (0 when this dataset is already in
        the store). One transaction: a kill during the import leaves the store
        as it was, and the next start imports again.
        """
        from gensar.data.dataset import load_dataset

        dataset = load_dataset(dataset_dir)
        content = str(dataset.manifest.get("content_hash", ""))
        have = self.get_meta("dataset_hash")
        if have == content:
            return 0
        if have is not None:
            raise GensarError(
                "the history store was started from another dataset",
                where=self.path,
                fix="use the same --dataset, or another store file (serve.store=...)",
            )
        if self.total_events():
            raise GensarError(
                "the history store already holds live events, so the dataset's older "
                "events cannot be put before them",
                where=self.path,
                fix="start without --dataset, or use a new store file (serve.store=...)",
            )
        rows = _dataset_rows(dataset)
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany(
                "INSERT INTO events (user_id, behaviour, item_id, query, time, origin) "
                "VALUES (?, ?, ?, ?, ?, 'dataset')",
                rows,
            )
            cur.execute("INSERT INTO meta VALUES ('dataset_hash', ?)", (content,))
            cur.execute("INSERT INTO meta VALUES ('dataset_path', ?)", (str(dataset.path),))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return len(rows)


def _dataset_rows(dataset) -> list[tuple]:
    """events.parquet -> (user, behaviour, item, query text, time) rows in event order.

    A ``search_query`` becomes its query text; a ``search_item`` keeps only its
    item (its session is implied by the order, as in the API's history form).
    """
    import polars as pl

    queries = dataset.queries.rename({"text": "query_text"})
    events = (
        dataset.events.sort("event_id")
        .join(queries, on="query_id", how="left", maintain_order="left")
        .select(
            "user_id",
            "behaviour",
            pl.when(pl.col("behaviour") == schema.SEARCH_QUERY)
            .then(None)
            .otherwise(pl.col("item_id"))
            .alias("item_id"),
            pl.when(pl.col("behaviour") == schema.SEARCH_QUERY)
            .then(pl.col("query_text"))
            .otherwise(None)
            .alias("query"),
            "time",
        )
    )
    return events.rows()
