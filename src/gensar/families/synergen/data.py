"""Per-user mixed behaviour streams: one token per event, and the targets they predict.

A user's events (``events.parquet``, in ``event_id`` order: by time, rec before
search at equal time, a query before its clicks) become one token stream:

* ``rec_item``  -> an item token of type REC (item row),
* ``search_query`` -> a query token of type QUERY (query row),
* ``search_item`` -> an item token of type SEARCH (item row).

Targets (read from the state at a *context* position, causal attention):

* every ``rec_item`` event is a recommendation target, read from the state of
  the last token before it (so never its own search session, which follows it);
* every ``search_item`` event is a search target, read from the state of its
  session's query token (the query is the input; the other clicks of the same
  session are not: they come after the query).

With ``merge_duplicate_clicks`` a rec click of the same item that a search
session at the same time clicked (one purchase logged as both behaviours) is not
a token: it would sit between the earlier history and the session's query, i.e.
inside the search target's causal input. Its rec target still exists.

Training uses, per user, only the tokens and targets strictly earlier than the
user's first validation/test target of either task (the rule of
``Dataset.rec_training_sequences``), so no held-out target or what follows it is
ever an input or a label. Evaluation contexts use everything before the sample,
like ``Dataset.rec_histories`` for SASRec.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch

from gensar.data import schema
from gensar.data.dataset import Dataset

REC, SEARCH, QUERY = 0, 1, 2  #: token types (the behaviour-type embedding rows)
TASK_REC, TASK_SEARCH = 0, 1
TASK_CODES = {schema.RECOMMENDATION: TASK_REC, schema.SEARCH: TASK_SEARCH}


@dataclass
class UserStream:
    """One user's whole token stream and where each target event reads its state."""

    kinds: np.ndarray  #: [n] int64 token types
    ids: np.ndarray  #: [n] int64 item row (REC/SEARCH) or query row (QUERY)
    times: np.ndarray  #: [n] int64 event times
    #: event_id -> context position for the target of that event (rec and search)
    context: dict[int, int] = field(default_factory=dict)
    #: (context position, item row, task code, event time) of every target, in order
    targets: list[tuple[int, int, int, int]] = field(default_factory=list)


@dataclass
class Window:
    """A training sequence: a slice of a stream and the targets read inside it."""

    kinds: np.ndarray
    ids: np.ndarray
    times: np.ndarray
    ctx: np.ndarray  #: [t] positions inside the window
    items: np.ndarray  #: [t] target item rows
    tasks: np.ndarray  #: [t] task codes

    def __len__(self) -> int:
        return len(self.kinds)


def build_streams(
    dataset: Dataset, *, merge_duplicate_clicks: bool = True
) -> dict[str, UserStream]:
    """Every user's stream over all events (see the module doc for the token rules)."""
    item_index = dataset.item_index
    query_index = {q: row for row, q in enumerate(dataset.queries["query_id"].to_list())}
    events = dataset.events.sort("event_id")
    columns = ("event_id", "user_id", "time", "behaviour", "item_id", "query_id", "session_id")
    out: dict[str, UserStream] = {}
    rows = events.select(columns).iter_rows()
    current: str | None = None
    kinds: list[int] = []
    ids: list[int] = []
    times: list[int] = []
    stream = UserStream(np.empty(0), np.empty(0), np.empty(0))
    query_pos: dict[int, int] = {}
    dup: set[tuple[int, str]] = set()

    def close() -> None:
        if current is not None:
            stream.kinds = np.asarray(kinds, dtype=np.int64)
            stream.ids = np.asarray(ids, dtype=np.int64)
            stream.times = np.asarray(times, dtype=np.int64)
            out[current] = stream

    searched = _search_clicks(events) if merge_duplicate_clicks else {}
    for event_id, user, time, behaviour, item, query, session in rows:
        if user != current:
            close()
            current, kinds, ids, times = user, [], [], []
            stream = UserStream(np.empty(0), np.empty(0), np.empty(0))
            query_pos = {}
            dup = searched.get(user, set())
        if behaviour == schema.REC_ITEM:
            if item not in item_index:
                continue
            ctx = len(kinds) - 1
            stream.context[event_id] = ctx
            stream.targets.append((ctx, item_index[item], TASK_REC, time))
            if (time, item) in dup:
                continue
            kinds.append(REC)
            ids.append(item_index[item])
            times.append(time)
        elif behaviour == schema.SEARCH_QUERY:
            query_pos[session] = len(kinds)
            kinds.append(QUERY)
            ids.append(query_index[query])
            times.append(time)
        elif behaviour == schema.SEARCH_ITEM:
            if item not in item_index:
                continue
            ctx = query_pos.get(session, -1)
            stream.context[event_id] = ctx
            stream.targets.append((ctx, item_index[item], TASK_SEARCH, time))
            kinds.append(SEARCH)
            ids.append(item_index[item])
            times.append(time)
    close()
    return out


def _search_clicks(events: pl.DataFrame) -> dict[str, set[tuple[int, str]]]:
    """Per user, the (time, item) of every search click (to spot duplicated purchases)."""
    clicks = events.filter(pl.col("behaviour") == schema.SEARCH_ITEM)
    out: dict[str, set[tuple[int, str]]] = {}
    for user, time, item in clicks.select("user_id", "time", "item_id").iter_rows():
        out.setdefault(user, set()).add((time, item))
    return out


