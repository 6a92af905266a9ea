"""MovieLens-100K download: GroupLens first, the recbole wheel as fallback, a verified cache.

The network is replaced by fakes (``_urlopen`` and ``_pip_download``) except in
one test that really runs ``pip download recbole==1.2.1`` (skipped when PyPI
cannot be reached).
"""

from __future__ import annotations

import hashlib
import io
import urllib.error
import zipfile
from pathlib import Path

import platformdirs
import pytest

from gensar.data import download
from gensar.data.sources import movielens
from gensar.errors import DataError

U_DATA = "1\t10\t4\t881250949\n1\t11\t3\t881250950\n2\t10\t5\t881250951\n3\t12\t1\t881250952\n"
U_ITEM = (
    "10|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1" + "|0" * 13 + "\n"
    "11|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1" + "|0" * 13 + "|1|0|0\n"
    "12|Four Rooms (1995)|01-Jan-1995||http://x" + "|0" * 16 + "|1|0|0\n"
)
INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t10\t4\t881250949\n2\t11\t3\t881250950\n2\t12\t5\t881250951\n3\t10\t2\t881250952\n"
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    "10\tToy Story\t1995\tAnimation Children's Comedy\n11\tGoldenEye\t1995\tAction\n"
    "12\tFour Rooms\t1995\tThriller\n"
)


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _offline(url, timeout):
    raise urllib.error.URLError("offline in tests")


def _no_pip(spec, dest):
    raise download._FetchError("pip unavailable in tests")


@pytest.fixture
def small_counts(monkeypatch):
    """The fixtures below stand in for ML-100K: (ratings, users, items) of U_DATA/INTER."""
    monkeypatch.setattr(download, "EXPECTED_COUNTS", (4, 3, 3))


def test_grouplens_archive_is_extracted_verified_and_cached(tmp_path, monkeypatch, small_counts):
    archive = _zip({"ml-100k/u.data": U_DATA, "ml-100k/u.item": U_ITEM, "ml-100k/README": "terms"})
    calls = []

    def fake_urlopen(url, timeout):
        calls.append((url, timeout))
        return archive

    monkeypatch.setattr(download, "_urlopen", fake_urlopen)
    monkeypatch.setattr(download, "_pip_download", _no_pip)
    logged: list[str] = []
    folder = download.movielens_100k(tmp_path, log=logged.append)

    assert calls == [(download.GROUPLENS_URL, download.TIMEOUT_S)]
    assert sorted(p.name for p in folder.iterdir()) == [
        "README",
        download.RECORD,
        "u.data",
        "u.item",
    ]
    assert any("Harper and Joseph A. Konstan" in line for line in logged)
    raw = movielens.load(folder, movielens.Options())
    assert raw.items["title"].to_list() == ["Toy Story", "GoldenEye", "Four Rooms"]
    assert raw.events.filter(raw.events["behaviour"] == "rec_item").height == 4

    # Second call: served from the cache, no network, no licence text again.
    monkeypatch.setattr(download, "_urlopen", _offline)
    logged.clear()
    assert download.movielens_100k(tmp_path, log=logged.append) == folder
    assert logged == []


def test_falls_back_to_the_recbole_wheel(tmp_path, monkeypatch, small_counts):
    wheel_files = {
        download.RECBOLE_PREFIX + "ml-100k.inter": INTER,
        download.RECBOLE_PREFIX + "ml-100k.item": ITEM,
        "recbole/__init__.py": "",
    }
    monkeypatch.setattr(
        download,
        "RECBOLE_SHA256",
        {
            "ml-100k.inter": hashlib.sha256(INTER.encode()).hexdigest(),
            "ml-100k.item": hashlib.sha256(ITEM.encode()).hexdigest(),
        },
    )
    specs = []

    def fake_pip(spec, dest):
        specs.append(spec)
        wheel = dest / "recbole-1.2.1-py3-none-any.whl"
        wheel.write_bytes(_zip(wheel_files))
        return wheel

    monkeypatch.setattr(download, "_urlopen", _offline)
    monkeypatch.setattr(download, "_pip_download", fake_pip)
    logged: list[str] = []
    folder = download.movielens_100k(tmp_path / "cache", log=logged.append)

    assert specs == ["recbole==1.2.1"]
    assert (folder / "ml-100k.inter").read_text() == INTER
    assert any("GroupLens failed" in line and "offline in tests" in line for line in logged)
    raw = movielens.load(folder, movielens.Options())
    assert raw.info["format"] == "MovieLens, RecBole atomic files (ml-100k)"
    assert raw.items.height == 3


