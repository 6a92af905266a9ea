"""Helpers shared by the loaders: opening raw files with clear errors, and the
semi-synthetic search protocol (a purchase of an item with a query is also a
search session)."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from gensar.data import schema
from gensar.errors import DataError
from gensar.values import ValueProblem, check_json_text, check_time, may_hold_surrogate, parse_time


def require_file(path: Path, what: str, fix: str | None = None) -> Path:
    if not path.is_file():
        raise DataError(
            f"missing {what}", where=path, fix=fix or f"put {path.name} in {path.parent}"
        )
    return path


def read_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line without newline) of a plain or gzip text file.

    A corrupt or truncated gzip, or undecodable bytes, become one DataError that
    names the file and line. A UTF-8 byte-order mark (Windows editors write one)
    is not part of the first line: left in, it would become part of an id.
    """
    line_no = 0
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    try:
        raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
        with raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as handle:
            for line_no, line in enumerate(handle, start=1):  # noqa: B007
                yield line_no, line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"cannot read the file after line {line_no} ({err})",
            where=path,
            fix="the file is corrupt or not in the compression its name says; download it again",
        ) from None
    except UnicodeDecodeError as err:
        raise DataError(
            f"line {line_no + 1} is not valid {encoding} ({err.reason})",
            where=path,
            fix=f"convert the file to {encoding}",
        ) from None


def read_json_records(
    path: Path, fix: str = "write one JSON object per line"
) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) of a JSON-lines file; a bad line is one DataError."""
    for line_no, line in read_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"invalid JSON ({err.msg} at column {err.colno})",
                where=f"{path}:{line_no}",
                fix=fix,
            ) from None
        if not isinstance(record, dict):
            raise DataError("a line must be a JSON object", where=f"{path}:{line_no}", fix=fix)
        if may_hold_surrogate(line):
            try:
                check_json_text(record)
            except ValueProblem as err:
                raise DataError(str(err), where=f"{path}:{line_no}", fix=err.fix) from None
        yield line_no, record


def checked_time(value: object, where: str, name: str = "time") -> int:
    """A timestamp from a raw file through the shared check (64-bit, finite), or a DataError."""
    try:
        return parse_time(value, name) if isinstance(value, str) else check_time(value, name)
    except ValueProblem as err:
        raise DataError(str(err), where=where, fix=err.fix) from None


def check_time_column(frame: pl.DataFrame, column: str, path: Path) -> None:
    """A float time column (CSV) must be finite and fit 64 bits: the first bad row is named."""
    values = pl.col(column)
    bad = frame.filter(values.is_nan() | values.is_infinite() | (values.abs() >= 2.0**63))
    if bad.height:
        value = bad[column][0]
        try:
            check_time(value, f"'{column}'")
        except ValueProblem as err:
            raise DataError(str(err), where=f"{path}:{bad['line'][0]}", fix=err.fix) from None


def query_table(texts: list[str]) -> tuple[pl.DataFrame, dict[str, str]]:
    """Distinct query texts -> (queries table, text -> query_id); ids follow sorted text."""
    distinct = sorted(set(texts))
    ids = {text: f"q{n}" for n, text in enumerate(distinct)}
    return pl.DataFrame(
        {"query_id": list(ids.values()), "text": distinct}, schema=schema.QUERIES_SCHEMA
    ), ids


def purchases_to_events(
    purchases: pl.DataFrame,
    item_query: dict[str, str],
    query_ids: dict[str, str],
    pair_query: dict[tuple[str, str], str] | None = None,
) -> pl.DataFrame:
    """Turn purchases (user_id, time, item_id[, line]) into rec and search events.

    Every purchase is a ``rec_item`` event; a purchase of an item that has a
    query (``pair_query`` for that user and item first, else ``item_query``) is
    also a search session at the same time: ``search_query`` then ``search_item``.
    At equal time the canonical order puts the rec event first.
    """
    users = purchases["user_id"].to_list()
    times = purchases["time"].to_list()
    items = purchases["item_id"].to_list()
    lines = purchases["line"].to_list() if "line" in purchases.columns else [None] * len(users)
    out: dict[str, list] = {
        k: [] for k in ("user_id", "time", "behaviour", "item_id", "query_id", "session_id", "line")
    }

    def add(user, time, behaviour, item, query, session, line):
        out["user_id"].append(user)
        out["time"].append(time)
        out["behaviour"].append(behaviour)
        out["item_id"].append(item)
        out["query_id"].append(query)
        out["session_id"].append(session)
        out["line"].append(line)

    session = 0
    for user, time, item, line in zip(users, times, items, lines, strict=True):
        add(user, time, schema.REC_ITEM, item, None, None, line)
        text = (pair_query or {}).get((user, item)) or item_query.get(item)
        if text is None:
            continue
        query_id = query_ids[text]
        add(user, time, schema.SEARCH_QUERY, None, query_id, session, line)
        add(user, time, schema.SEARCH_ITEM, item, query_id, session, line)
        session += 1
    return pl.DataFrame(
        out,
        schema={
            "user_id": pl.String,
            "time": pl.Int64,
            "behaviour": pl.String,
            "item_id": pl.String,
            "query_id": pl.String,
            "session_id": pl.Int64,
            "line": pl.Int64,
        },
    )
