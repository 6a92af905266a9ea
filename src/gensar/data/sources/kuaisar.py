"""KuaiSAR (Sun et al., CIKM 2023): real search and recommendation logs of Kuaishou.

PATH is the folder of the public release (https://kuaisar.github.io), with three
comma-separated files (a header line each; ``.csv.gz`` is read as well; extra
columns are ignored):

``rec_inter.csv``   user_id, item_id, playing_time, duration_ms, time,
                    timestamp (Unix ms, may be written as a float), click,
                    forward, like, follow, search, search_item_related
``src_inter.csv``   user_id, search_session_id, search_session_time,
                    search_session_timestamp (Unix ms), keyword (anonymised token
                    list such as ``"[20, 34, 3]"``), search_source, item_id (one
                    row per item shown), click_cnt, item_type
``item_features.csv`` item_id, caption (anonymised token list), author_id,
                    item_type, upload_time, upload_type, and
                    {first,second,third,fourth}_level_category_{id,name,name_en}

Recommendation: each ``rec_inter`` row with ``click == 1`` (``rec_positive:
click``, the release's advice) or every row (``all``) is a ``rec_item`` event at
``timestamp``. Search: each (user, search_session_id) is one session: a
``search_query`` event at ``search_session_timestamp`` whose text is the keyword
tokens joined by spaces ("20 34 3"), then a ``search_item`` event for each shown
item with ``click_cnt > 0``. A session whose keyword list is empty has no usable
query and is skipped. Sessions get fresh integer ids, so the release's ids cannot
collide with anything.

Items are ``item_features`` rows: title = the caption tokens, text = caption and
the English category names (``empty`` levels skipped) joined by ". ",
categories = those English names. Only items that occur in a kept event are
listed unless ``keep_unused_items`` (the release describes millions of items).
The search engine also returns live streams, user profiles and other results
absent from ``item_features``; those items are dropped with their events and
counted in ``info`` (this is inherent to the release, not an input error).
Events carry the ``rec_inter.csv`` line number for rec events; search events
have none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import Field

from gensar.config import Section
from gensar.data import schema
from gensar.data.raw import RawData
from gensar.data.sources.common import check_time_column
from gensar.errors import DataError
from gensar.io import sha256_file

LEVELS = ("first", "second", "third", "fourth")
CATEGORY_COLUMNS = tuple(f"{level}_level_category_name_en" for level in LEVELS)
#: Placeholder category names of the release (level not set).
_EMPTY_CATEGORIES = ["", "empty", "Empty", "EMPTY"]

_EVENT_SCHEMA = {
    "user_id": pl.String,
    "time": pl.Int64,
    "behaviour": pl.String,
    "item_id": pl.String,
    "query_id": pl.String,
    "session_id": pl.Int64,
    "line": pl.Int64,
}


class Options(Section):
    rec_positive: Literal["click", "all"] = Field(
        "click",
        description="Which rec_inter rows are rec events: 'click' (click == 1, the release's advice) or 'all'.",
    )
    keep_unused_items: bool = Field(
        False,
        description="List every item_features row, not only the items that occur in events.",
    )


def load(path: Path, options: Options) -> RawData:
    folder = path.parent if path.is_file() else path
    rec_path = _find(folder, "rec_inter.csv")
    src_path = _find(folder, "src_inter.csv")
    item_path = _find(folder, "item_features.csv")

    features, repeated = _read_items(item_path)
    known = features["item_id"]
    rec, rec_info = _rec_events(rec_path, options)
    search, queries, search_info = _search_events(src_path)

    events = pl.concat([rec, search])
    unknown = ~events["item_id"].is_in(known.implode()) & events["item_id"].is_not_null()
    dropped = events.filter(unknown)
    events = events.filter(~unknown)
    used = events["item_id"].drop_nulls().unique()
    clicked_sessions = events.filter(pl.col("behaviour") == schema.SEARCH_ITEM)["session_id"]
    if not options.keep_unused_items:
        features = features.filter(pl.col("item_id").is_in(used.implode()))
    items = _canonical_items(features)
    info: dict[str, Any] = {
        "format": "KuaiSAR release",
        "files": {p.name: sha256_file(p) for p in (rec_path, src_path, item_path)},
        "rec_positive": options.rec_positive,
        **rec_info,
        **search_info,
        "rec_events_dropped_item_not_in_item_features": int(
            (dropped["behaviour"] == schema.REC_ITEM).sum()
        ),
        "search_clicks_dropped_item_not_in_item_features": int(
            (dropped["behaviour"] == schema.SEARCH_ITEM).sum()
        ),
        "items_dropped_not_in_item_features": dropped["item_id"].n_unique(),
        "search_sessions_without_click": int((events["behaviour"] == schema.SEARCH_QUERY).sum())
        - clicked_sessions.n_unique(),
        "item_features_rows": known.len() + repeated,
        "item_features_repeated_rows_ignored": repeated,
        "time": "Unix milliseconds",
    }
    return RawData(
        items=items,
        queries=queries,
        events=events,
        origin={"items": item_path, "queries": src_path, "events": rec_path},
        info=info,
    )


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"missing {name}",
        where=folder,
        fix="point at the folder of the KuaiSAR release (rec_inter.csv, src_inter.csv, item_features.csv)",
    )


def _read_csv(path: Path, columns: dict[str, Any]) -> pl.DataFrame:
    """The named columns with the given types, plus ``line`` (the 1-based file line)."""
    try:
        header = pl.read_csv(path, n_rows=0).columns
    except (pl.exceptions.PolarsError, OSError) as err:
        raise DataError(
            f"cannot read the CSV header ({_first_line(err)})",
            where=path,
            fix="use the original comma-separated file with its header line",
        ) from None
    for column in columns:
        if column not in header:
            raise DataError(
                f"missing column '{column}' (columns: {', '.join(header)[:200]})",
                where=path,
                fix="use the original KuaiSAR file, whose header names every field",
            )
    try:
        frame = pl.read_csv(path, columns=list(columns), schema_overrides=columns)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise DataError(
            f"cannot parse the file ({_first_line(err)})",
            where=path,
            fix="use the original KuaiSAR file (numbers in numeric columns, one row per line)",
        ) from None
    return frame.with_row_index("line", offset=2).with_columns(pl.col("line").cast(pl.Int64))


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _require(frame: pl.DataFrame, path: Path, columns: list[str]) -> None:
    """A null in a needed field is a broken row: name the line."""
    for column in columns:
        bad = frame.filter(pl.col(column).is_null())
        if bad.height:
            raise DataError(
                f"empty '{column}'",
                where=f"{path}:{bad['line'][0]}",
                fix=f"give every row a {column}",
            )


def _rec_events(path: Path, options: Options) -> tuple[pl.DataFrame, dict[str, int]]:
    rec = _read_csv(
        path,
        {"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Float64, "click": pl.Int64},
    )
    kept = rec.filter(pl.col("click") == 1) if options.rec_positive == "click" else rec
    _require(kept, path, ["user_id", "item_id", "timestamp"])
    check_time_column(kept, "timestamp", path)
    events = kept.select(
        pl.col("user_id"),
        pl.col("timestamp").round().cast(pl.Int64).alias("time"),
        pl.lit(schema.REC_ITEM).alias("behaviour"),
        pl.col("item_id"),
        pl.lit(None, pl.String).alias("query_id"),
        pl.lit(None, pl.Int64).alias("session_id"),
        pl.col("line"),
    )
    return events, {"rec_rows": rec.height, "rec_rows_kept": kept.height}


def _search_events(path: Path) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """Query and click events of every session with a keyword, and the query table."""
    src = _read_csv(
        path,
        {
            "user_id": pl.String,
            "search_session_id": pl.String,
            "search_session_timestamp": pl.Float64,
            "keyword": pl.String,
            "item_id": pl.String,
            "click_cnt": pl.Int64,
        },
    )
    _require(src, path, ["user_id", "search_session_id", "search_session_timestamp"])
    check_time_column(src, "search_session_timestamp", path)
    src = src.with_columns(pl.col("search_session_timestamp").round().cast(pl.Int64).alias("time"))
    sessions = (
        src.group_by("user_id", "search_session_id", maintain_order=True)
        .agg(pl.col("time").min(), pl.col("keyword").first())
        .with_columns(_tokens("keyword").alias("query"))
        .sort("user_id", "time", "search_session_id")
    )
    usable = sessions.filter(pl.col("query") != "")
    usable = usable.with_row_index("session_id").with_columns(pl.col("session_id").cast(pl.Int64))

    texts = sorted(set(usable["query"].to_list()))
    queries = pl.DataFrame(
        {"query_id": [f"q{n}" for n in range(len(texts))], "text": texts},
        schema=schema.QUERIES_SCHEMA,
    )
    usable = usable.join(queries.rename({"text": "query"}), on="query", how="left")

    query_events = usable.select(
        "user_id",
        "time",
        pl.lit(schema.SEARCH_QUERY).alias("behaviour"),
        pl.lit(None, pl.String).alias("item_id"),
        "query_id",
        "session_id",
        pl.lit(None, pl.Int64).alias("line"),
    )
    clicks = (
        src.filter((pl.col("click_cnt") > 0) & pl.col("item_id").is_not_null())
        .unique(["user_id", "search_session_id", "item_id"], keep="first", maintain_order=True)
        .join(
            usable.select("user_id", "search_session_id", "session_id", "query_id", "time"),
            on=["user_id", "search_session_id"],
            how="inner",
            suffix="_session",
        )
    )
    click_events = clicks.select(
        "user_id",
        pl.col("time_session").alias("time"),
        pl.lit(schema.SEARCH_ITEM).alias("behaviour"),
        "item_id",
        "query_id",
        "session_id",
        pl.lit(None, pl.Int64).alias("line"),
    )
    events = pl.concat([query_events, click_events]).cast(_EVENT_SCHEMA)
    info = {
        "search_rows": src.height,
        "search_sessions": sessions.height,
        "search_sessions_skipped_empty_keyword": sessions.height - usable.height,
    }
    return events, queries, info


def _tokens(column: str) -> pl.Expr:
    """An anonymised token list ("[20, 34, 3]") as space-joined tokens ("20 34 3")."""
    return (
        pl.col(column)
        .fill_null("")
        .str.replace_all(r"[\[\]'\"]", "")
        .str.replace_all(r"[\s,]+", " ")
        .str.strip_chars()
    )


def _read_items(path: Path) -> tuple[pl.DataFrame, int]:
    """item_features rows (first row of each item_id kept), and how many rows repeated one."""
    frame = _read_csv(
        path,
        {"item_id": pl.String, "caption": pl.String, **dict.fromkeys(CATEGORY_COLUMNS, pl.String)},
    )
    _require(frame, path, ["item_id"])
    rows = frame.height
    frame = frame.unique("item_id", keep="first", maintain_order=True)
    return frame, rows - frame.height


def _canonical_items(frame: pl.DataFrame) -> pl.DataFrame:
    """title = caption tokens; text = caption and English category names joined by ". "."""
    names = [
        pl.when(pl.col(c).str.strip_chars().is_in(_EMPTY_CATEGORIES))
        .then(None)
        .otherwise(pl.col(c).str.strip_chars())
        for c in CATEGORY_COLUMNS
    ]
    caption = _tokens("caption")
    return frame.select(
        pl.col("item_id"),
        caption.alias("title"),
        pl.concat_str(
            pl.when(caption != "").then(caption), *names, separator=". ", ignore_nulls=True
        )
        .fill_null("")
        .alias("text"),
        pl.concat_list(*names).list.drop_nulls().alias("categories"),
        pl.col("line"),
    )
