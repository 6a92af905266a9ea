"""Fetch MovieLens-100K once and cache it, for the quick start and the tests.

``movielens_100k()`` returns a folder the ``movielens`` loader reads. The first
call tries GroupLens's official archive; when that host cannot be reached (as in
sandboxes that only see PyPI) it falls back to the copy of ML-100K that the
``recbole==1.2.1`` wheel ships (``recbole/dataset_example/ml-100k/ml-100k.inter``
and ``.item``, RecBole atomic files): ``pip download`` fetches the wheel and the
two files are read out of it with ``zipfile``; recbole is never installed.

The folder lives in ``$GENSAR_CACHE_DIR`` or else the user's cache directory
(``platformdirs.user_cache_dir("gensar")``), under ``movielens/ml-100k``. It is
built under a temporary name and renamed into place when complete, and holds a
``gensar-download.json`` record (source and SHA-256 of every file) that later
calls check before trusting the cache. Downloads are verified: the RecBole files
against their known SHA-256, the GroupLens files by their documented size (100,000
ratings by 943 users of 1,682 movies). The MovieLens terms of use are printed the
first time (a marker file in the cache remembers it).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import platformdirs

from gensar.errors import DataError
from gensar.io import atomic_output_dir, atomic_write_bytes, read_json, sha256_file, write_json

_logger = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
#: Files taken from the GroupLens archive (its folder is ``ml-100k/``); the first two
#: are required.
GROUPLENS_FILES = ("u.data", "u.item", "u.genre", "README")
RECBOLE_SPEC = "recbole==1.2.1"
RECBOLE_PREFIX = "recbole/dataset_example/ml-100k/"
#: SHA-256 of the files inside the recbole 1.2.1 wheel.
RECBOLE_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
}
#: ML-100K as documented by GroupLens: ratings, users, movies.
EXPECTED_COUNTS = (100_000, 943, 1_682)
RECORD = "gensar-download.json"
LICENSE_MARKER = ".movielens-terms-shown"
TIMEOUT_S = 15

LICENSE = (
    "MovieLens 100K is provided by GroupLens Research (University of Minnesota) for "
    "research use: it may not be redistributed or used commercially without their "
    "permission, and publications using it must cite F. Maxwell Harper and Joseph A. "
    "Konstan. 2015. The MovieLens Datasets: History and Context. ACM TiiS 5(4): 19. "
    "Full terms: https://files.grouplens.org/datasets/movielens/ml-100k-README.txt"
)


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$GENSAR_CACHE_DIR``, else the user's cache directory."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("GENSAR_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("gensar"))


def movielens_100k(
    cache_dir: str | Path | None = None, log: Callable[[str], None] | None = None
) -> Path:
    """A folder with ML-100K (GroupLens or RecBole files), downloaded on first use."""
    log = log or _logger.info
    root = cache_root(cache_dir) / "movielens"
    final = root / "ml-100k"
    marker = root / LICENSE_MARKER
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create the cache folder ({_reason(err)})",
            where=root,
            fix="set GENSAR_CACHE_DIR to a writable folder",
        ) from None
    if not marker.is_file():
        log(LICENSE)
    if not _cached(final):
        source, files = _fetch(log)
        try:
            _store(final, source, files)
        except OSError as err:
            raise DataError(
                f"cannot write the cache ({_reason(err)})",
                where=final,
                fix="free some disk space or set GENSAR_CACHE_DIR to a writable folder",
            ) from None
        log(f"MovieLens-100K cached in {final}")
    if not marker.is_file():
        with contextlib.suppress(OSError):
            atomic_write_bytes(marker, (LICENSE + "\n").encode("utf-8"))
    return final


def _fetch(log: Callable[[str], None]) -> tuple[str, dict[str, bytes]]:
    """The files from the first source that works; one DataError when none does."""
    failures = []
    for name, fetch in (("GroupLens", _fetch_grouplens), ("PyPI", _fetch_recbole)):
        try:
            return fetch(log)
        except _FetchError as err:
            log(f"  {name} failed: {err}")
            failures.append(f"{name}: {err}")
    raise DataError(
        "cannot download MovieLens-100K (" + "; ".join(failures) + ")",
        where=GROUPLENS_URL,
        fix="download ml-100k.zip by hand from https://grouplens.org/datasets/movielens/100k/, "
        "unzip it and give its folder to `gensar prepare --source movielens`",
    )


def _store(final: Path, source: str, files: dict[str, bytes]) -> None:
    """Write the files and their record into ``final`` atomically (all or nothing)."""
    with atomic_output_dir(final) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        record = {
            "source": source,
            "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        }
        write_json(tmp / RECORD, record)


class _FetchError(Exception):
    """One source failed; the message says why (the next source is tried)."""


def _cached(folder: Path) -> bool:
    """The folder is complete (it has its record) and every file still has its hash."""
    record = folder / RECORD
    if not record.is_file():
        return False
    try:
        hashes = read_json(record)["sha256"]
        return all(sha256_file(folder / name) == digest for name, digest in hashes.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _urlopen(url: str, timeout: float) -> bytes:
    """The body at ``url`` (replaced in tests)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URL)
        return response.read()


