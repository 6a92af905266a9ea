"""What a loader hands over: raw tables in canonical columns, before validation.

Loaders may add a ``line`` column (1-based line number in ``origin[table]``) to
items and events so that validation errors can point at the exact input line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from gensar.data import schema
from gensar.errors import DataError


@dataclass
class RawData:
    items: pl.DataFrame
    queries: pl.DataFrame
    events: pl.DataFrame
    #: Which input file each table came from (for error messages).
    origin: dict[str, Path | str] = field(default_factory=dict)
    #: Provenance for the manifest: source name, files and their hashes, notes.
    info: dict[str, Any] = field(default_factory=dict)


def _where(raw: RawData, table: str, line: Any = None) -> str:
    origin = raw.origin.get(table, table)
    return f"{origin}:{line}" if line is not None else str(origin)


def _first_line(frame: pl.DataFrame, mask: pl.Expr) -> Any:
    if "line" not in frame.columns:
        return None
    hit = frame.filter(mask)
    return hit["line"][0] if hit.height else None


def validate_raw(raw: RawData) -> RawData:
    """Check the raw tables and return them with canonical dtypes.

    Every failure is one DataError naming the file (and line where known), what
    is wrong and how to fix it.
    """
    items = _coerce(raw, "items", raw.items, schema.ITEMS_SCHEMA, optional=("title", "categories"))
    queries = _coerce(raw, "queries", raw.queries, schema.QUERIES_SCHEMA)
    events = _coerce(
        raw,
        "events",
        raw.events,
        {k: v for k, v in schema.EVENTS_SCHEMA.items() if k != "event_id"},
        optional=("item_id", "query_id", "session_id"),
    )

    if items.height == 0:
        raise DataError(
            "no items",
            where=_where(raw, "items"),
            fix="check that the item file is the right one and not empty",
        )
    if events.height == 0:
        raise DataError(
            "no interactions",
            where=_where(raw, "events"),
            fix="check that the interaction file is the right one and not empty",
        )

    for table, frame, key in (("items", items, "item_id"), ("queries", queries, "query_id")):
        nulls = frame[key].is_null() | (frame[key] == "")
        if nulls.any():
            line = _first_line(frame, nulls)
            raise DataError(
                f"empty {key}", where=_where(raw, table, line), fix=f"give every row a {key}"
            )
        dup = frame[key].is_duplicated()
        if dup.any():
            value = frame.filter(dup)[key][0]
            line = _first_line(frame, pl.col(key) == value)
            raise DataError(
                f"duplicate {key} {value!r} ({int(dup.sum())} rows share an id)",
                where=_where(raw, table, line),
                fix=f"make {key} unique (one row per {table[:-1]})",
            )

    bad_behaviour = ~events["behaviour"].is_in(schema.BEHAVIOURS)
    if bad_behaviour.any():
        value = events.filter(bad_behaviour)["behaviour"][0]
        raise DataError(
            f"unknown behaviour {value!r}",
            where=_where(raw, "events", _first_line(events, pl.col("behaviour") == value)),
            fix=f"use one of {', '.join(schema.BEHAVIOURS)}",
        )
    null_user = events["user_id"].is_null() | (events["user_id"] == "")
    if null_user.any():
        raise DataError(
            "event without user_id",
            where=_where(raw, "events", _first_line(events, null_user)),
            fix="give every event a user_id",
        )
    null_time = events["time"].is_null()
    if null_time.any():
        raise DataError(
            "event without time",
            where=_where(raw, "events", _first_line(events, null_time)),
            fix="give every event an integer time (a timestamp or an order)",
        )

    needs_item = pl.col("behaviour").is_in([schema.REC_ITEM, schema.SEARCH_ITEM])
    needs_query = pl.col("behaviour") == schema.SEARCH_QUERY
    for mask, column, what in (
        (needs_item & pl.col("item_id").is_null(), "item_id", "an item event has no item_id"),
        (
            needs_query & pl.col("query_id").is_null(),
            "query_id",
            "a search_query event has no query_id",
        ),
        (
            pl.col("behaviour").is_in([schema.SEARCH_QUERY, schema.SEARCH_ITEM])
            & pl.col("session_id").is_null(),
            "session_id",
            "a search event has no session_id",
        ),
    ):
        bad = events.filter(mask)
        if bad.height:
            line = bad["line"][0] if "line" in bad.columns else None
            raise DataError(
                what, where=_where(raw, "events", line), fix=f"set {column} on every such event"
            )

    known_items = items["item_id"]
    unknown = events.filter(
        pl.col("item_id").is_not_null() & ~pl.col("item_id").is_in(known_items.implode())
    )
    if unknown.height:
        line = unknown["line"][0] if "line" in unknown.columns else None
        raise DataError(
            f"{unknown.height} events name items that are not in the item table (first: {unknown['item_id'][0]!r})",
            where=_where(raw, "events", line),
            fix=f"add those items to {_where(raw, 'items')} or remove the events",
        )
    unknown_q = events.filter(
        pl.col("query_id").is_not_null() & ~pl.col("query_id").is_in(queries["query_id"].implode())
    )
    if unknown_q.height:
        line = unknown_q["line"][0] if "line" in unknown_q.columns else None
        raise DataError(
            f"{unknown_q.height} events name queries that are not in the query table (first: {unknown_q['query_id'][0]!r})",
            where=_where(raw, "events", line),
            fix="add those queries or remove the events",
        )
    # A search session needs exactly one query, issued no later than its clicks.
    sessions = (
        events.filter(pl.col("session_id").is_not_null())
        .group_by("user_id", "session_id")
        .agg(
            (pl.col("behaviour") == schema.SEARCH_QUERY).sum().alias("n_queries"),
            pl.col("time")
            .filter(pl.col("behaviour") == schema.SEARCH_QUERY)
            .min()
            .alias("query_time"),
            pl.col("time")
            .filter(pl.col("behaviour") == schema.SEARCH_ITEM)
            .min()
            .alias("first_click"),
        )
    )
    bad_sessions = sessions.filter(pl.col("n_queries") != 1)
    if bad_sessions.height:
        row = bad_sessions.row(0, named=True)
        raise DataError(
            f"search session {row['session_id']} of user {row['user_id']!r} has {row['n_queries']} queries",
            where=_where(raw, "events"),
            fix="give each search session exactly one search_query event (a new query starts a new session)",
        )
    late = sessions.filter(pl.col("first_click") < pl.col("query_time"))
    if late.height:
        row = late.row(0, named=True)
        raise DataError(
            f"search session {row['session_id']} of user {row['user_id']!r} has a click before its query",
            where=_where(raw, "events"),
            fix="a click must not be earlier than the query it follows",
        )
    return RawData(items=items, queries=queries, events=events, origin=raw.origin, info=raw.info)


def _coerce(
    raw: RawData,
    table: str,
    frame: pl.DataFrame,
    wanted: dict[str, Any],
    optional: tuple[str, ...] = (),
) -> pl.DataFrame:
    """Select the canonical columns with canonical dtypes, or fail with a clear message."""
    columns = []
    for column, dtype in wanted.items():
        if column not in frame.columns:
            if column in optional:
                if column == "categories":
                    columns.append(pl.lit([], dtype=dtype).alias(column))
                elif column == "title":
                    columns.append(pl.lit("").alias(column))
                else:
                    columns.append(pl.lit(None, dtype=dtype).alias(column))
                continue
            raise DataError(
                f"missing column '{column}'",
                where=_where(raw, table),
                fix=f"add a '{column}' field to every row",
            )
        current = frame.schema[column]
        if current == dtype:
            columns.append(pl.col(column))
            continue
        try:
            converted = frame.select(pl.col(column).cast(dtype, strict=True))
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError):
            raise DataError(
                f"column '{column}' has type {current}, expected {dtype}",
                where=_where(raw, table),
                fix=f"write '{column}' as {_friendly(dtype)}",
            ) from None
        if converted[column].null_count() > frame[column].null_count():
            raise DataError(
                f"column '{column}' has values that are not {_friendly(dtype)}",
                where=_where(raw, table),
                fix=f"write '{column}' as {_friendly(dtype)}",
            )
        columns.append(pl.col(column).cast(dtype))
    if "line" in frame.columns:
        columns.append(pl.col("line"))
    out = frame.select(columns)
    if "title" in wanted:
        out = out.with_columns(pl.col("title").fill_null(""), pl.col("text").fill_null(""))
    return out


def _friendly(dtype: Any) -> str:
    if dtype == pl.Int64:
        return "an integer"
    if dtype == pl.String:
        return "a string"
    if isinstance(dtype, pl.List):
        return "a list of strings"
    return str(dtype)
