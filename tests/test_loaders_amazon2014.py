"""The amazon-2014 loader on small files in the original McAuley formats.

Reviews are gzip JSON lines; metadata lines are Python dict literals (single
quotes), written here with ``repr`` exactly as the original dump looks. The HEM
tests read the real query files in shared/data/amazon-product-search.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import polars as pl
import pytest

from gensar.data.prepare import PrepareConfig, prepare_dataset
from gensar.data.raw import validate_raw
from gensar.data.sources import amazon_2014
from gensar.errors import ConfigError, DataError

from conftest import shared_data


def review(user: str, asin: str, time: int) -> dict:
    return {
        "reviewerID": user,
        "asin": asin,
        "reviewerName": "J. McDonald",
        "helpful": [2, 3],
        "reviewText": "I bought this for my husband who plays the piano.",
        "overall": 5.0,
        "summary": "Heavenly Highway Hymns",
        "unixReviewTime": time,
        "reviewTime": "09 13, 2009",
    }


def write_files(folder: Path, reviews: list[dict], meta: list[dict | str], category="Toys") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / f"reviews_{category}_5.json.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in reviews)
    with gzip.open(folder / f"meta_{category}.json.gz", "wt", encoding="utf-8") as handle:
        handle.writelines((m if isinstance(m, str) else repr(m)) + "\n" for m in meta)
    return folder


META = [
    {
        "asin": "0000031852",
        "title": "Girls Ballet Tutu Zebra Hot Pink",
        "price": 3.17,
        "imUrl": "http://ecx.images-amazon.com/images/I/51fAmVkTbyL._SY300_.jpg",
        "related": {"also_bought": ["B00JHONN1S"], "bought_together": ["B002BZX8Z6"]},
        "salesRank": {"Toys & Games": 211836},
        "brand": "Coxlure",
        "categories": [["Sports & Outdoors"], ["Clothing, Shoes & Jewelry", "Girls", "Tutus"]],
    },
    {
        "asin": "0000031895",
        "title": "Ballet Dress &amp; Skirt",
        "description": "<p>A <b>soft</b> tutu.</p>",
        "categories": [["Toys & Games", "Dress-Up", "Tutus"]],
    },
    {
        "asin": "0000031909",
        "title": "Long one",
        "description": "x" * 2001,
        "categories": [["Toys & Games"]],
    },
    "{'asin': 'UNREVIEWED', this line is broken but never parsed",
]
REVIEWS = [
    review("A1", "0000031852", 1300000000),
    review("A1", "0000031895", 1300000100),
    review("A2", "0000031909", 1300000200),
    review("A2", "NOMETA0001", 1300000300),
]


def test_categories_mode_items_queries_events(tmp_path):
    raw = amazon_2014.load(write_files(tmp_path, REVIEWS, META), amazon_2014.Options())
    items = {row["item_id"]: row for row in raw.items.iter_rows(named=True)}
    tutu = items["0000031852"]
    # The first path with 2+ levels is chosen; brand last.
    assert tutu["categories"] == ["Clothing, Shoes & Jewelry", "Girls", "Tutus"]
    assert tutu["text"] == (
        "Girls Ballet Tutu Zebra Hot Pink. Clothing, Shoes & Jewelry > Girls > Tutus. Coxlure"
    )
    assert items["0000031895"]["title"] == "Ballet Dress & Skirt"
    assert items["0000031895"]["text"].startswith("Ballet Dress & Skirt. A soft tutu. Toys")
    assert items["0000031909"]["text"] == "Long one. Toys & Games"  # long description dropped
    assert items["NOMETA0001"]["title"] == "" and items["NOMETA0001"]["line"] is None
    assert raw.info["items_without_meta"] == 1 and raw.info["category"] == "Toys"

    assert set(raw.queries["text"]) == {
        "clothing shoes jewelry girls tutus",
        "toys games dress tutus",
    }
    events = raw.events
    assert events.filter(pl.col("behaviour") == "rec_item")["time"].to_list() == [
        1300000000,
        1300000100,
        1300000200,
        1300000300,
    ]
    # Only the two items with a 2+ level path are also searched.
    assert sorted(events.filter(pl.col("behaviour") == "search_item")["item_id"]) == [
        "0000031852",
        "0000031895",
    ]
    validate_raw(raw)


def test_missing_meta_drop(tmp_path):
    raw = amazon_2014.load(
        write_files(tmp_path, REVIEWS, META), amazon_2014.Options(missing_meta="drop")
    )
    assert "NOMETA0001" not in raw.items["item_id"].to_list()
    assert raw.events.filter(pl.col("behaviour") == "rec_item").height == 3
    assert raw.info["reviews_dropped_without_meta"] == 1


def test_description_given_as_a_list(tmp_path):
    meta = [{"asin": "0000031852", "title": "Tutu", "description": ["Soft.", "<i>Pink</i>"]}]
    raw = amazon_2014.load(write_files(tmp_path, REVIEWS[:1], meta), amazon_2014.Options())
    assert raw.items["text"].to_list() == ["Tutu. Soft. Pink"]


def test_min_category_levels(tmp_path):
    raw = amazon_2014.load(
        write_files(tmp_path, REVIEWS, META), amazon_2014.Options(min_category_levels=1)
    )
    # The first path now qualifies, and a bare root makes a query.
    assert "sports outdoors" in set(raw.queries["text"])
    assert "toys games" in set(raw.queries["text"])


def test_json_meta_lines_are_accepted(tmp_path):
    meta = [json.dumps(m) for m in META[:3]]
    raw = amazon_2014.load(write_files(tmp_path, REVIEWS, meta), amazon_2014.Options())
    assert raw.items.filter(pl.col("item_id") == "0000031852")["title"][0].startswith("Girls")


def test_category_choice(tmp_path):
    write_files(tmp_path, REVIEWS, META, category="Toys")
    write_files(tmp_path, REVIEWS[:1], META[:1], category="Baby")
    with pytest.raises(DataError, match=r"several categories found \(Baby, Toys\)"):
        amazon_2014.load(tmp_path, amazon_2014.Options())
    raw = amazon_2014.load(tmp_path, amazon_2014.Options(category="Baby"))
    assert raw.items.height == 1
    with pytest.raises(DataError, match="missing reviews_Games_5.json.gz"):
        amazon_2014.load(tmp_path, amazon_2014.Options(category="Games"))


@pytest.mark.parametrize(
    ("reviews", "meta", "pattern"),
    [
        (
            ['{"reviewerID": "A1", "asin": "0000031852"'],
            META,
            r"reviews_Toys_5\.json\.gz:1: invalid JSON",
        ),
        (
            [
                json.dumps(review("A1", "0000031852", 1)),
                json.dumps({"reviewerID": "A1", "asin": "X"}),
            ],
            META,
            r"reviews_Toys_5\.json\.gz:2: field 'unixReviewTime' must be an integer, got missing",
        ),
        (
            [json.dumps(review("A1", "0000031852", 1))],
            ["{'asin': '0000031852', 'title': 'broken"],
            r"meta_Toys\.json\.gz:1: not a Python dict literal or a JSON object",
        ),
        (
            [json.dumps(review("A1", "0000031852", 1))],
            [repr({"asin": "0000031852", "categories": "Toys"})],
            r"meta_Toys\.json\.gz:1: field 'categories' must be a list of category paths",
        ),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, reviews, meta, pattern):
    folder = tmp_path / "raw"
    folder.mkdir()
    with gzip.open(folder / "reviews_Toys_5.json.gz", "wt") as handle:
        handle.writelines(line + "\n" for line in reviews)
    with gzip.open(folder / "meta_Toys.json.gz", "wt") as handle:
        handle.writelines((m if isinstance(m, str) else repr(m)) + "\n" for m in meta)
    with pytest.raises(DataError, match=pattern) as err:
        amazon_2014.load(folder, amazon_2014.Options())
    assert "\n" not in str(err.value)


def test_missing_meta_file_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no reviews_<Category>_5.json.gz file"):
        amazon_2014.load(tmp_path, amazon_2014.Options())
    write_files(tmp_path, REVIEWS, META)
    (tmp_path / "meta_Toys.json.gz").unlink()
    with pytest.raises(DataError, match="missing item metadata file.*meta_Toys.json.gz"):
        amazon_2014.load(tmp_path, amazon_2014.Options())


def test_prepare_end_to_end(tmp_path):
    rng = random.Random(0)
    meta = [
        {
            "asin": f"B{n:09d}",
            "title": f"Gadget {n}",
            "categories": [["Electronics", f"Kind {n % 4}", f"Sub {n % 3}"]],
        }
        for n in range(30)
    ]
    reviews = [
        review(f"U{u}", f"B{rng.randrange(30):09d}", 1_300_000_000 + 1000 * k + u)
        for u in range(15)
        for k in range(8)
    ]
    folder = write_files(tmp_path / "raw", reviews, meta, category="Electronics")
    manifest = prepare_dataset("amazon-2014", folder, tmp_path / "out", log=lambda *_: None)
    counts = manifest["counts"]
    assert counts["rec_interactions"] == 120 and counts["search_interactions"] == 120
    assert counts["samples"]["recommendation"]["test"] == 15
    assert manifest["source"]["category"] == "Electronics"


# --- HEM queries (real files) -------------------------------------------------


def _qrels_rows(path: Path, n: int) -> list[tuple[str, int, str]]:
    rows = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            uq, _, asin, _ = line.split()
            user, _, qid = uq.rpartition("_")
            rows.append((user, int(qid), asin))
            if len(rows) == n:
                break
    return rows


def test_hem_queries_from_real_files(tmp_path):
    hem = shared_data("amazon-product-search", "Electronics")
    with gzip.open(hem / "query_text.txt.gz", "rt") as handle:
        texts = [line.strip() for line in handle]
    rows = _qrels_rows(hem / "test.qrels.gz", 20)
    reviews = [review(user, asin, 1_400_000_000 + n) for n, (user, _, asin) in enumerate(rows)]
    known_asin = rows[0][2]
    reviews.append(review("NEWUSER", known_asin, 1_400_000_100))  # no own qrels row
    reviews.append(review("NEWUSER", "NOTINQRELS", 1_400_000_200))  # rec only
    asins = sorted({r["asin"] for r in reviews})
    meta = [{"asin": a, "title": f"Item {a}", "categories": [["Electronics"]]} for a in asins]
    folder = write_files(tmp_path, reviews, meta, category="Electronics")

    raw = amazon_2014.load(folder, amazon_2014.Options(queries="hem", hem_dir=str(hem)))
    qtext = dict(raw.queries.iter_rows())
    search = raw.events.filter(pl.col("behaviour") == "search_item")
    got = {(u, i): qtext[q] for u, i, q in search.select("user_id", "item_id", "query_id").rows()}
    first_query: dict[tuple[str, str], str] = {}
    for user, qid, asin in rows:
        first_query.setdefault((user, asin), texts[qid])
    for pair, text in first_query.items():
        assert got[pair] == text
    assert ("NEWUSER", known_asin) in got and ("NEWUSER", "NOTINQRELS") not in got
    coverage = raw.info["hem"]
    assert coverage["queries_in_file"] == 989
    assert coverage["purchases"] == len(reviews)
    assert coverage["purchases_with_own_query"] == len(rows)
    assert coverage["purchases_with_item_query"] == 1
    assert coverage["purchases_rec_only"] == 1
    assert "test.qrels.gz" in raw.info["files"]
    validate_raw(raw)


def test_hem_option_errors(tmp_path):
    folder = write_files(tmp_path / "raw", REVIEWS, META)
    with pytest.raises(ConfigError, match="hem_dir is required"):
        amazon_2014.load(folder, amazon_2014.Options(queries="hem"))
    hem = tmp_path / "hem"
    hem.mkdir()
    with gzip.open(hem / "query_text.txt.gz", "wt") as handle:
        handle.write("toys dress\n")
    with gzip.open(hem / "test.qrels.gz", "wt") as handle:
        handle.write("A1_0 0 0000031852 1 \nA1_3 0 0000031895 1 \n")
    with pytest.raises(DataError, match=r"test\.qrels\.gz:2: query id 3 is beyond the 1 lines"):
        amazon_2014.load(folder, amazon_2014.Options(queries="hem", hem_dir=str(hem)))


def test_prepare_with_hem_through_config(tmp_path):
    hem = tmp_path / "hem"
    hem.mkdir()
    with gzip.open(hem / "query_text.txt.gz", "wt") as handle:
        handle.write("toys tutus\ntoys dress\n")
    qrels = []
    reviews = []
    for u in range(6):
        for k, asin in enumerate(["0000031852", "0000031895", "0000031909", "0000031852"]):
            reviews.append(review(f"U{u}", asin, 1_300_000_000 + 10 * k))
            qrels.append(f"U{u}_{k % 2} 0 {asin} 1 \n")
    with gzip.open(hem / "train.qrels.gz", "wt") as handle:
        handle.writelines(qrels)
    folder = write_files(tmp_path / "raw", reviews, META)
    # U0 bought 0000031852 twice; its qrels rows say query 0, then query 1: the first wins.
    raw = amazon_2014.load(folder, amazon_2014.Options(queries="hem", hem_dir=str(hem)))
    qtext = dict(raw.queries.iter_rows())
    tutu = raw.events.filter(
        (pl.col("user_id") == "U0") & (pl.col("behaviour") == "search_item")
    ).filter(pl.col("item_id") == "0000031852")
    assert [qtext[q] for q in tutu["query_id"]] == ["toys tutus", "toys tutus"]
    config = PrepareConfig(source_options={"queries": "hem", "hem_dir": str(hem)})
    manifest = prepare_dataset("amazon-2014", folder, tmp_path / "out", config, log=lambda *_: None)
    assert manifest["counts"]["queries"] == 2
    assert manifest["source"]["hem"]["purchases_rec_only"] == 0
