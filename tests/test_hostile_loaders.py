"""Hostile inputs, part 2: raw data. Out-of-range and non-finite times, lone surrogates
and byte-order marks in every loader (issue 16, items 3 and 4): each is one line naming
the file and line, exit code 2, and no dataset is written; nothing is silently corrupted."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from hostile import assert_one_line_error, run_cli
from test_loaders_amazon2014 import META, REVIEWS, write_files
from test_loaders_kuaisar import ITEMS, REC, SRC, rec_row, src_row, write
from test_loaders_movielens import write_100k

from gensar.data.sources import amazon_unisrec

from conftest import write_synthetic_jsonl

BIG = 2**63  # one past the largest 64-bit integer


def prepare(capsys, source: str, raw: Path, out: Path, *extra: str):
    return run_cli(capsys, "prepare", "--source", source, raw, "--out", out, *extra)


def assert_refused(capsys, source, raw, tmp_path, *words):
    out = tmp_path / "dataset"
    line = assert_one_line_error(prepare(capsys, source, raw, out), *words)
    assert not out.exists(), "no partial output"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dataset")]
    return line


# -- jsonl -------------------------------------------------------------------------------------------
def jsonl_with(tmp_path: Path, event_line: str | None = None, item_line: str | None = None) -> Path:
    raw = write_synthetic_jsonl(tmp_path / "raw", n_users=8, n_items=12)
    if event_line is not None:
        with open(raw / "events.jsonl", "a", encoding="utf-8") as handle:
            handle.write(event_line + "\n")
    if item_line is not None:
        with open(raw / "items.jsonl", "a", encoding="utf-8") as handle:
            handle.write(item_line + "\n")
    return raw


@pytest.mark.parametrize(
    ("time", "words"),
    [
        (str(BIG), ["outside the 64-bit"]),
        (str(-BIG - 1), ["outside the 64-bit"]),
        (str(10**30), ["outside the 64-bit"]),
        ("Infinity", ["must be an integer"]),
        ("-Infinity", ["must be an integer"]),
        ("NaN", ["must be an integer"]),
        ("1e400", ["must be an integer"]),
        ("true", ["must be an integer"]),
    ],
)
def test_jsonl_bad_times(capsys, tmp_path, time, words):
    raw = jsonl_with(tmp_path, f'{{"user_id": "u1", "time": {time}, "item_id": "i1"}}')
    n = len((raw / "events.jsonl").read_text().splitlines())
    assert_refused(capsys, "jsonl", raw, tmp_path, f"events.jsonl:{n}", *words)


@pytest.mark.parametrize(
    ("event", "item"),
    [
        ('{"user_id": "u1", "time": 5, "query": "drill \\ud800", "items": ["i1"]}', None),
        ('{"user_id": "u\\udfff", "time": 5, "item_id": "i1"}', None),
        ('{"user_id": "u1", "time": 5, "item_id": "i1", "\\ud800": 1}', None),
        (None, '{"item_id": "i99", "title": "bad \\uDC00 title"}'),
        (None, '{"item_id": "i98", "categories": ["Shop", "\\ud83d"]}'),
    ],
)
def test_jsonl_lone_surrogates(capsys, tmp_path, event, item):
    raw = jsonl_with(tmp_path, event, item)
    name = "events.jsonl" if event else "items.jsonl"
    n = len((raw / name).read_text().splitlines())
    assert_refused(capsys, "jsonl", raw, tmp_path, f"{name}:{n}", "surrogate")


def test_jsonl_escaped_surrogate_pair_is_a_character(capsys, tmp_path):
    raw = jsonl_with(tmp_path, item_line='{"item_id": "i97", "title": "smile \\ud83d\\ude00"}')
    out = tmp_path / "dataset"
    assert prepare(capsys, "jsonl", raw, out).code == 0
    titles = pl.read_parquet(out / "items.parquet")["title"].to_list()
    assert "smile \U0001f600" in titles


def test_jsonl_byte_order_mark_is_not_part_of_the_first_id(capsys, tmp_path):
    raw = write_synthetic_jsonl(tmp_path / "raw", n_users=8, n_items=12)
    for name in ("items.jsonl", "events.jsonl"):
        (raw / name).write_bytes(b"\xef\xbb\xbf" + (raw / name).read_bytes())
    out = tmp_path / "dataset"
    assert prepare(capsys, "jsonl", raw, out).code == 0
    ids = pl.read_parquet(out / "items.parquet")["item_id"].to_list()
    assert ids[0] == "i0" and not any("\ufeff" in i for i in ids)


# -- MovieLens -----------------------------------------------------------------------------------------
GOOD = "196\t1\t3\t881250949\n186\t2\t5\t891717742\n"


@pytest.mark.parametrize(
    ("row", "words"),
    [
        (f"22\t4\t4\t{BIG}", ["outside the 64-bit"]),
        (f"22\t4\t4\t-{BIG + 1}", ["outside the 64-bit"]),
        ("22\t4\t4\tinf", ["not a finite number"]),
        ("22\t4\t4\tnan", ["not a finite number"]),
        ("22\t4\t4\t1e30", ["outside the 64-bit"]),
        ("22\t4\t4\t8.5", ["not a whole number"]),
        ("22\t4\tnan\t881250949", ["numbers"]),
        ("22\t4\tinf\t881250949", ["numbers"]),
    ],
)
def test_movielens_bad_numbers(capsys, tmp_path, row, words):
    raw = write_100k(tmp_path / "ml-100k", ratings=GOOD + row + "\n")
    assert_refused(capsys, "movielens", raw, tmp_path, "u.data:3", *words)


def test_movielens_atomic_inter_infinite_time(capsys, tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ml.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t1\t5\t1.0\n1\t2\t5\tinf\n"
    )
    (folder / "ml.item").write_text("item_id:token\tmovie_title:token_seq\n1\tA\n2\tB\n")
    assert_refused(capsys, "movielens", folder, tmp_path, "ml.inter:3", "finite")


# -- KuaiSAR -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stamp", ["inf", "-inf", "nan", "1e30", str(float(BIG))])
def test_kuaisar_bad_rec_timestamps(capsys, tmp_path, stamp):
    raw = write(tmp_path / "k", [*REC, rec_row(3, 10, stamp)], SRC, ITEMS)
    assert_refused(capsys, "kuaisar", raw, tmp_path, f"rec_inter.csv:{len(REC) + 2}", "timestamp")


def test_kuaisar_bad_search_timestamp(capsys, tmp_path):
    raw = write(tmp_path / "k", REC, [*SRC, src_row(3, 9, "inf", "[7]", 12, 1)], ITEMS)
    where = f"src_inter.csv:{len(SRC) + 2}"
    assert_refused(capsys, "kuaisar", raw, tmp_path, where, "search_session_timestamp", "finite")


# -- Amazon 2014 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("time", [BIG, -BIG - 1, 10**40])
def test_amazon2014_review_time_out_of_range(capsys, tmp_path, time):
    reviews = [*REVIEWS, {**REVIEWS[0], "unixReviewTime": time}]
    raw = write_files(tmp_path / "a", reviews, META)
    assert_refused(capsys, "amazon-2014", raw, tmp_path, "_5.json.gz:5", "64-bit")


def test_amazon2014_lone_surrogate_in_a_review(capsys, tmp_path):
    raw = write_files(tmp_path / "a", REVIEWS, META)
    path = raw / "reviews_Toys_5.json.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    lines.append(json.dumps({**REVIEWS[0], "reviewerID": "A\ud800"}))  # json escapes it
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    assert_refused(capsys, "amazon-2014", raw, tmp_path, "_5.json.gz:5", "surrogate")


# -- UniSRec ------------------------------------------------------------------------------------------
def unisrec(folder: Path, *, item2index: str | None = None, text: bytes | None = None) -> Path:
    """A tiny UniSRec dataset: 3 items, 2 users."""
    folder.mkdir(parents=True)
    (folder / "T.text").write_bytes(
        text
        or (
            b"item_id:token\ttext:token_seq\n"
            b"A1\tDrill. Tools Power Drills. Bosch.\n"
            b"A2\tSaw. Tools Hand Saws. Stanley.\n"
            b"A3\tTape. Tools Tape. 3M.\n"
        )
    )
    (folder / "T.item2index").write_text(item2index or "A1\t1\nA2\t2\nA3\t3\n")
    (folder / "T.train.inter").write_text(
        "user_id:token\titem_id_list:token_seq\titem_id:token\nu1\t1\t2\nu2\t2\t3\n"
    )
    (folder / "T.valid.inter").write_text("u1\t1 2\t3\nu2\t2 3\t1\n")
    return folder


def test_unisrec_duplicate_index_is_an_error(capsys, tmp_path):
    raw = unisrec(tmp_path / "u", item2index="A1\t1\nA2\t2\nA3\t2\n")
    line = assert_refused(capsys, "amazon-unisrec", raw, tmp_path, "T.item2index:3", "duplicate")
    assert "'2'" in line and "line 2" in line


def test_unisrec_duplicate_item_is_an_error(capsys, tmp_path):
    raw = unisrec(tmp_path / "u", item2index="A1\t1\nA2\t2\nA1\t3\n")
    assert_refused(capsys, "amazon-unisrec", raw, tmp_path, "T.item2index:3", "duplicate item")


def test_unisrec_duplicate_index_never_reassigns_purchases(tmp_path):
    raw = unisrec(tmp_path / "u", item2index="A1\t1\nA2\t2\nA3\t2\n")
    with pytest.raises(Exception, match="duplicate index"):
        amazon_unisrec.load(raw, amazon_unisrec.Options())


@pytest.mark.parametrize("header", [True, False])
def test_unisrec_byte_order_mark_adds_no_bogus_item(tmp_path, header):
    body = "A1\tDrill. Tools Power Drills. Bosch.\nA2\tSaw. Tools Hand Saws. Stanley.\nA3\tTape. Tools Tape. 3M.\n"
    text = ("item_id:token\ttext:token_seq\n" if header else "") + body
    raw = unisrec(tmp_path / "u", text=b"\xef\xbb\xbf" + text.encode())
    (raw / "T.item2index").write_bytes(b"\xef\xbb\xbf" + (raw / "T.item2index").read_bytes())
    loaded = amazon_unisrec.load(raw, amazon_unisrec.Options())
    assert loaded.items["item_id"].to_list() == ["A1", "A2", "A3"]


def test_amazon2014_lone_surrogate_in_a_metadata_literal(capsys, tmp_path):
    meta = [*META[:3], "{'asin': '0000031852', 'title': 'Tutu \\ud800'}"]
    meta[0] = {**META[0], "asin": "SHADOWED"}  # so that the bad line is the one kept
    raw = write_files(tmp_path / "a", REVIEWS, meta)
    assert_refused(capsys, "amazon-2014", raw, tmp_path, "meta_Toys.json.gz:4", "surrogate")