def test_a_wheel_with_other_files_is_rejected(tmp_path, monkeypatch, small_counts):
    def fake_pip(spec, dest):
        wheel = dest / "recbole-1.2.1-py3-none-any.whl"
        wheel.write_bytes(
            _zip(
                {
                    download.RECBOLE_PREFIX + "ml-100k.inter": INTER,
                    download.RECBOLE_PREFIX + "ml-100k.item": ITEM,
                }
            )
        )
        return wheel

    monkeypatch.setattr(download, "_urlopen", _offline)
    monkeypatch.setattr(download, "_pip_download", fake_pip)
    with pytest.raises(DataError, match="unexpected SHA-256"):
        download.movielens_100k(tmp_path, log=lambda _: None)
    assert not (tmp_path / "movielens" / "ml-100k").exists()


def test_both_sources_failing_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "_urlopen", _offline)
    monkeypatch.setattr(download, "_pip_download", _no_pip)
    with pytest.raises(DataError) as err:
        download.movielens_100k(tmp_path, log=lambda _: None)
    message = str(err.value)
    assert "\n" not in message
    assert "GroupLens: " in message and "offline in tests" in message
    assert "PyPI: pip unavailable in tests" in message
    assert "Fix: download ml-100k.zip by hand" in message
    assert sorted(p.name for p in (tmp_path / "movielens").iterdir()) == []


def test_wrong_row_counts_are_not_accepted(tmp_path, monkeypatch):
    archive = _zip({"ml-100k/u.data": U_DATA, "ml-100k/u.item": U_ITEM})
    monkeypatch.setattr(download, "_urlopen", lambda url, timeout: archive)
    monkeypatch.setattr(download, "_pip_download", _no_pip)
    with pytest.raises(
        DataError, match="u.data has 4 ratings by 3 users of 3 items, expected 100000"
    ):
        download.movielens_100k(tmp_path, log=lambda _: None)


def test_a_truncated_archive_falls_through(tmp_path, monkeypatch):
    archive = _zip({"ml-100k/u.data": U_DATA, "ml-100k/u.item": U_ITEM})
    monkeypatch.setattr(download, "_urlopen", lambda url, timeout: archive[: len(archive) // 2])
    monkeypatch.setattr(download, "_pip_download", _no_pip)
    with pytest.raises(DataError, match="not the expected archive"):
        download.movielens_100k(tmp_path, log=lambda _: None)


def test_a_damaged_cache_is_fetched_again(tmp_path, monkeypatch, small_counts):
    archive = _zip({"ml-100k/u.data": U_DATA, "ml-100k/u.item": U_ITEM})
    fetches = []

    def fake_urlopen(url, timeout):
        fetches.append(url)
        return archive

    monkeypatch.setattr(download, "_urlopen", fake_urlopen)
    monkeypatch.setattr(download, "_pip_download", _no_pip)
    folder = download.movielens_100k(tmp_path, log=lambda _: None)
    (folder / "u.data").write_text(U_DATA.replace("881250949", "1"))
    assert download.movielens_100k(tmp_path, log=lambda _: None) == folder
    assert len(fetches) == 2
    assert (folder / "u.data").read_text() == U_DATA


def test_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSAR_CACHE_DIR", str(tmp_path / "env-cache"))
    assert download.cache_root() == tmp_path / "env-cache"
    assert download.cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("GENSAR_CACHE_DIR")
    assert download.cache_root() == Path(platformdirs.user_cache_dir("gensar"))


def test_an_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="cannot create the cache folder.*GENSAR_CACHE_DIR"):
        download.movielens_100k(blocker, log=lambda _: None)


def test_real_recbole_wheel_fallback(tmp_path, monkeypatch):
    """Really runs `pip download recbole==1.2.1` (about 2 s) and checks the real files."""
    monkeypatch.setattr(download, "_urlopen", _offline)
    try:
        folder = download.movielens_100k(tmp_path, log=lambda _: None)
    except DataError as err:
        if "pip download" in str(err):
            pytest.skip(f"PyPI not reachable here: {err}")
        raise
    assert (
        download.sha256_file(folder / "ml-100k.inter") == download.RECBOLE_SHA256["ml-100k.inter"]
    )
    raw = movielens.load(folder, movielens.Options())
    assert raw.items.height == 1682
    assert raw.info["ratings_kept"] == 100_000
    assert raw.events["user_id"].n_unique() == 943
    assert Path(folder, download.RECORD).is_file()
