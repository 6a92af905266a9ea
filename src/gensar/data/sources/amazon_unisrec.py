"""Amazon 2018 in the UniSRec format (Hou et al., KDD 2022).

Files in one directory, with a common prefix (e.g. ``Scientific``):
``<P>.text`` (``item_asin<TAB>title. category path. brand.``), ``<P>.item2index``,
``<P>.user2index`` and ``<P>.{train,valid,test}.inter`` (RecBole atomic format:
``user<TAB>history item ids<TAB>target``). There are no timestamps: the order of
a user's purchases is the time. A user's full sequence is the history of their
last ``.inter`` row followed by its target.

Search is not recorded; it is built by the product-search protocol (see
``gensar.data.text.query_from_categories``): the category path of the text,
whose levels are space-joined in this format, gives one query per item; the
root level alone (e.g. "Industrial & Scientific") gives none.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
from pydantic import Field

from gensar.config import Section
from gensar.data import schema
from gensar.data.raw import RawData
from gensar.data.sources.common import purchases_to_events, query_table, read_lines, require_file
from gensar.data.text import query_from_categories
from gensar.errors import DataError
from gensar.io import sha256_file


class Options(Section):
    prefix: str | None = Field(
        None,
        description="File prefix (e.g. Scientific); found from the single *.text file when unset.",
    )
    min_category_levels: int = Field(
        2, ge=1, description="Category paths with fewer levels give no query (protocol: 2)."
    )


def load(path: Path, options: Options) -> RawData:
    if path.is_file():
        path = path.parent
    prefix = options.prefix or _find_prefix(path)
    text_file = require_file(path / f"{prefix}.text", "item text file")
    item_file = require_file(path / f"{prefix}.item2index", "item index file")
    inter_files = [path / f"{prefix}.{split}.inter" for split in ("train", "valid", "test")]
    present = [f for f in inter_files if f.is_file()]
    if not present:
        raise DataError(
            f"no {prefix}.{{train,valid,test}}.inter files",
            where=path,
            fix="put the UniSRec interaction files beside the .text file",
        )

    index_to_asin = _read_item_index(item_file)
    texts = _read_text(text_file)
    sequences = _read_sequences(present, index_to_asin)

    missing = sorted({item for seq in sequences.values() for item, _ in seq} - set(texts))
    if missing:
        raise DataError(
            f"{len(missing)} interacted items have no text (first: {missing[0]!r})",
            where=text_file,
            fix="use the .text file of the same dataset as the .inter files",
        )

    rough = [_split_text(text)[1] for text, _ in texts.values()]
    root = _root_level(rough)
    paths = {asin: _split_text(text, root) for asin, (text, _) in texts.items()}
    item_query: dict[str, str] = {}
    for asin, (_, category, _) in paths.items():
        if not category:
            continue
        rest = category[len(root) :].strip() if root and category.startswith(root) else category
        levels = [root, rest] if root else [category]
        query = query_from_categories(
            [level for level in levels if level], min_levels=options.min_category_levels
        )
        if query:
            item_query[asin] = query
    queries, query_ids = query_table(list(item_query.values()))

    items = pl.DataFrame(
        {
            "item_id": list(texts),
            "title": [paths[a][0] for a in texts],
            "text": [texts[a][0].strip() for a in texts],
            "categories": [[paths[a][1]] if paths[a][1] else [] for a in texts],
            "line": [texts[a][1] for a in texts],
        },
        schema={**schema.ITEMS_SCHEMA, "line": pl.Int64},
    )
    users, times, items_bought = [], [], []
    for user, seq in sequences.items():
        for order, (item, _) in enumerate(seq):
            users.append(user)
            times.append(order)
            items_bought.append(item)
    purchases = pl.DataFrame(
        {"user_id": users, "time": times, "item_id": items_bought},
        schema={"user_id": pl.String, "time": pl.Int64, "item_id": pl.String},
    )
    events = purchases_to_events(purchases, item_query, query_ids)
    return RawData(
        items=items,
        queries=queries,
        events=events,
        origin={"items": text_file, "queries": text_file, "events": present[-1]},
        info={
            "format": "UniSRec (Amazon 2018)",
            "files": {f.name: sha256_file(f) for f in [text_file, item_file, *present]},
            "query_protocol": f"category path terms, stopwords and repeats removed; root level '{root}' alone gives none",
            "time": "purchase order (no timestamps in this format)",
        },
    )


def _find_prefix(path: Path) -> str:
    found = sorted(p.name[: -len(".text")] for p in path.glob("*.text"))
    if len(found) != 1:
        raise DataError(
            f"expected exactly one *.text file, found {len(found)}",
            where=path,
            fix="point at the folder of one UniSRec dataset or set source_options.prefix",
        )
    return found[0]


def _read_item_index(path: Path) -> dict[str, str]:
    """index -> asin. The mapping must be one-to-one: a repeated index would silently
    hand one item's purchases to another, a repeated asin would split one item in two."""
    index_to_asin: dict[str, str] = {}
    first_line: dict[str, int] = {}
    asin_line: dict[str, int] = {}
    for line_no, line in read_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(
                f"expected 'asin<TAB>index', got {len(parts)} fields",
                where=f"{path}:{line_no}",
                fix="use the UniSRec .item2index file",
            )
        asin, index = (part.strip() for part in parts)
        if not asin or not index:
            raise DataError(
                "empty asin or index",
                where=f"{path}:{line_no}",
                fix="use the UniSRec .item2index file",
            )
        if index in first_line:
            raise DataError(
                f"duplicate index {index!r} (also on line {first_line[index]}, for item "
                f"{index_to_asin[index]!r})",
                where=f"{path}:{line_no}",
                fix="give every item its own index (use the unmodified .item2index file)",
            )
        if asin in asin_line:
            raise DataError(
                f"duplicate item {asin!r} (also on line {asin_line[asin]})",
                where=f"{path}:{line_no}",
                fix="list every item once (use the unmodified .item2index file)",
            )
        index_to_asin[index] = asin
        first_line[index] = line_no
        asin_line[asin] = line_no
    return index_to_asin