def _fetch_grouplens(log: Callable[[str], None]) -> tuple[str, dict[str, bytes]]:
    """(source, file name -> bytes) from GroupLens's official archive."""
    log(f"Downloading {GROUPLENS_URL} ...")
    try:
        data = _urlopen(GROUPLENS_URL, TIMEOUT_S)
    except (OSError, http.client.HTTPException) as err:  # URLError and timeouts are OSErrors
        raise _FetchError(f"{GROUPLENS_URL} unreachable ({_reason(err)})") from None
    files = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            present = set(archive.namelist())
            for name in GROUPLENS_FILES:
                member = f"ml-100k/{name}"
                if member in present or name in GROUPLENS_FILES[:2]:
                    files[name] = archive.read(member)
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise _FetchError(f"{GROUPLENS_URL} is not the expected archive ({err})") from None
    _check_counts(files["u.data"], "\t", "u.data", header=False)
    return GROUPLENS_URL, files


def _pip_download(spec: str, dest: Path) -> Path:
    """Download the wheel of ``spec`` (no dependencies) into ``dest``; return its path
    (replaced in tests)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    try:
        done = subprocess.run(
            [*command, spec, "-d", str(dest)], capture_output=True, text=True, timeout=600
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise _FetchError(f"pip download {spec} failed ({_reason(err)})") from None
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise _FetchError(f"pip download {spec} failed ({last[:200]})")
    return wheels[0]


def _fetch_recbole(log: Callable[[str], None]) -> tuple[str, dict[str, bytes]]:
    """(source, file name -> bytes) read out of the recbole wheel, SHA-256 checked."""
    log(f"Taking ML-100K from the {RECBOLE_SPEC} wheel on PyPI (pip download) ...")
    files = {}
    with tempfile.TemporaryDirectory(prefix="gensar-recbole-") as tmp:
        wheel = _pip_download(RECBOLE_SPEC, Path(tmp))
        try:
            with zipfile.ZipFile(wheel) as archive:
                for name in RECBOLE_SHA256:
                    files[name] = archive.read(RECBOLE_PREFIX + name)
        except (zipfile.BadZipFile, KeyError, OSError) as err:
            raise _FetchError(f"the {RECBOLE_SPEC} wheel lacks ML-100K ({err})") from None
    for name, digest in RECBOLE_SHA256.items():
        if hashlib.sha256(files[name]).hexdigest() != digest:
            raise _FetchError(f"{name} in the {RECBOLE_SPEC} wheel has an unexpected SHA-256")
    _check_counts(files["ml-100k.inter"], "\t", "ml-100k.inter", header=True)
    return f"{RECBOLE_SPEC} wheel on PyPI ({RECBOLE_PREFIX})", files


def _check_counts(data: bytes, separator: str, name: str, *, header: bool) -> None:
    """Ratings, users and items of a ``user SEP item SEP ...`` file match ML-100K."""
    lines = data.decode("latin-1").splitlines()[1 if header else 0 :]
    rows = [line.split(separator) for line in lines if line.strip()]
    found = (len(rows), len({r[0] for r in rows}), len({r[1] for r in rows if len(r) > 1}))
    if found != EXPECTED_COUNTS:
        raise _FetchError(
            f"{name} has {found[0]} ratings by {found[1]} users of {found[2]} items, "
            f"expected {EXPECTED_COUNTS[0]}, {EXPECTED_COUNTS[1]} and {EXPECTED_COUNTS[2]}"
        )


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    return str(reason).strip()[:200] or type(err).__name__
