"""Bring your own data: two JSON-lines files (optionally gzip-compressed).

``items.jsonl`` — one item per line::

    {"item_id": "B001", "title": "Cordless drill", "text": "18V cordless drill ...",
     "categories": ["Tools", "Power Tools", "Drills"]}

``title`` and ``categories`` are optional; ``text`` defaults to the title.

``events.jsonl`` — one behaviour per line, in any order (``time`` orders them;
an integer timestamp or a position)::

    {"user_id": "u1", "time": 1700000000, "item_id": "B001"}                 # a click from recommendation
    {"user_id": "u1", "time": 1700000100, "query": "cordless drill",
     "items": ["B001", "B007"]}                                              # a search session: query, then clicks

A search line may give ``session_id`` (otherwise each line is its own session)
and may click no items. Queries are identified by their text (trimmed,
lower-cased); ``"behaviour": "rec_item"`` or ``"search"`` may be given explicitly.
With ``derive_queries: true`` every purchase of an item whose categories give a
query also becomes a search session (the semi-synthetic Amazon protocol).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import Field

from gensar.config import Section
from gensar.data import schema
from gensar.data.raw import RawData
from gensar.data.sources.common import (
    checked_time,
    purchases_to_events,
    query_table,
    read_json_records,
    require_file,
)
from gensar.data.text import clean_text, query_from_categories
from gensar.errors import DataError
from gensar.io import sha256_file


class Options(Section):
    items_file: str = Field(
        "items.jsonl", description="Item file name inside PATH (.jsonl or .jsonl.gz)."
    )
    events_file: str = Field(
        "events.jsonl", description="Event file name inside PATH (.jsonl or .jsonl.gz)."
    )
    derive_queries: bool = Field(
        False, description="Also turn purchases into search sessions with category-path queries."
    )
    min_category_levels: int = Field(
        2, ge=1, description="With derive_queries: paths with fewer levels give no query."
    )


def load(path: Path, options: Options) -> RawData:
    if path.is_file():
        path = path.parent
    items_path = _find(path, options.items_file)
    events_path = _find(path, options.events_file)

    item_rows = {"item_id": [], "title": [], "text": [], "categories": [], "line": []}
    for line_no, record in _records(items_path):
        item_id = _field(record, "item_id", str, items_path, line_no, required=True)
        title = _field(record, "title", str, items_path, line_no) or ""
        text = _field(record, "text", str, items_path, line_no) or title
        categories = _field(record, "categories", list, items_path, line_no) or []
        if not all(isinstance(c, str) for c in categories):
            raise DataError(
                "field 'categories' must be a list of strings",
                where=f"{items_path}:{line_no}",
                fix='write e.g. "categories": ["Tools", "Drills"]',
            )
        item_rows["item_id"].append(str(item_id))
        item_rows["title"].append(clean_text(title))
        item_rows["text"].append(clean_text(text))
        item_rows["categories"].append(categories)
        item_rows["line"].append(line_no)
    items = pl.DataFrame(item_rows, schema={**schema.ITEMS_SCHEMA, "line": pl.Int64})

    rec_rows = {"user_id": [], "time": [], "item_id": [], "line": []}
    search_lines = []
    for line_no, record in _records(events_path):
        user = _field(record, "user_id", (str, int), events_path, line_no, required=True)
        time = checked_time(
            _field(record, "time", int, events_path, line_no, required=True),
            f"{events_path}:{line_no}",
        )
        behaviour = record.get("behaviour")
        is_search = behaviour == "search" or (behaviour is None and "query" in record)
        if behaviour not in (None, "search", schema.REC_ITEM):
            raise DataError(
                f"unknown behaviour {behaviour!r}",
                where=f"{events_path}:{line_no}",
                fix="use 'rec_item' or 'search' (or omit it)",
            )
        if is_search:
            query = _field(record, "query", str, events_path, line_no, required=True)
            clicked = _field(record, "items", list, events_path, line_no) or []
            session = record.get("session_id")
            search_lines.append(
                (
                    str(user),
                    time,
                    query.strip().lower(),
                    [str(c) for c in clicked],
                    session,
                    line_no,
                )
            )
        else:
            item = _field(record, "item_id", (str, int), events_path, line_no, required=True)
            rec_rows["user_id"].append(str(user))
            rec_rows["time"].append(time)
            rec_rows["item_id"].append(str(item))
            rec_rows["line"].append(line_no)
    purchases = pl.DataFrame(
        rec_rows,
        schema={"user_id": pl.String, "time": pl.Int64, "item_id": pl.String, "line": pl.Int64},
    )

    query_texts = [q for _, _, q, _, _, _ in search_lines if q]
    item_query: dict[str, str] = {}
    if options.derive_queries:
        for item_id, categories in zip(item_rows["item_id"], item_rows["categories"], strict=True):
            query = query_from_categories(categories, min_levels=options.min_category_levels)
            if query:
                item_query[item_id] = query
        query_texts += list(item_query.values())
    queries, query_ids = query_table(query_texts)
    events = purchases_to_events(purchases, item_query, query_ids)
    next_session = (
        (events["session_id"].max() or 0) + 1 if events["session_id"].drop_nulls().len() else 0
    )
    extra = {
        k: [] for k in ("user_id", "time", "behaviour", "item_id", "query_id", "session_id", "line")
    }
    session_ids: dict[tuple[str, object], int] = {}
    for user, time, query, clicked, session, line_no in search_lines:
        if not query:
            raise DataError(
                "empty query",
                where=f"{events_path}:{line_no}",
                fix="give every search line a non-empty query",
            )
        key = (user, session if session is not None else ("line", line_no))
        if key not in session_ids:
            session_ids[key] = next_session
            next_session += 1
            rows = [(schema.SEARCH_QUERY, None)]
        else:
            rows = []
        rows += [(schema.SEARCH_ITEM, item) for item in clicked]
        for behaviour, item in rows:
            extra["user_id"].append(user)
            extra["time"].append(time)
            extra["behaviour"].append(behaviour)
            extra["item_id"].append(item)
            extra["query_id"].append(query_ids[query])
            extra["session_id"].append(session_ids[key])
            extra["line"].append(line_no)
    events = pl.concat([events, pl.DataFrame(extra, schema=events.schema)])
    return RawData(
        items=items,
        queries=queries,
        events=events,
        origin={"items": items_path, "queries": events_path, "events": events_path},
        info={
            "format": "gensar JSON lines",
            "files": {p.name: sha256_file(p) for p in (items_path, events_path)},
        },
    )


def _find(path: Path, name: str) -> Path:
    candidate = path / name
    if not candidate.is_file() and (path / f"{name}.gz").is_file():
        candidate = path / f"{name}.gz"
    return require_file(
        candidate, name, fix=f"put {name} (or {name}.gz) in {path}; see the README for its format"
    )


def _records(path: Path):
    return read_json_records(path)


def _field(record: dict, name: str, kind, path: Path, line_no: int, *, required: bool = False):
    value = record.get(name)
    if value is None:
        if required:
            raise DataError(
                f"missing field '{name}'",
                where=f"{path}:{line_no}",
                fix=f"add '{name}' to every line",
            )
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        names = (
            " or ".join(k.__name__ for k in kinds)
            .replace("str", "a string")
            .replace("int", "an integer")
            .replace("list", "a list")
        )
        raise DataError(
            f"field '{name}' must be {names}, got {type(value).__name__} {value!r}"[:200],
            where=f"{path}:{line_no}",
            fix=f"write '{name}' as {names}",
        )
    return value
