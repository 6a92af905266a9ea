"""The kuaisar loader on small CSV files in the release's exact column layout."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import polars as pl
import pytest

from gensar.data.prepare import PrepareConfig, prepare_dataset
from gensar.data.raw import validate_raw
from gensar.data.sources import kuaisar
from gensar.errors import DataError

REC_HEADER = (
    "user_id,item_id,playing_time,duration_ms,time,timestamp,click,forward,like,follow,"
    "search,search_item_related"
)
SRC_HEADER = (
    "user_id,search_session_id,search_session_time,search_session_timestamp,keyword,"
    "search_source,item_id,click_cnt,item_type"
)
ITEM_HEADER = "item_id,caption,author_id,item_type,upload_time,upload_type," + ",".join(
    f"{level}_level_category_{part}"
    for level in ("first", "second", "third", "fourth")
    for part in ("id", "name", "name_en")
)
EMPTY_LEVEL = "0,空,empty"


def rec_row(user, item, ms, click=1) -> str:
    return f"{user},{item},60792.0,45400.0,2023-05-22 15:53:20,{ms},{click},0,0,0,0,0"


def src_row(user, session, ms, keyword, item, clicks, kind="VIDEO") -> str:
    return (
        f'{user},{session},2023-05-22 21:58:52,{ms},"{keyword}",USER_INPUT,{item},{clicks},{kind}'
    )


def item_row(item, caption, *levels: str) -> str:
    cats = [*levels, *[EMPTY_LEVEL] * (4 - len(levels))]
    return f'{item},"{caption}",10,NORMAL,2023-04-22,LongImport,' + ",".join(cats)


def write(folder: Path, rec: list[str], src: list[str], items: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rec_inter.csv").write_text("\n".join([REC_HEADER, *rec]) + "\n")
    (folder / "src_inter.csv").write_text("\n".join([SRC_HEADER, *src]) + "\n")
    (folder / "item_features.csv").write_text("\n".join([ITEM_HEADER, *items]) + "\n")
    return folder


ITEMS = [
    item_row(10, "[1, 213, 24]", "9,搞笑,Funny", "136,搞笑段子,Funny joke"),
    item_row(11, "[]", "9,搞笑,Funny"),
    item_row(12, "[5]"),
    item_row(13, "[8, 8]", "4,游戏,Game"),  # never used
]
REC = [
    rec_row(1, 10, "1.684742e+12"),
    rec_row(1, 11, "1684742000100.0", click=0),
    rec_row(2, 12, "1684742000200"),
    rec_row(2, 77, "1684742000300"),  # not in item_features
]
SRC = [
    src_row(1, 5, "1684763932919.0", "[20, 34, 3]", 10, 1),
    src_row(1, 5, "1684763932919.0", "[20, 34, 3]", 99, 1, "LIVE"),  # not an item
    src_row(1, 5, "1684763932919.0", "[20, 34, 3]", 11, 0),
    src_row(1, 6, "1684767532919.0", "[]", 11, 1),  # empty keyword: skipped
    src_row(2, 5, "1684763932000", "[7]", 12, 2),  # same session id, other user
    src_row(2, 5, "1684763932000", "[7]", 11, 1),
    src_row(2, 8, "1684763999000", "[7]", 12, 0),  # no click
]


def test_items_queries_and_events(tmp_path):
    raw = kuaisar.load(write(tmp_path, REC, SRC, ITEMS), kuaisar.Options())
    items = {row["item_id"]: row for row in raw.items.iter_rows(named=True)}
    assert set(items) == {"10", "11", "12"}  # 13 unused, 77 and 99 unknown
    assert items["10"]["title"] == "1 213 24"
    assert items["10"]["text"] == "1 213 24. Funny. Funny joke"
    assert items["10"]["categories"] == ["Funny", "Funny joke"]
    assert items["11"]["text"] == "Funny" and items["12"]["categories"] == []
    assert dict(raw.queries.select("text", "query_id").iter_rows()).keys() == {"20 34 3", "7"}

    events = raw.events
    rec = events.filter(pl.col("behaviour") == "rec_item")
    assert rec.select("user_id", "item_id", "time").rows() == [
        ("1", "10", 1684742000000),
        ("2", "12", 1684742000200),
    ]
    assert rec["line"].to_list() == [2, 4]
    queries = events.filter(pl.col("behaviour") == "search_query")
    assert queries.height == 3  # (1,5), (2,5), (2,8); (1,6) has no keyword
    assert queries["session_id"].n_unique() == 3
    clicks = events.filter(pl.col("behaviour") == "search_item")
    assert sorted(clicks.select("user_id", "item_id").rows()) == [
        ("1", "10"),
        ("2", "11"),
        ("2", "12"),
    ]
    user2 = clicks.filter(pl.col("user_id") == "2")
    assert user2["time"].unique().to_list() == [1684763932000]
    assert user2["session_id"].n_unique() == 1
    qtext = dict(raw.queries.iter_rows())
    assert {qtext[q] for q in user2["query_id"]} == {"7"}

    info = raw.info
    assert info["rec_rows"] == 4 and info["rec_rows_kept"] == 3
    assert info["rec_events_dropped_item_not_in_item_features"] == 1
    assert info["search_clicks_dropped_item_not_in_item_features"] == 1
    assert info["items_dropped_not_in_item_features"] == 2
    assert info["search_sessions_skipped_empty_keyword"] == 1
    assert info["search_sessions_without_click"] == 1
    validate_raw(raw)


def test_rec_positive_all_and_keep_unused_items(tmp_path):
    folder = write(tmp_path, REC, SRC, ITEMS)
    raw = kuaisar.load(folder, kuaisar.Options(rec_positive="all", keep_unused_items=True))
    assert raw.events.filter(pl.col("behaviour") == "rec_item").height == 3
    assert raw.items.height == 4


def test_gzip_files_and_repeated_item_rows(tmp_path):
    folder = write(tmp_path, REC, SRC, [*ITEMS, item_row(10, "[9]")])
    data = (folder / "rec_inter.csv").read_bytes()
    (folder / "rec_inter.csv").unlink()
    (folder / "rec_inter.csv.gz").write_bytes(gzip.compress(data))
    raw = kuaisar.load(folder, kuaisar.Options())
    assert raw.info["item_features_repeated_rows_ignored"] == 1
    assert raw.items.filter(pl.col("item_id") == "10")["title"][0] == "1 213 24"


def test_missing_file_and_column_are_named(tmp_path):
    folder = write(tmp_path, REC, SRC, ITEMS)
    (folder / "src_inter.csv").write_text(SRC_HEADER.replace("keyword", "query") + "\n")
    with pytest.raises(DataError, match=r"src_inter\.csv: missing column 'keyword'"):
        kuaisar.load(folder, kuaisar.Options())
    (folder / "src_inter.csv").unlink()
    with pytest.raises(DataError, match="missing src_inter.csv"):
        kuaisar.load(folder, kuaisar.Options())


def test_bad_values_are_one_clear_line(tmp_path):
    folder = write(tmp_path, [*REC, rec_row(3, 10, "yesterday")], SRC, ITEMS)
    with pytest.raises(DataError, match=r"rec_inter\.csv: cannot parse the file") as err:
        kuaisar.load(folder, kuaisar.Options())
    assert "\n" not in str(err.value)
    folder = write(tmp_path, [*REC, rec_row("", 10, "1684742000000")], SRC, ITEMS)
    with pytest.raises(DataError, match=r"rec_inter\.csv:6: empty 'user_id'"):
        kuaisar.load(folder, kuaisar.Options())


def test_prepare_end_to_end(tmp_path):
    rng = random.Random(0)
    items = [item_row(i, f"[{i}, {i % 7}]", f"{i % 3},x,Topic {i % 3}") for i in range(30)]
    rec, src = [], []
    for user in range(12):
        ms = 1_684_742_000_000 + user
        for k in range(10):
            ms += 60_000
            rec.append(rec_row(user, rng.randrange(30), ms, click=int(k % 5 != 0)))
            ms += 60_000
            shown = rng.sample(range(30), 3)
            for n, item in enumerate(shown):
                src.append(src_row(user, 100 * user + k, ms, f"[{item % 3}, 9]", item, int(n == 0)))
    folder = write(tmp_path / "raw", rec, src, items)
    manifest = prepare_dataset("kuaisar", folder, tmp_path / "out", log=lambda *_: None)
    counts = manifest["counts"]
    assert counts["rec_interactions"] == 12 * 8
    assert counts["search_interactions"] == counts["search_sessions"] == 12 * 10
    assert counts["queries"] == 3
    assert counts["samples"]["search"]["test"] == 12
    config = PrepareConfig(source_options={"rec_positive": "all"})
    manifest = prepare_dataset("kuaisar", folder, tmp_path / "out2", config, log=lambda *_: None)
    assert manifest["counts"]["rec_interactions"] == 12 * 10
