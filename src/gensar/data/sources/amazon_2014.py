"""Amazon 2014 (McAuley et al.): the raw review and metadata dumps, with HEM queries.

PATH is the folder that holds, for one category ``<C>`` (e.g. ``Electronics``):

``reviews_<C>_5.json.gz`` — the 5-core reviews, one JSON object per line::

    {"reviewerID": "A2SUAM1J3GNN3B", "asin": "0000013714", "reviewerName": "J. McDonald",
     "helpful": [2, 3], "reviewText": "...", "overall": 5.0, "summary": "...",
     "unixReviewTime": 1252800000, "reviewTime": "09 13, 2009"}

``meta_<C>.json.gz`` — item metadata, one *Python literal* dict per line (single
quotes, so it is read with ``ast.literal_eval``; strict JSON lines are accepted too)::

    {'asin': '0000031852', 'title': 'Girls Ballet Tutu Zebra Hot Pink', 'price': 3.17,
     'description': '...', 'brand': 'Coxlure', 'related': {...}, 'salesRank': {...},
     'categories': [['Clothing, Shoes & Jewelry', 'Girls'], ['Sports & Outdoors', ...]]}

Uncompressed ``.json`` files are read as well. The category is found from the
file names (``category`` chooses when the folder holds several).

Items are the asins that have reviews. Item text is ``title. description.
category path. brand`` (HTML stripped; a description over 2,000 characters is
dropped, as the authors' code does); the category path (levels joined by " > ")
and the brand are added because many items have no description and both are what
a shopper would type; ``categories`` holds the levels of that path: the first path
with at least ``min_category_levels`` levels, else the first path. Items without a
metadata line keep an empty title and text (``missing_meta: keep``, counted in
``info``) or are dropped with their reviews (``missing_meta: drop``).

Every review is a purchase: a ``rec_item`` event at ``unixReviewTime``. Search is
semi-synthetic (``gensar.data.sources.common.purchases_to_events``), with queries
from one of two protocols (``queries``):

* ``categories`` — an item's query is built from the path above by
  ``query_from_categories`` (Van Gysel et al. 2016; Ai et al. 2017); every
  purchase of an item with a query is also a search session.
* ``hem`` — the real query files of the HEM benchmark (Ai et al., SIGIR 2017) in
  ``hem_dir``: ``query_text.txt.gz`` (one query per line; the 0-based line number is
  the query id) and every ``*.qrels.gz`` there (``<reviewerID>_<qid> 0 <asin>
  <label>``, read in file-name order). A purchase takes the query of the first
  qrels row of its (reviewer, asin) pair; a purchase without one takes the query
  most often paired with its asin in the qrels (ties: first seen), else it stays
  rec-only. The coverage is reported in ``info['hem']``.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

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
    read_lines,
    require_file,
)
from gensar.data.text import clean_text, item_text, query_from_categories
from gensar.errors import ConfigError, DataError
from gensar.io import sha256_file
from gensar.values import ValueProblem, check_json_text, may_hold_surrogate

_REVIEWS = re.compile(r"^reviews_(.+)_5\.json(\.gz)?$")
#: The asin at the start of a metadata line, so lines of unreviewed items are skipped
#: without parsing them (a category's metadata covers far more items than its 5-core).
_META_ASIN = re.compile(r"""^\s*\{\s*['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")
#: The 'related' dict (lists of other asins, most of a line's length and parse time;
#: the loader never reads it). Cut before parsing; a line that does not parse after
#: the cut is parsed whole.
_RELATED = re.compile(r"""['"]related['"]\s*:\s*\{[^{}]*\}\s*,?""")


class Options(Section):
    category: str | None = Field(
        None,
        description="Category in the file names (reviews_<category>_5.json.gz); needed only when PATH holds several.",
    )
    queries: Literal["categories", "hem"] = Field(
        "categories",
        description="Query protocol: 'categories' (from each item's category path) or 'hem' (the HEM query files in hem_dir).",
    )
    hem_dir: str | None = Field(
        None,
        description="With queries: hem, the folder with query_text.txt.gz and *.qrels.gz (e.g. amazon-product-search/Electronics).",
    )
    min_category_levels: int = Field(
        2, ge=1, description="Category paths with fewer levels give no query (protocol: 2)."
    )
    missing_meta: Literal["keep", "drop"] = Field(
        "keep",
        description="Reviewed items without a metadata line: keep them with an empty title, or drop them and their reviews.",
    )


def load(path: Path, options: Options) -> RawData:
    folder = path.parent if path.is_file() else path
    reviews_path, category = _find_reviews(folder, options.category)
    meta_path = _find_meta(folder, category)

    purchases = _read_reviews(reviews_path)
    reviewed = set(purchases["item_id"].to_list())
    meta = _read_meta(meta_path, reviewed)

    missing = sorted(reviewed - set(meta))
    dropped_reviews = 0
    if missing and options.missing_meta == "drop":
        before = purchases.height
        purchases = purchases.filter(~pl.col("item_id").is_in(missing))
        dropped_reviews = before - purchases.height
        reviewed -= set(missing)
        if purchases.height == 0:
            raise DataError(
                "no reviewed item has a metadata line",
                where=meta_path,
                fix="use the meta file of the same category as the reviews",
            )

    asins = sorted(reviewed)
    paths = {a: _category_path(meta[a][0].get("categories"), options) for a in asins if a in meta}
    items = pl.DataFrame(
        {
            "item_id": asins,
            "title": [clean_text(meta[a][0].get("title")) if a in meta else "" for a in asins],
            "text": [_text(meta[a][0], paths[a]) if a in meta else "" for a in asins],
            "categories": [paths.get(a, []) for a in asins],
            "line": [meta[a][1] if a in meta else None for a in asins],
        },
        schema={**schema.ITEMS_SCHEMA, "line": pl.Int64},
    )

    info: dict[str, Any] = {
        "format": "Amazon 2014 raw reviews + metadata",
        "category": category,
        "files": {p.name: sha256_file(p) for p in (reviews_path, meta_path)},
        "items_without_meta": len(missing),
        "missing_meta": options.missing_meta,
        "reviews_dropped_without_meta": dropped_reviews,
        "query_protocol": options.queries,
    }
    origin: dict[str, Path | str] = {"items": meta_path, "events": reviews_path}
    if options.queries == "categories":
        item_query = {}
        for asin, levels in paths.items():
            query = query_from_categories(levels, min_levels=options.min_category_levels)
            if query:
                item_query[asin] = query
        queries, query_ids = query_table(list(item_query.values()))
        events = purchases_to_events(purchases, item_query, query_ids)
        info["items_with_query"] = len(item_query)
        origin["queries"] = meta_path
    else:
        hem_dir = _hem_dir(options)
        texts, query_file = _read_hem_queries(hem_dir)
        rows, qrels_files = _read_qrels(hem_dir, len(texts))
        pair_query, item_query, used, coverage = _hem_assignment(purchases, rows, texts)
        queries, query_ids = query_table(used)
        events = purchases_to_events(purchases, item_query, query_ids, pair_query=pair_query)
        info["hem"] = coverage
        info["files"].update({p.name: sha256_file(p) for p in (query_file, *qrels_files)})
        origin["queries"] = query_file
    return RawData(items=items, queries=queries, events=events, origin=origin, info=info)


def _find_reviews(folder: Path, category: str | None) -> tuple[Path, str]:
    if category:
        for name in (f"reviews_{category}_5.json.gz", f"reviews_{category}_5.json"):
            if (folder / name).is_file():
                return folder / name, category
        raise DataError(
            f"missing reviews_{category}_5.json.gz",
            where=folder,
            fix="put the 5-core review file of that category in this folder or correct source_options.category",
        )
    found = {}
    for candidate in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = _REVIEWS.match(candidate.name)
        if match and candidate.is_file():
            found.setdefault(match.group(1), candidate)
    if not found:
        raise DataError(
            "no reviews_<Category>_5.json.gz file",
            where=folder,
            fix="point at the folder holding the Amazon 2014 5-core review and meta files",
        )
    if len(found) > 1:
        raise DataError(
            f"several categories found ({', '.join(found)})",
            where=folder,
            fix="choose one with source_options.category",
        )
    category, review_file = next(iter(found.items()))
    return review_file, category


def _find_meta(folder: Path, category: str) -> Path:
    for name in (f"meta_{category}.json.gz", f"meta_{category}.json"):
        if (folder / name).is_file():
            return folder / name
    return require_file(
        folder / f"meta_{category}.json.gz",
        "item metadata file",
        fix=f"put meta_{category}.json.gz (from the same Amazon 2014 release) beside the reviews",
    )


def _read_reviews(path: Path) -> pl.DataFrame:
    """Every review as a purchase: (user_id, time, item_id, line)."""
    users, times, asins, lines = [], [], [], []
    for line_no, record in read_json_records(
        path, fix="use the original reviews file: one JSON object per line"
    ):
        for name, kind in (("reviewerID", str), ("asin", str), ("unixReviewTime", int)):
            value = record.get(name)
            if not isinstance(value, kind) or isinstance(value, bool) or value == "":
                got = "missing" if value is None else f"{type(value).__name__} {value!r}"[:80]
                raise DataError(
                    f"field '{name}' must be {'an integer' if kind is int else 'a non-empty string'}, got {got}",
                    where=f"{path}:{line_no}",
                    fix="use the original reviews file (every review has reviewerID, asin and unixReviewTime)",
                )
        users.append(record["reviewerID"])
        asins.append(record["asin"])
        times.append(checked_time(record["unixReviewTime"], f"{path}:{line_no}", "unixReviewTime"))
        lines.append(line_no)
    if not users:
        raise DataError("no reviews", where=path, fix="check that the file is the right one")
    return pl.DataFrame(
        {"user_id": users, "time": times, "item_id": asins, "line": lines},
        schema={"user_id": pl.String, "time": pl.Int64, "item_id": pl.String, "line": pl.Int64},
    )


def _read_meta(path: Path, wanted: set[str]) -> dict[str, tuple[dict[str, Any], int]]:
    """asin -> (metadata dict, line number), for the asins in ``wanted`` only."""
    meta: dict[str, tuple[dict[str, Any], int]] = {}
    for line_no, line in read_lines(path):
        if not line.strip():
            continue
        quick = _META_ASIN.match(line)
        if quick and quick.group(1) not in wanted:
            continue
        record = _parse_literal(line, path, line_no)
        asin = record.get("asin")
        if not isinstance(asin, str) or not asin:
            raise DataError(
                "metadata line without an 'asin'",
                where=f"{path}:{line_no}",
                fix="use the original meta file (every line has an asin)",
            )
        if asin in wanted and asin not in meta:
            _check_meta(record, path, line_no)
            meta[asin] = (record, line_no)
    return meta


def _parse_literal(line: str, path: Path, line_no: int) -> dict[str, Any]:
    """One metadata line: a Python dict literal (never ``eval``), or a JSON object.

    Both can escape a lone surrogate (``'\\ud800'``), which no Parquet file can
    hold: refused here with the line, like every loader (gensar.values).
    """
    record = _parse_literal_unchecked(line, path, line_no)
    if may_hold_surrogate(line):
        try:
            check_json_text(record)
        except ValueProblem as err:
            raise DataError(str(err), where=f"{path}:{line_no}", fix=err.fix) from None
    return record


def _parse_literal_unchecked(line: str, path: Path, line_no: int) -> dict[str, Any]:
    short = _RELATED.sub("", line, count=1)
    if short != line:
        with contextlib.suppress(ValueError, SyntaxError, MemoryError, RecursionError):
            record = ast.literal_eval(short)
            if isinstance(record, dict):
                return record
    try:
        record = ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(
                "not a Python dict literal or a JSON object",
                where=f"{path}:{line_no}",
                fix="use the original meta file: one {'asin': ..., 'title': ...} dict per line",
            ) from None
    if not isinstance(record, dict):
        raise DataError(
            "a metadata line must be a dict",
            where=f"{path}:{line_no}",
            fix="use the original meta file: one {'asin': ..., 'title': ...} dict per line",
        )
    return record


def _check_meta(record: dict[str, Any], path: Path, line_no: int) -> None:
    categories = record.get("categories")
    if categories is None:
        return
    if not isinstance(categories, list) or not all(
        isinstance(p, list) and all(isinstance(level, str) for level in p) for p in categories
    ):
        raise DataError(
            "field 'categories' must be a list of category paths (lists of strings)",
            where=f"{path}:{line_no}",
            fix="write e.g. 'categories': [['Electronics', 'Computers & Accessories']]",
        )


def _category_path(categories: list[list[str]] | None, options: Options) -> list[str]:
    """The first path with at least ``min_category_levels`` levels, else the first path."""
    paths = [[level.strip() for level in p if level.strip()] for p in categories or []]
    for levels in paths:
        if len(levels) >= options.min_category_levels:
            return levels
    return paths[0] if paths else []


def _text(record: dict[str, Any], levels: list[str]) -> str:
    brand = record.get("brand")
    # clean_text (inside item_text) also joins a description given as a list of strings.
    return item_text(
        record.get("title") or "",
        record.get("description") or "",
        " > ".join(levels),
        str(brand) if brand else "",
    )


def _hem_dir(options: Options) -> Path:
    if not options.hem_dir:
        raise ConfigError(
            "source_options.hem_dir is required when queries is 'hem'",
            fix="set it to the HEM folder of this category (holding query_text.txt.gz and *.qrels.gz)",
        )
    folder = Path(options.hem_dir).expanduser()
    if not folder.is_dir():
        raise DataError(
            "HEM folder not found",
            where=folder,
            fix="set source_options.hem_dir to the folder holding query_text.txt.gz and *.qrels.gz",
        )
    return folder


def _read_hem_queries(folder: Path) -> tuple[list[str], Path]:
    """Query texts; the index (0-based line number) is the query id of the qrels."""
    path = folder / "query_text.txt.gz"
    if not path.is_file() and (folder / "query_text.txt").is_file():
        path = folder / "query_text.txt"
    require_file(path, "HEM query file", fix=f"put query_text.txt.gz in {folder}")
    return [" ".join(line.split()) for _, line in read_lines(path)], path


def _read_qrels(folder: Path, n_queries: int) -> tuple[list[tuple[str, str, int]], list[Path]]:
    """(reviewerID, asin, query id) of every relevant qrels row, files in name order."""
    files = sorted(folder.glob("*.qrels.gz")) or sorted(folder.glob("*.qrels"))
    if not files:
        raise DataError(
            "no *.qrels.gz file",
            where=folder,
            fix="put the HEM qrels files beside query_text.txt.gz",
        )
    rows: list[tuple[str, str, int]] = []
    for path in files:
        for line_no, line in read_lines(path):
            fields = line.split()
            if not fields:
                continue
            user, sep, qid = fields[0].rpartition("_")
            if len(fields) != 4 or not sep or not user or not qid.isdigit():
                raise DataError(
                    "expected '<reviewerID>_<query id> 0 <asin> <label>'",
                    where=f"{path}:{line_no}",
                    fix="use the HEM qrels files unchanged",
                )
            if int(qid) >= n_queries:
                raise DataError(
                    f"query id {qid} is beyond the {n_queries} lines of query_text.txt.gz",
                    where=f"{path}:{line_no}",
                    fix="use the qrels and query file of the same HEM folder",
                )
            try:
                relevant = float(fields[3]) > 0
            except ValueError:
                raise DataError(
                    f"label {fields[3]!r} is not a number",
                    where=f"{path}:{line_no}",
                    fix="use the HEM qrels files unchanged",
                ) from None
            if relevant:
                rows.append((user, fields[2], int(qid)))
    return rows, files


def _hem_assignment(
    purchases: pl.DataFrame, rows: list[tuple[str, str, int]], texts: list[str]
) -> tuple[dict[tuple[str, str], str], dict[str, str], list[str], dict[str, Any]]:
    """Pair queries (first qrels row per reviewer and asin), item queries (the asin's
    most frequent qrels query), the query texts purchases use, and the coverage."""
    pair_query: dict[tuple[str, str], str] = {}
    per_item: dict[str, Counter[str]] = {}
    for user, asin, qid in rows:
        text = texts[qid]
        if not text:
            continue
        pair_query.setdefault((user, asin), text)
        per_item.setdefault(asin, Counter())[text] += 1
    item_query = {asin: counts.most_common(1)[0][0] for asin, counts in per_item.items()}

    pairs = list(zip(purchases["user_id"].to_list(), purchases["item_id"].to_list(), strict=True))
    own = by_item = 0
    used_pairs: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for pair in pairs:
        if pair in pair_query:
            own += 1
            used_pairs[pair] = pair_query[pair]
            used.add(pair_query[pair])
        elif pair[1] in item_query:
            by_item += 1
            used.add(item_query[pair[1]])
    coverage = {
        "queries_in_file": len(texts),
        "queries_used": len(used),
        "qrels_rows": len(rows),
        "qrels_pairs_matching_a_review": len(used_pairs),
        "purchases": len(pairs),
        "purchases_with_own_query": own,
        "purchases_with_item_query": by_item,
        "purchases_rec_only": len(pairs) - own - by_item,
    }
    return used_pairs, item_query, sorted(used), coverage
