"""File helpers shared by every stage: atomic outputs, hashing, JSON and Parquet.

A stage never leaves a half-written output behind: it builds into a temporary
sibling directory (or file) and renames it into place only when complete.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from gensar.errors import GensarError

#: How each kind of output directory is recognised: the manifest its stage writes.
#: A directory is replaced only when it holds its kind's manifest (or is empty).
MANIFESTS: dict[str, tuple[str, ...]] = {
    "dataset": ("manifest.json",),  # gensar prepare
    "run": (  # every stage of `gensar ... --run RUN`: its settings or any stage's output
        "stages.json",
        "config.yaml",
        "embeddings/semantic.safetensors",
        "embeddings/collab.safetensors",
        "identifiers/identifiers.parquet",
        "candidates/manifest.json",
        "training/metrics.jsonl",
        "model/gensar.json",
    ),
    "model": ("gensar.json",),  # gensar train -> RUN/model
    "identifiers": ("report.json", "identifiers.parquet"),  # gensar index
    "sasrec": ("config.json",),  # gensar embed collab -> RUN/embeddings/sasrec
    "checkpoint": ("state.json",),  # RUN/training/checkpoints/step-N
    "weights": ("config.json",),  # RUN/training/best (save_pretrained)
    "tokenizer": ("tokenizer_config.json", "tokenizer.json"),  # RUN/training/tokenizer
    "benchmark": ("results.json", "candidates/manifest.json"),  # gensar benchmark -> out
    "quickstart": ("results.json", "candidates/manifest.json", "dataset/manifest.json"),
    "download": ("gensar-download.json",),  # the download cache
}

_OVERWRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("gensar_overwrite", default=False)
_TEMP_NAME = re.compile(r"^\..+\.(?:tmp|old)-(\d+)-")


class OutputError(GensarError):
    """An output path that gensar refuses to write (it would destroy something)."""


@contextlib.contextmanager
def allow_overwrite(enabled: bool = True) -> Iterator[None]:
    """Inside this block, outputs that are not gensar's own may be replaced (``--overwrite``)."""
    token = _OVERWRITE.set(enabled or _OVERWRITE.get())
    try:
        yield
    finally:
        _OVERWRITE.reset(token)


def is_own_output(path: Path, kind: str | None = None) -> bool:
    """Whether ``path`` is a directory some stage of gensar wrote (of ``kind``, when given)."""
    names = MANIFESTS.get(kind, ()) if kind else {n for v in MANIFESTS.values() for n in v}
    return path.is_dir() and any((path / name).exists() for name in names)


def check_output_dir(
    path: str | Path,
    kind: str,
    *,
    overwrite: bool = False,
    option: str = "--overwrite",
) -> Path:
    """Refuse, with one line, an output directory whose replacement would destroy something.

    Accepted: an absent path (its parent must be creatable and writable), an empty
    directory, or an earlier output of the same kind (recognised by its manifest,
    see ``MANIFESTS``). Anything else (a file, a directory of other things) is
    refused unless ``overwrite`` (or :func:`allow_overwrite`) says it may go.
    """
    path = Path(path)
    overwrite = overwrite or _OVERWRITE.get()
    check_writable(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        if overwrite and not path.is_dir():
            return path
        raise OutputError(
            f"{path} exists and is not a directory; refusing to replace it with a {kind} directory",
            fix=f"choose another output path, or pass {option} to replace the file",
        )
    if not path.exists() or is_own_output(path, kind) or overwrite:
        return path
    if not any(path.iterdir()):
        return path
    manifest = " or ".join(MANIFESTS.get(kind, ())[:2]) or "gensar manifest"
    raise OutputError(
        f"{path} exists and is not an earlier {kind} output of gensar (it has no {manifest}); "
        "refusing to replace what is in it",
        fix=f"choose a new or empty directory, or pass {option} to replace it deliberately",
    )


def check_output_file(path: str | Path, *, overwrite: bool = False, own=None) -> Path:
    """Refuse to replace an existing file unless ``overwrite`` or ``own(path)`` says it is ours."""
    path = Path(path)
    check_writable(path)
    if path.is_dir():
        raise OutputError(
            f"{path} is a directory", fix="give the path of the file to write, e.g. answers.jsonl"
        )
    if path.exists() and not (overwrite or _OVERWRITE.get() or (own is not None and own(path))):
        raise OutputError(
            f"{path} already exists and was not written by this command; refusing to replace it",
            fix="choose another output file, or pass --overwrite to replace it",
        )
    return path


def check_writable(path: Path) -> None:
    """One-line errors for a destination under a regular file or in a read-only place."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(
            f"cannot create {path}: {parent} is a file, not a directory",
            fix="choose an output path whose parent folders are directories",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write {path}: no write permission in {parent} (or the file system is read-only)",
            fix="choose a writable output location",
        )


def os_error(err: OSError) -> OutputError:
    """An operating-system refusal to write (read-only, disk full...) as a one-line error."""
    where = err.filename or "the output"
    return OutputError(
        f"cannot write {where}: {err.strerror or err}",
        fix="choose a writable location with free space",
    )


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files and folders a killed gensar process left in ``folder``.

    Every temporary name carries its writer's process id (``.NAME.tmp-PID-...``,
    ``.NAME.old-PID-...``); those whose process is gone are leftovers of a kill.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


def temp_prefix(path: Path, what: str = "tmp") -> str:
    """The prefix of a temporary name beside ``path``: it carries this process id, so the
    temporary of a killed writer can be told from that of a live one."""
    return f".{path.name}.{what}-{os.getpid()}-"


@contextlib.contextmanager
def atomic_output_dir(
    final: str | Path, *, overwrite: bool = True, kind: str | None = None
) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``final`` only if the block succeeds.

    On any exception the temporary directory is removed and ``final`` is left as
    it was (absent, or its previous complete version). An existing ``final`` is
    replaced only if it is an earlier gensar output (of ``kind``, when given;
    see :func:`check_output_dir`) or empty; ``overwrite=False`` refuses even that.
    Leftovers of killed earlier writers in the same folder are removed first.
    """
    final = Path(final)
    guard = kind or "gensar"
    check_output_dir(final, guard) if kind else _check_any_own(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(final.parent)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final), dir=final.parent))
    except OSError as err:
        raise os_error(err) from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists() or final.is_symlink():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(final)
        try:
            check_output_dir(final, guard) if kind else _check_any_own(final)
        except OutputError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = Path(tempfile.mkdtemp(prefix=temp_prefix(final, "old"), dir=final.parent))
        os.replace(final, old / "previous")
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _check_any_own(path: Path) -> None:
    """The guard of an output of no declared kind: any gensar manifest will do."""
    if (
        path.is_dir()
        and not is_own_output(path)
        and any(path.iterdir())
        or path.exists()
        and not path.is_dir()
    ):
        check_output_dir(path, "gensar")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, default=_json_default)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_parquet(frame: pl.DataFrame, path: str | Path) -> None:
    """Write a Parquet file atomically (zstd, statistics on)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), dir=path.parent)
    os.close(fd)
    try:
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_files(paths: Iterable[str | Path]) -> str:
    """One hash over several files (names and contents), order-independent."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def sha256_text(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()
