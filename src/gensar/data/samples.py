"""Targets, history windows and the leave-one-out split (SPEC section 2).

For every user, each ``rec_item`` event is a recommendation target and each
``search_item`` event is a search target (its session's query is the current
query). The history of a target is built from the user's earlier events:

* the last ``max_rec_history`` rec items and the last ``max_search_sessions``
  search sessions (a query and the clicks that followed it) before the target,
  merged by time; at equal time rec events come first (the event order already
  encodes that tie rule);
* for a search target, its own session is not history (its query is the input);
* leakage guard: when a search target equals the last rec item before it (the
  semi-synthetic protocol turns one purchase into both), that rec item is dropped.

A target is kept only with at least ``min_rec_history`` rec items and
``min_search_history`` search sessions in its history; a user keeps a task only
with at least ``min_samples_per_user`` such targets. Per user and task the last
target is the test sample, the one before it the validation sample, the rest train.
"""

from __future__ import annotations

from array import array
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field

from gensar.config import Section
from gensar.data import schema
from gensar.errors import DataError


class SampleOptions(Section):
    max_rec_history: int = Field(5, ge=0, description="Rec items in a history window (code: 5).")
    max_search_sessions: int = Field(
        5, ge=0, description="Search sessions in a history window (code: 5)."
    )
    min_rec_history: int = Field(
        1, ge=0, description="A target needs this many earlier rec items (code: 1)."
    )
    min_search_history: int = Field(
        1, ge=0, description="A target needs this many earlier search sessions (code: 1)."
    )
    min_samples_per_user: int = Field(
        3,
        ge=1,
        description="Users need this many targets per task (code: 3); fewer drops the user from that task.",
    )
    leakage_guard: bool = Field(
        True,
        description="Drop the last rec item from a search target's history when it is the target.",
    )
    on_unusable_user: Literal["drop", "error"] = Field(
        "drop", description="What to do with a user who ends with no usable target in either task."
    )


