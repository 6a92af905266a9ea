"""MovieLens ratings (GroupLens) with genre queries.

PATH is a folder holding one of three layouts (found automatically; a folder
with exactly one such sub-folder, as an unzipped archive gives, works too):

* ML-100K original — ``u.data`` (``user<TAB>item<TAB>rating<TAB>timestamp``) and
  ``u.item`` (``id|title|release date|video release date|IMDb URL|`` + 19 genre
  flags, latin-1); genre names from ``u.genre`` (``name|index``) or the fixed
  ML-100K list when that file is absent.
* ML-1M original — ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and
  ``movies.dat`` (``MovieID::Title::Genres``, genres ``|``-separated, latin-1).
* RecBole atomic files — ``<name>.inter`` with a header such as
  ``user_id:token<TAB>item_id:token<TAB>rating:float<TAB>timestamp:float`` and
  ``<name>.item`` with ``item_id:token<TAB>movie_title:token_seq<TAB>
  release_year:token<TAB>class:token_seq`` (``class`` or ``genre``: space-separated
  genres; UTF-8). Columns are found by name, in any order.

Items are the movies of the item file. Title = the movie title without its
``(year)`` suffix; text = ``title. year. genres``. Every rating with
``rating >= min_rating`` (default 0: every rating is an implicit click) is a
``rec_item`` event at its timestamp.

Search is semi-synthetic, by the same protocol as Amazon: a movie's query is its
genres run through ``query_from_categories`` (in the file's genre order), and
every rating of a movie with a query is also a search session. Departure from
the Amazon rule: genres are tags, not a hierarchy whose root says nothing, so by
default a single genre is a valid query (``min_genre_levels: 1``; the Amazon
protocol's value is 2). The placeholders ``unknown`` and ``(no genres listed)``
are not genres.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
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
    read_lines,
)
from gensar.data.text import item_text, query_from_categories
from gensar.errors import DataError
from gensar.io import sha256_file

#: Genre order of the ML-100K flags (u.genre of the original archive).
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_NOT_GENRES = {"unknown", "(no genres listed)"}
_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


class Options(Section):
    min_rating: float = Field(
        0,
        ge=0,
        description="Ratings below this are ignored (0: every rating is an implicit click).",
    )
    min_genre_levels: int = Field(
        1,
        ge=1,
        description="Movies with fewer genres give no query (1: a single genre is a query; genres are not a hierarchy).",
    )
    name: str | None = Field(
        None,
        description="RecBole files only: the <name> of <name>.inter/<name>.item when the folder holds several.",
    )


@dataclass
class _Movie:
    item_id: str
    title: str
    year: str
    genres: list[str]
    line: int


def load(path: Path, options: Options) -> RawData:
    folder = path.parent if path.is_file() else path
    layout, folder = _detect(folder, options.name)
    if layout.kind == "ml-100k":
        genre_names = _read_genre_names(folder / "u.genre")
        item_file, inter_file = folder / "u.item", folder / "u.data"
        movies = _read_100k_items(item_file, genre_names)
        ratings = _read_ratings(inter_file, "\t", options.min_rating)
        extra = [folder / "u.genre"] if (folder / "u.genre").is_file() else []
    elif layout.kind == "ml-1m":
        item_file, inter_file = folder / "movies.dat", folder / "ratings.dat"
        movies = _read_1m_items(item_file)
        ratings = _read_ratings(inter_file, "::", options.min_rating)
        extra = []
    else:
        item_file, inter_file = folder / f"{layout.name}.item", folder / f"{layout.name}.inter"
        movies = _read_atomic_items(item_file)
        ratings = _read_atomic_ratings(inter_file, options.min_rating)
        extra = []
    if ratings.height == 0:
        raise DataError(
            f"no rating reaches min_rating {options.min_rating}",
            where=inter_file,
            fix="lower source_options.min_rating",
        )

    items = pl.DataFrame(
        {
            "item_id": [m.item_id for m in movies],
            "title": [m.title for m in movies],
            "text": [item_text(m.title, "", m.year, ", ".join(m.genres)) for m in movies],
            "categories": [m.genres for m in movies],
            "line": [m.line for m in movies],
        },
        schema={**schema.ITEMS_SCHEMA, "line": pl.Int64},
    )
    item_query = {}
    for movie in movies:
        query = query_from_categories(movie.genres, min_levels=options.min_genre_levels)
        if query:
            item_query[movie.item_id] = query
    queries, query_ids = query_table(list(item_query.values()))
    events = purchases_to_events(ratings, item_query, query_ids)
    return RawData(
        items=items,
        queries=queries,
        events=events,
        origin={"items": item_file, "queries": item_file, "events": inter_file},
        info={
            "format": layout.describe(),
            "files": {p.name: sha256_file(p) for p in (inter_file, item_file, *extra)},
            "query_protocol": f"genres as a category path, at least {options.min_genre_levels} genre(s)",
            "movies_with_query": len(item_query),
            "ratings_kept": ratings.height,
            "time": "rating timestamp (seconds)",
        },
    )


@dataclass(frozen=True)
class _Layout:
    kind: str  # ml-100k | ml-1m | recbole
    name: str = ""  # the RecBole <name>

    def describe(self) -> str:
        if self.kind == "recbole":
            return f"MovieLens, RecBole atomic files ({self.name})"
        return f"MovieLens, {self.kind.upper()} original files"


def _detect(folder: Path, name: str | None) -> tuple[_Layout, Path]:
    """The layout and the folder holding its files (``folder`` or its one sub-folder)."""
    if not folder.is_dir():
        raise DataError("folder not found", where=folder, fix="give the MovieLens folder")
    found = _layout(folder, name)
    if found:
        return found, folder
    below = []
    for sub in sorted(folder.iterdir()):
        layout = _layout(sub, name) if sub.is_dir() else None
        if layout:
            below.append((layout, sub))
    if len(below) == 1:
        return below[0]
    raise DataError(
        "no MovieLens files found",
        where=folder,
        fix="give a folder with u.data + u.item (ML-100K), ratings.dat + movies.dat (ML-1M), "
        "or <name>.inter + <name>.item (RecBole)",
    )


def _layout(folder: Path, name: str | None) -> _Layout | None:
    if (folder / "u.data").is_file() and (folder / "u.item").is_file():
        return _Layout("ml-100k")
    if (folder / "ratings.dat").is_file() and (folder / "movies.dat").is_file():
        return _Layout("ml-1m")
    names = sorted(
        p.name[: -len(".inter")]
        for p in folder.glob("*.inter")
        if (folder / f"{p.name[: -len('.inter')]}.item").is_file()
    )
    if name is not None:
        return _Layout("recbole", name) if name in names else None
    if len(names) > 1:
        raise DataError(
            f"several RecBole datasets found ({', '.join(names)})",
            where=folder,
            fix="choose one with source_options.name",
        )
    return _Layout("recbole", names[0]) if names else None


def _split_title(raw: str) -> tuple[str, str]:
    """'Toy Story (1995)' -> ('Toy Story', '1995')."""
    match = _YEAR.search(raw)
    if match:
        return raw[: match.start()].strip(), match.group(1)
    return raw.strip(), ""


def _genres(names: list[str]) -> list[str]:
    return [g for g in (n.strip() for n in names) if g and g not in _NOT_GENRES]


def _read_genre_names(path: Path) -> tuple[str, ...]:
    """Genre names by flag index from u.genre (``name|index``), else the fixed list."""
    if not path.is_file():
        return ML100K_GENRES
    names: dict[int, str] = {}
    for line_no, line in read_lines(path, encoding="latin-1"):
        if not line.strip():
            continue
        genre, sep, index = line.rpartition("|")
        if not sep or not index.strip().isdigit():
            raise DataError(
                "expected 'genre|index'", where=f"{path}:{line_no}", fix="use the original u.genre"
            )
        names[int(index)] = genre
    if sorted(names) != list(range(len(names))):
        raise DataError("genre indexes are not 0..n-1", where=path, fix="use the original u.genre")
    return tuple(names[i] for i in range(len(names)))


def _read_100k_items(path: Path, genre_names: tuple[str, ...]) -> list[_Movie]:
    movies = []
    for line_no, line in read_lines(path, encoding="latin-1"):
        if not line.strip():
            continue
        fields = line.split("|")
        flags = fields[5:]
        if len(fields) < 6 or len(flags) != len(genre_names) or fields[0].strip() == "":
            raise DataError(
                f"expected 5 fields and {len(genre_names)} genre flags separated by '|', got {len(fields)} fields",
                where=f"{path}:{line_no}",
                fix="use the original u.item (and its u.genre)",
            )
        if any(flag.strip() not in ("0", "1") for flag in flags):
            raise DataError(
                "genre flags must be 0 or 1",
                where=f"{path}:{line_no}",
                fix="use the original u.item",
            )
        title, year = _split_title(fields[1])
        if not year and fields[2].strip()[-4:].isdigit():  # release date, e.g. 01-Jan-1995
            year = fields[2].strip()[-4:]
        genres = _genres(
            [g for g, flag in zip(genre_names, flags, strict=True) if flag.strip() == "1"]
        )
        movies.append(_Movie(fields[0].strip(), title, year, genres, line_no))
    return movies


def _read_1m_items(path: Path) -> list[_Movie]:
    movies = []
    for line_no, line in read_lines(path, encoding="latin-1"):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != 3 or not fields[0].strip():
            raise DataError(
                f"expected 'MovieID::Title::Genres', got {len(fields)} fields",
                where=f"{path}:{line_no}",
                fix="use the original movies.dat",
            )
        title, year = _split_title(fields[1])
        movies.append(
            _Movie(fields[0].strip(), title, year, _genres(fields[2].split("|")), line_no)
        )
    return movies


def _read_ratings(path: Path, separator: str, min_rating: float) -> pl.DataFrame:
    """``user SEP item SEP rating SEP timestamp`` lines (u.data, ratings.dat)."""
    users, times, items, lines = [], [], [], []
    for line_no, line in read_lines(path, encoding="latin-1"):
        if not line.strip():
            continue
        fields = line.split(separator)
        try:
            if len(fields) != 4:
                raise ValueError
            user, item = fields[0].strip(), fields[1].strip()
            rating, time_text = float(fields[2]), fields[3]
            if not user or not item or not math.isfinite(rating):
                raise ValueError
        except ValueError:
            shown = separator.replace("\t", "<TAB>")
            raise DataError(
                f"expected 'user{shown}item{shown}rating{shown}timestamp' with numbers, got {line[:60]!r}",
                where=f"{path}:{line_no}",
                fix=f"use the original {path.name}",
            ) from None
        time = checked_time(time_text, f"{path}:{line_no}", "timestamp")
        if rating >= min_rating:
            users.append(user)
            times.append(time)
            items.append(item)
            lines.append(line_no)
    return _purchases(users, times, items, lines)


def _atomic_header(path: Path, line: str, wanted: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """Column positions by name in a RecBole header (``name:type`` fields)."""
    names = [field.split(":")[0].strip() for field in line.split("\t")]
    positions = {}
    for key, aliases in wanted.items():
        hit = next((names.index(a) for a in aliases if a in names), None)
        if hit is None and not key.endswith("?"):
            raise DataError(
                f"the header has no '{aliases[0]}' column (columns: {', '.join(names)})",
                where=f"{path}:1",
                fix=f"use RecBole atomic files whose header names {aliases[0]}",
            )
        if hit is not None:
            positions[key.rstrip("?")] = hit
    return positions


def _read_atomic_items(path: Path) -> list[_Movie]:
    movies = []
    columns: dict[str, int] = {}
    for line_no, line in read_lines(path):
        if line_no == 1:
            columns = _atomic_header(
                path,
                line,
                {
                    "item_id": ("item_id",),
                    "title": ("movie_title", "title"),
                    "year?": ("release_year", "year"),
                    "genres?": ("class", "genre", "genres"),
                },
            )
            continue
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) <= max(columns.values()) or not fields[columns["item_id"]].strip():
            raise DataError(
                f"expected {max(columns.values()) + 1} tab-separated fields, got {len(fields)}",
                where=f"{path}:{line_no}",
                fix="give every row a value for every header column",
            )
        title, year = _split_title(fields[columns["title"]])
        if "year" in columns and fields[columns["year"]].strip().isdigit():
            year = fields[columns["year"]].strip()
        genres = _genres(fields[columns["genres"]].split()) if "genres" in columns else []
        movies.append(_Movie(fields[columns["item_id"]].strip(), title, year, genres, line_no))
    return movies


def _read_atomic_ratings(path: Path, min_rating: float) -> pl.DataFrame:
    users, times, items, lines = [], [], [], []
    columns: dict[str, int] = {}
    for line_no, line in read_lines(path):
        if line_no == 1:
            columns = _atomic_header(
                path,
                line,
                {
                    "user": ("user_id",),
                    "item": ("item_id",),
                    "time": ("timestamp",),
                    "rating?": ("rating",),
                },
            )
            continue
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            user, item = fields[columns["user"]].strip(), fields[columns["item"]].strip()
            time_text = fields[columns["time"]]
            rating = float(fields[columns["rating"]]) if "rating" in columns else min_rating
            if not user or not item or not math.isfinite(rating):
                raise ValueError
        except (ValueError, IndexError):
            raise DataError(
                f"expected user, item, rating and timestamp (numbers) per header, got {line[:60]!r}",
                where=f"{path}:{line_no}",
                fix="give every row a value for every header column",
            ) from None
        time = checked_time(time_text, f"{path}:{line_no}", "timestamp")
        if rating >= min_rating:
            users.append(user)
            times.append(time)
            items.append(item)
            lines.append(line_no)
    return _purchases(users, times, items, lines)


def _purchases(users: list, times: list, items: list, lines: list) -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": users, "time": times, "item_id": items, "line": lines},
        schema={"user_id": pl.String, "time": pl.Int64, "item_id": pl.String, "line": pl.Int64},
    )