def _read_text(path: Path) -> dict[str, tuple[str, int]]:
    texts: dict[str, tuple[str, int]] = {}
    for line_no, line in read_lines(path):
        if line_no == 1 and line.startswith("item_id:"):
            continue
        if not line.strip():
            continue
        asin, sep, text = line.partition("\t")
        if not sep:
            raise DataError(
                "expected 'item_asin<TAB>text'",
                where=f"{path}:{line_no}",
                fix="use the UniSRec .text file",
            )
        if asin in texts:
            raise DataError(
                f"duplicate item {asin!r}", where=f"{path}:{line_no}", fix="keep one line per item"
            )
        texts[asin] = (text, line_no)
    return texts


def _read_sequences(
    files: list[Path], index_to_asin: dict[str, str]
) -> dict[str, list[tuple[str, int]]]:
    """Each user's full purchase sequence.

    Histories are capped (at 50 in the UniSRec files), so the longest history
    alone loses the oldest purchases of heavy users; the full sequence is the
    first row's history followed by the target of every row, in file order
    (train, valid, test), which is chronological.
    """
    rows: dict[str, list[tuple[list[str], str, int]]] = {}
    for path in files:
        for line_no, line in read_lines(path):
            if line_no == 1 and line.startswith("user_id:"):
                continue
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise DataError(
                    f"expected 3 tab-separated fields, got {len(parts)}",
                    where=f"{path}:{line_no}",
                    fix="use RecBole atomic .inter files: user, item_id_list, item_id",
                )
            user, history, target = parts
            rows.setdefault(user, []).append((history.split(), target.strip(), line_no))
    sequences: dict[str, list[tuple[str, int]]] = {}
    for user, user_rows in rows.items():
        ids = _chain(user_rows)
        if ids is None:
            raise DataError(
                f"the rows of user {user!r} do not form one sequence",
                where=files[0],
                fix="use the unmodified UniSRec .inter files of one dataset",
            )
        try:
            sequences[user] = [(index_to_asin[i], line) for i, line in ids]
        except KeyError as err:
            raise DataError(
                f"item index {err.args[0]} is not in the .item2index file",
                where=files[0],
                fix="use the .item2index file of the same dataset",
            ) from None
    return sequences


def _chain(rows: list[tuple[list[str], str, int]]) -> list[tuple[str, int]] | None:
    """Rebuild one user's full sequence from their (history, target) rows.

    Rows come in no reliable order (train rows are newest first) and histories
    are capped, so: start from the row with the shortest history (it begins at
    the first purchase), then repeatedly append the target of an unused row whose
    history is the tail of the sequence so far. Every row must be used once.
    """
    remaining = sorted(rows, key=lambda row: len(row[0]))
    history, target, line = remaining.pop(0)
    sequence = [(item, line) for item in history] + [(target, line)]
    items = history + [target]
    while remaining:
        for n, (history, target, line) in enumerate(remaining):
            if history and items[-len(history) :] == history:
                items.append(target)
                sequence.append((target, line))
                del remaining[n]
                break
        else:
            return None
    return sequence


def _split_text(text: str, root: str = "") -> tuple[str, str, str]:
    """``title. category path. brand.`` -> (title, category path, brand).

    Titles and brands may contain ". ", so when the root category is known the
    category is found by its root ("... . Industrial & Scientific ... . brand.");
    otherwise (and for items without a category, "title. . brand.") the two last
    fields are taken from the right.
    """
    body = text.strip()
    if root:
        start = body.rfind(". " + root)
        if start >= 0:
            rest = body[start + 2 :]
            end = rest.find(". ")
            category = (rest if end < 0 else rest[:end]).strip().rstrip(".")
            brand = "" if end < 0 else rest[end + 2 :].strip().rstrip(".").strip()
            return body[:start].strip(), category, brand
    if body.endswith("."):
        body = body[:-1]
    parts = body.split(". ")
    if len(parts) < 3:
        return text.strip().rstrip("."), "", ""
    category = parts[-2].strip().rstrip(".").strip()
    if root:  # the root is known but absent: this item has no category
        category = ""
    return ". ".join(parts[:-2]).strip(), category, parts[-1].strip()


def _root_level(categories: list[str]) -> str:
    """The hierarchy's root level: the longest word prefix shared by the paths that
    start with the most common first word (a few mis-split texts do not matter)."""
    firsts = Counter(c.split()[0] for c in categories if c)
    if not firsts:
        return ""
    first = firsts.most_common(1)[0][0]
    split = [c.split() for c in categories if c and c.split()[0] == first]
    root: list[str] = []
    for words in zip(*split, strict=False):
        if all(w == words[0] for w in words):
            root.append(words[0])
        else:
            break
    return " ".join(root)