def build_samples(
    events: pl.DataFrame, options: SampleOptions
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Build ``samples.parquet`` rows from events sorted in canonical order.

    Returns the samples and counts of what the filters dropped (for the manifest).

    Memory stays near the size of the result: users are walked as slices of the
    event table (no frame per user), history windows are kept as one flat array
    of event ids, and the history structs are gathered from the events chunk by
    chunk, in the final sample order (a few bytes per history entry at any time
    besides the result; the explode/join/group-by this replaces held several
    copies of every entry at once).
    """
    rows: dict[str, list] = {name: [] for name in schema.SAMPLES_SCHEMA if name != "history"}
    flat_history = array("q")  # event ids of every window, sample after sample
    history_length = array("q")
    dropped = {
        "targets_short_history": 0,
        "user_tasks_too_few_targets": 0,
        "users_without_target": 0,
    }
    columns = events.select(
        "event_id", "user_id", "time", "behaviour", "item_id", "query_id", "session_id"
    )
    for user_events in _per_user(columns):
        user = user_events["user_id"][0]
        per_task = _user_targets(user_events, options, dropped)
        kept_any = False
        for task in schema.TASKS:
            targets = per_task[task]
            if len(targets) < options.min_samples_per_user:
                if targets:
                    dropped["user_tasks_too_few_targets"] += 1
                continue
            kept_any = True
            last = len(targets) - 1
            for position, (event_id, time, item, query, history) in enumerate(targets):
                split = "test" if position == last else "valid" if position == last - 1 else "train"
                rows["sample_id"].append(0)
                rows["user_id"].append(user)
                rows["task"].append(task)
                rows["split"].append(split)
                rows["target_event_id"].append(event_id)
                rows["target_item_id"].append(item)
                rows["query_id"].append(query)
                rows["time"].append(time)
                flat_history.extend(history)
                history_length.append(len(history))
        if not kept_any:
            dropped["users_without_target"] += 1
            if options.on_unusable_user == "error":
                raise DataError(
                    f"user {user!r} has no usable target (fewer than {options.min_samples_per_user} "
                    f"targets with {options.min_rec_history}+ earlier rec items and "
                    f"{options.min_search_history}+ earlier search sessions in either task)",
                    fix="remove such users, lower samples.min_samples_per_user / min_*_history, "
                    "or set samples.on_unusable_user=drop",
                )
    samples = pl.DataFrame(
        rows, schema={k: v for k, v in schema.SAMPLES_SCHEMA.items() if k != "history"}
    )
    del rows
    task_order = pl.col("task").replace_strict(
        {t: i for i, t in enumerate(schema.TASKS)}, return_dtype=pl.Int8
    )
    split_order = pl.col("split").replace_strict(
        {s: i for i, s in enumerate(schema.SPLITS)}, return_dtype=pl.Int8
    )
    samples = (
        samples.with_row_index("_row")
        .sort(task_order, split_order, "target_event_id")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("sample_id"))
    )
    order = samples["_row"].to_numpy().astype(np.int64)
    history = _gather_histories(
        events,
        np.frombuffer(flat_history, dtype=np.int64),
        np.frombuffer(history_length, dtype=np.int64),
        order,
    )
    samples = samples.drop("_row").with_columns(history)
    return samples.select(list(schema.SAMPLES_SCHEMA)), dropped


def _per_user(columns: pl.DataFrame):
    """Each user's events as a zero-copy slice (events in canonical order are grouped by
    user); a table whose users are not contiguous falls back to ``partition_by``."""
    runs = columns["user_id"].rle().struct.unnest()
    if runs["value"].n_unique() != runs.height:
        yield from columns.partition_by("user_id", maintain_order=True)
        return
    start = 0
    for length in runs["len"].to_list():
        yield columns.slice(start, length)
        start += length


#: Samples whose history structs are gathered at once.
_HISTORY_CHUNK = 100_000


def _gather_histories(
    events: pl.DataFrame, flat: np.ndarray, lengths: np.ndarray, order: np.ndarray
) -> pl.Series:
    """The ``history`` column: for each sample (in ``order``), its window's events as structs.

    ``flat`` holds the windows' event ids one sample after another, ``lengths``
    how many belong to each sample (in build order); the structs come from one
    gather of event rows per chunk and a list array over them (no join).
    """
    dtype = schema.SAMPLES_SCHEMA["history"]
    fields = ["behaviour", "item_id", "query_id", "time"]
    info = events.select(fields)
    ids = events["event_id"].to_numpy()
    if ids.size and np.array_equal(ids, np.arange(ids.size)):
        row_of = None  # canonical order: the event id is the row number
    else:
        by_id = np.argsort(ids, kind="stable")
        row_of = (by_id, ids[by_id])
    starts = np.zeros(lengths.size, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    parts = []
    for begin in range(0, order.size, _HISTORY_CHUNK):
        rows = order[begin : begin + _HISTORY_CHUNK]
        lens = lengths[rows]
        offsets = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        # Position in `flat` of every entry of these samples, in their order.
        within = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lens)
        event_ids = flat[np.repeat(starts[rows], lens) + within]
        if row_of is not None:
            event_ids = row_of[0][np.searchsorted(row_of[1], event_ids)]
        values = info[event_ids].with_columns(
            pl.Series("_row", np.repeat(np.arange(rows.size, dtype=np.int64), lens))
        )
        grouped = values.group_by("_row", maintain_order=True).agg(
            pl.struct(fields).alias("history")
        )
        if grouped.height < rows.size:  # samples with an empty window
            grouped = (
                pl.DataFrame({"_row": np.arange(rows.size, dtype=np.int64)})
                .join(grouped, on="_row", how="left", maintain_order="left")
                .with_columns(pl.col("history").fill_null(pl.lit([], dtype=dtype)))
            )
        parts.append(grouped["history"].cast(dtype))
    if not parts:
        return pl.Series("history", [], dtype=dtype)
    return pl.concat(parts, rechunk=False).alias("history")


def _user_targets(
    user_events: pl.DataFrame, options: SampleOptions, dropped: dict[str, int]
) -> dict[str, list]:
    """All kept targets of one user, per task, in time order."""
    event_ids = user_events["event_id"].to_list()
    times = user_events["time"].to_list()
    behaviours = user_events["behaviour"].to_list()
    items = user_events["item_id"].to_list()
    queries = user_events["query_id"].to_list()
    sessions = user_events["session_id"].to_list()

    session_query: dict[int, str] = {}
    for behaviour, query, session in zip(behaviours, queries, sessions, strict=True):
        if behaviour == schema.SEARCH_QUERY:
            session_query[session] = query

    targets: dict[str, list] = {task: [] for task in schema.TASKS}
    rec_positions: list[int] = []  # positions of rec events seen so far
    session_order: list[int] = []  # session ids in order of their first event
    session_events: dict[int, list[int]] = {}
    for pos, behaviour in enumerate(behaviours):
        if behaviour == schema.REC_ITEM:
            history = _window(
                rec_positions, session_order, session_events, exclude_session=None, options=options
            )
            if history is not None:
                targets[schema.RECOMMENDATION].append(
                    (
                        event_ids[pos],
                        times[pos],
                        items[pos],
                        None,
                        [event_ids[p] for p in history],
                    )
                )
            else:
                dropped["targets_short_history"] += 1
        elif behaviour == schema.SEARCH_ITEM:
            recent_rec = rec_positions
            if options.leakage_guard and rec_positions and items[rec_positions[-1]] == items[pos]:
                recent_rec = rec_positions[:-1]
            history = _window(
                recent_rec,
                session_order,
                session_events,
                exclude_session=sessions[pos],
                options=options,
            )
            if history is not None:
                targets[schema.SEARCH].append(
                    (
                        event_ids[pos],
                        times[pos],
                        items[pos],
                        session_query[sessions[pos]],
                        [event_ids[p] for p in history],
                    )
                )
            else:
                dropped["targets_short_history"] += 1
        # Only now does this event become history for the events after it.
        if behaviour == schema.REC_ITEM:
            rec_positions.append(pos)
        else:
            session = sessions[pos]
            if session not in session_events:
                session_events[session] = []
                session_order.append(session)
            session_events[session].append(pos)
    return targets


def _window(
    rec_positions: list[int],
    session_order: list[int],
    session_events: dict[int, list[int]],
    *,
    exclude_session: int | None,
    options: SampleOptions,
) -> list[int] | None:
    """Positions of the history window, or None when the target has too little history."""
    rec = rec_positions[-options.max_rec_history :] if options.max_rec_history else []
    # Only the newest sessions can matter (a search target's own session, already
    # registered, is among them): a short tail keeps this O(window) per target.
    tail = session_order[-(options.max_search_sessions + 1) :]
    n_earlier = len(session_order) - (1 if exclude_session is not None else 0)
    if len(rec_positions) < options.min_rec_history or n_earlier < options.min_search_history:
        return None
    earlier = [s for s in tail if s != exclude_session]
    chosen = earlier[-options.max_search_sessions :] if options.max_search_sessions else []
    search = [pos for session in chosen for pos in session_events[session]]
    return sorted(rec + search)
