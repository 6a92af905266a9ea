"""The canonical dataset: the one format every later stage reads.

A dataset directory holds four Parquet files and a manifest::

    items.parquet    item_id (str, unique), title (str), text (str), categories (list[str])
    queries.parquet  query_id (str, unique), text (str)
    events.parquet   event_id (int64, 0..n-1, the global order), user_id (str), time (int64),
                     behaviour (str: rec_item | search_query | search_item),
                     item_id (str | null; set for rec_item and search_item),
                     query_id (str | null; set for search_query and search_item),
                     session_id (int64 | null; the search session, null for rec_item)
    samples.parquet  sample_id (int64), user_id (str), task (recommendation | search),
                     split (train | valid | test), target_event_id (int64),
                     target_item_id (str), query_id (str | null; the current query of a
                     search target), time (int64),
                     history (list[struct{behaviour, item_id, query_id, time}])
    manifest.json    schema_version, source, options, counts, content_hash

Events are sorted by user, then time, then behaviour rank (rec_item before
search_query before search_item, the tie rule of SPEC section 2), then input
order; ``event_id`` is the row number in that order. Rows of ``items.parquet``
define the item order that embeddings and identifiers follow.
"""

from __future__ import annotations

import polars as pl

SCHEMA_VERSION = 1

REC_ITEM = "rec_item"
SEARCH_QUERY = "search_query"
SEARCH_ITEM = "search_item"
BEHAVIOURS = (REC_ITEM, SEARCH_QUERY, SEARCH_ITEM)
#: Tie-break at equal time: rec before search; a query before the clicks it led to.
BEHAVIOUR_RANK = {REC_ITEM: 0, SEARCH_QUERY: 1, SEARCH_ITEM: 2}

RECOMMENDATION = "recommendation"
SEARCH = "search"
TASKS = (RECOMMENDATION, SEARCH)
SPLITS = ("train", "valid", "test")

ITEMS_SCHEMA = {
    "item_id": pl.String,
    "title": pl.String,
    "text": pl.String,
    "categories": pl.List(pl.String),
}
QUERIES_SCHEMA = {"query_id": pl.String, "text": pl.String}
EVENTS_SCHEMA = {
    "event_id": pl.Int64,
    "user_id": pl.String,
    "time": pl.Int64,
    "behaviour": pl.String,
    "item_id": pl.String,
    "query_id": pl.String,
    "session_id": pl.Int64,
}
HISTORY_ENTRY = pl.Struct(
    {"behaviour": pl.String, "item_id": pl.String, "query_id": pl.String, "time": pl.Int64}
)
SAMPLES_SCHEMA = {
    "sample_id": pl.Int64,
    "user_id": pl.String,
    "task": pl.String,
    "split": pl.String,
    "target_event_id": pl.Int64,
    "target_item_id": pl.String,
    "query_id": pl.String,
    "time": pl.Int64,
    "history": pl.List(HISTORY_ENTRY),
}

FILES = {
    "items": ("items.parquet", ITEMS_SCHEMA),
    "queries": ("queries.parquet", QUERIES_SCHEMA),
    "events": ("events.parquet", EVENTS_SCHEMA),
    "samples": ("samples.parquet", SAMPLES_SCHEMA),
}
MANIFEST = "manifest.json"