def heldout_cutoffs(dataset: Dataset) -> dict[str, int]:
    """Per user, the earliest time of any validation or test target (either task)."""
    held = (
        dataset.samples.filter(pl.col("split") != "train")
        .group_by("user_id")
        .agg(pl.col("time").min().alias("cutoff"))
    )
    return dict(zip(held["user_id"].to_list(), held["cutoff"].to_list(), strict=True))


def training_windows(
    streams: dict[str, UserStream], cutoffs: dict[str, int], max_len: int
) -> list[Window]:
    """Leak-free training sequences: each stream cut before the user's held-out cutoff,
    split into consecutive windows of at most ``max_len`` tokens (newest window last);
    a target belongs to the window that holds its context position."""
    windows = []
    for user, stream in streams.items():
        cutoff = cutoffs.get(user)
        n = len(stream.kinds) if cutoff is None else int(np.searchsorted(stream.times, cutoff))
        targets = [t for t in stream.targets if t[0] >= 0 and (cutoff is None or t[3] < cutoff)]
        if n == 0 or not targets:
            continue
        spans, end = [], n
        while end > 0:
            spans.append((max(0, end - max_len), end))
            end -= max_len
        for start, end in reversed(spans):
            mine = [t for t in targets if start <= t[0] < end]
            if not mine:
                continue
            windows.append(
                Window(
                    kinds=stream.kinds[start:end],
                    ids=stream.ids[start:end],
                    times=stream.times[start:end],
                    ctx=np.array([t[0] - start for t in mine], dtype=np.int64),
                    items=np.array([t[1] for t in mine], dtype=np.int64),
                    tasks=np.array([t[2] for t in mine], dtype=np.int64),
                )
            )
    return windows


@dataclass
class TokenBatch:
    """Right-padded token tensors of a batch of sequences (causal attention never lets a
    real token see the padding after it, so no padding mask is needed)."""

    kinds: torch.Tensor  #: [b, L]
    ids: torch.Tensor  #: [b, L]
    times: torch.Tensor  #: [b, L] float, log-scaled time since the sequence's first token
    lengths: torch.Tensor  #: [b]

    def to(self, device: str | torch.device) -> TokenBatch:
        return TokenBatch(*(t.to(device) for t in (self.kinds, self.ids, self.times, self.lengths)))


def log_time(times: np.ndarray, unit: float) -> np.ndarray:
    """``log1p((t - t_first) / unit)``, the time coordinate of time-aware rotary positions."""
    if len(times) == 0:
        return np.zeros(0, dtype=np.float32)
    delta = np.maximum(times.astype(np.float64) - float(times[0]), 0.0) / unit
    return np.log1p(delta).astype(np.float32)


def pad_batch(
    parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], time_unit: float
) -> TokenBatch:
    """Right-pad (kinds, ids, times) triples; padding is an item token of row 0."""
    width = max(1, max(len(k) for k, _, _ in parts))
    kinds = torch.zeros(len(parts), width, dtype=torch.long)
    ids = torch.zeros(len(parts), width, dtype=torch.long)
    times = torch.zeros(len(parts), width, dtype=torch.float32)
    lengths = torch.zeros(len(parts), dtype=torch.long)
    for row, (k, i, t) in enumerate(parts):
        n = len(k)
        lengths[row] = n
        if n:
            kinds[row, :n] = torch.from_numpy(np.asarray(k, dtype=np.int64))
            ids[row, :n] = torch.from_numpy(np.asarray(i, dtype=np.int64))
            times[row, :n] = torch.from_numpy(log_time(np.asarray(t), time_unit))
    return TokenBatch(kinds, ids, times, lengths)


def sample_contexts(
    streams: dict[str, UserStream], samples: pl.DataFrame, max_len: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The input (kinds, ids, times) of each sample: the newest ``max_len`` tokens of its
    user's stream up to and including the sample's context position (empty when the
    target has nothing before it)."""
    out = []
    for user, event_id in samples.select("user_id", "target_event_id").iter_rows():
        stream = streams.get(user)
        ctx = -1 if stream is None else stream.context.get(event_id, -1)
        if ctx < 0:
            out.append((np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)))
            continue
        start = max(0, ctx + 1 - max_len)
        out.append(
            (
                stream.kinds[start : ctx + 1],
                stream.ids[start : ctx + 1],
                stream.times[start : ctx + 1],
            )
        )
    return out


def item_popularity(windows: Sequence[Window], n_items: int) -> np.ndarray:
    """Training target counts per item (ranking negatives are drawn in proportion)."""
    counts = np.zeros(n_items, dtype=np.float64)
    for window in windows:
        np.add.at(counts, window.items, 1.0)
    return counts


def examples_in(windows: Sequence[Window]) -> int:
    """Targets per epoch (the "examples seen" unit of the training log)."""
    return int(sum(len(w.items) for w in windows))


def ceil_div(a: int, b: int) -> int:
    return int(math.ceil(a / b))


def length_sorted_batches(
    contexts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], size: int
) -> list[np.ndarray]:
    """Row indices of ``contexts`` in batches of similar length (little padding)."""
    order = np.argsort([len(c[0]) for c in contexts], kind="stable")
    return [order[i : i + size] for i in range(0, len(order), size)]
