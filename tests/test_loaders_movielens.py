"""The movielens loader on small files in the three original layouts."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from gensar.data.prepare import PrepareConfig, prepare_dataset
from gensar.data.raw import validate_raw
from gensar.data.sources import movielens
from gensar.errors import DataError

GENRES = movielens.ML100K_GENRES


def _flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in GENRES)


def write_100k(folder: Path, *, genre_file: bool = True, ratings: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    toy = _flags("Animation", "Children's", "Comedy")
    (folder / "u.item").write_bytes(
        (
            f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{toy}\n"
            f"2|Café au lait (1993)|01-Jan-1993||http://x|{_flags('Comedy')}\n"
            f"3|unknown||||{_flags('unknown')}\n"
            f"4|Blade Runner|01-Jan-1982||http://x|{_flags('Film-Noir', 'Sci-Fi')}\n"
        ).encode("latin-1")
    )
    (folder / "u.data").write_text(
        ratings
        or "196\t1\t3\t881250949\n186\t2\t5\t891717742\n196\t3\t1\t878887116\n22\t4\t4\t878887117\n"
    )
    if genre_file:
        (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n")
    return folder


def test_ml100k_items_queries_and_events(tmp_path):
    raw = movielens.load(write_100k(tmp_path / "ml-100k"), movielens.Options())
    items = {row["item_id"]: row for row in raw.items.iter_rows(named=True)}
    assert items["1"]["title"] == "Toy Story"
    assert items["1"]["text"] == "Toy Story. 1995. Animation, Children's, Comedy"
    assert items["1"]["categories"] == ["Animation", "Children's", "Comedy"]
    assert items["2"]["title"] == "Café au lait"  # latin-1 decoded
    assert items["3"]["categories"] == []  # 'unknown' is not a genre
    assert items["4"]["text"] == "Blade Runner. 1982. Film-Noir, Sci-Fi"  # year from release date
    assert set(raw.queries["text"]) == {"animation children's comedy", "comedy", "film noir sci fi"}

    events = raw.events
    assert events.filter(pl.col("behaviour") == "rec_item").height == 4
    # Every rating of a movie with a query is also a search session at the same time.
    search = events.filter(pl.col("behaviour") == "search_item")
    assert sorted(search["item_id"]) == ["1", "2", "4"]
    toy = events.filter((pl.col("item_id") == "1") | (pl.col("session_id") == 0))
    assert toy["time"].unique().to_list() == [881250949]
    qtext = dict(raw.queries.iter_rows())
    assert qtext[toy.filter(pl.col("behaviour") == "search_query")["query_id"][0]] == (
        "animation children's comedy"
    )
    assert raw.info["format"] == "MovieLens, ML-100K original files"
    validate_raw(raw)


def test_ml100k_without_u_genre_uses_the_fixed_list(tmp_path):
    with_file = movielens.load(write_100k(tmp_path / "a"), movielens.Options())
    without = movielens.load(write_100k(tmp_path / "b", genre_file=False), movielens.Options())
    assert with_file.items.equals(without.items)


def test_min_rating_and_min_genre_levels(tmp_path):
    folder = write_100k(tmp_path)
    raw = movielens.load(folder, movielens.Options(min_rating=4))
    assert sorted(raw.events.filter(pl.col("behaviour") == "rec_item")["item_id"]) == ["2", "4"]
    raw = movielens.load(folder, movielens.Options(min_genre_levels=2))
    assert "comedy" not in set(raw.queries["text"])  # a single genre is no query at 2
    assert raw.events.filter(pl.col("behaviour") == "search_item")["item_id"].sort().to_list() == [
        "1",
        "4",
    ]
    with pytest.raises(DataError, match="no rating reaches min_rating 9"):
        movielens.load(folder, movielens.Options(min_rating=9))


def test_ml1m_layout(tmp_path):
    (tmp_path / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Pokémon the Movie (1999)::Animation\n"
        "3::Nothing (2000)::(no genres listed)\n".encode("latin-1")
    )
    (tmp_path / "ratings.dat").write_text(
        "1::1::5::978300760\n1::2::3::978302109\n2::3::4::978301968\n"
    )
    raw = movielens.load(tmp_path, movielens.Options())
    assert raw.items["title"].to_list() == ["Toy Story", "Pokémon the Movie", "Nothing"]
    assert raw.items["categories"].to_list()[2] == []
    assert set(raw.queries["text"]) == {"animation children's comedy", "animation"}
    assert raw.events.height == 3 + 2 * 2
    assert raw.info["format"] == "MovieLens, ML-1M original files"


def test_recbole_atomic_layout_any_column_order(tmp_path):
    (tmp_path / "ml-1m.inter").write_text(
        "timestamp:float\tuser_id:token\titem_id:token\trating:float\n"
        "978300760\tu1\t10\t5\n978302109\tu1\t11\t2\n"
    )
    (tmp_path / "ml-1m.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\n"
        "10\tShawshank Redemption, The\t1994\tDrama\n11\tunkonwn\tunkonwn\tunknown\n"
    )
    raw = movielens.load(tmp_path, movielens.Options(min_rating=3))
    assert raw.items["text"].to_list() == ["Shawshank Redemption, The. 1994. Drama", "unkonwn"]
    assert raw.events["user_id"].unique().to_list() == ["u1"]
    assert raw.events.filter(pl.col("behaviour") == "rec_item")["time"].to_list() == [978300760]
    assert raw.info["format"] == "MovieLens, RecBole atomic files (ml-1m)"


def test_layout_inside_one_subfolder_and_several_recbole_sets(tmp_path):
    write_100k(tmp_path / "outer" / "ml-100k")
    assert movielens.load(tmp_path / "outer", movielens.Options()).items.height == 4

    for name in ("a", "b"):
        (tmp_path / "two" / f"{name}.inter").parent.mkdir(exist_ok=True)
        (tmp_path / "two" / f"{name}.inter").write_text(
            "user_id:token\titem_id:token\ttimestamp:float\n1\t1\t5\n"
        )
        (tmp_path / "two" / f"{name}.item").write_text(
            "item_id:token\tmovie_title:token_seq\n1\tX\n"
        )
    with pytest.raises(
        DataError, match=r"several RecBole datasets found \(a, b\).*source_options.name"
    ):
        movielens.load(tmp_path / "two", movielens.Options())
    raw = movielens.load(tmp_path / "two", movielens.Options(name="b"))
    assert raw.info["format"].endswith("(b)")


@pytest.mark.parametrize(
    ("setup", "pattern"),
    [
        (
            lambda d: write_100k(d, ratings="196\t1\t3\t881250949\n186\t2\tfive\t891717742\n"),
            r"u\.data:2: expected 'user<TAB>item<TAB>rating<TAB>timestamp' with numbers",
        ),
        (
            lambda d: (write_100k(d), (d / "u.item").write_text("1|Toy Story (1995)|x|y|z|1|0\n")),
            r"u\.item:1: expected 5 fields and 19 genre flags",
        ),
        (
            lambda d: (
                d.mkdir(),
                (d / "x.inter").write_text("user_id:token\titem_id:token\n1\t1\n"),
                (d / "x.item").write_text("item_id:token\tmovie_title:token_seq\n1\tX\n"),
            ),
            r"x\.inter:1: the header has no 'timestamp' column",
        ),
        (lambda d: d.mkdir(), "no MovieLens files found.*u.data \\+ u.item"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, setup, pattern):
    folder = tmp_path / "data"
    setup(folder)
    with pytest.raises(DataError, match=pattern) as err:
        movielens.load(folder, movielens.Options())
    assert "\n" not in str(err.value)


def test_rating_of_an_unknown_movie_names_the_line(tmp_path):
    folder = write_100k(tmp_path, ratings="196\t1\t3\t881250949\n186\t77\t5\t891717742\n")
    with pytest.raises(DataError, match=r"u\.data:2: 1 events name items that are not in"):
        validate_raw(movielens.load(folder, movielens.Options()))


def test_prepare_end_to_end(tmp_path):
    """A generated ML-100K-format folder goes through the real pipeline."""
    rng = random.Random(0)
    folder = tmp_path / "ml"
    folder.mkdir()
    lines = []
    for movie in range(1, 41):
        picked = rng.sample(GENRES[1:], rng.randint(1, 3))
        lines.append(f"{movie}|Movie {movie} (199{movie % 10})|||x|{_flags(*picked)}")
    (folder / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    ratings = []
    for user in range(1, 21):
        for n in range(10):
            ratings.append(
                f"{user}\t{rng.randint(1, 40)}\t{rng.randint(1, 5)}\t{880000000 + 100 * n}"
            )
    (folder / "u.data").write_text("\n".join(ratings) + "\n")

    manifest = prepare_dataset("movielens", folder, tmp_path / "out", log=lambda *_: None)
    counts = manifest["counts"]
    assert counts["users"] == 20 and counts["items"] == 40
    assert counts["rec_interactions"] == 200 and counts["search_interactions"] == 200
    for task in ("recommendation", "search"):
        assert counts["samples"][task]["test"] == 20
    assert manifest["source"]["format"] == "MovieLens, ML-100K original files"

    config = PrepareConfig(source_options={"min_rating": 4})
    fewer = prepare_dataset("movielens", folder, tmp_path / "out4", config, log=lambda *_: None)
    assert fewer["counts"]["rec_interactions"] < 200
