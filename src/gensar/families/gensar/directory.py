"""Reading a model directory (``RUN/model``) with every kind of damage named.

``gensar train`` writes the directory atomically, but it is then copied,
synced, edited and truncated by people and tools. Every reader of a model
directory (``GenSAR.load``, hence ``gensar predict``, ``gensar serve`` and the
evaluation) goes through :func:`open_model_dir`, which turns each problem (a
missing or truncated file, invalid JSON, a weight file whose bytes changed)
into one :class:`~gensar.errors.GensarError` that names the file and says how
to fix it, instead of a traceback from safetensors, tokenizers or polars.

Integrity: the model card (``gensar.json``) records the SHA-256 of every weight
file (``checksums``); loading recomputes them, so a flipped byte is an error,
not a silently different model. Cards written before checksums existed load
without that check.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from gensar.card import ModelCard
from gensar.errors import GensarError
from gensar.io import sha256_file

MODEL_CARD = "gensar.json"
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
IDENTIFIERS = "identifiers.parquet"
ITEMS = "items.parquet"
WEIGHTS = "model.safetensors"
#: Files a model directory cannot work without (weights are checked separately).
REQUIRED = (MODEL_CARD, CONFIG, TOKENIZER, IDENTIFIERS, ITEMS, WEIGHTS)
REBUILD = "retrain with `gensar train`, or copy the model directory again from its source"

T = TypeVar("T")


class ModelDirError(GensarError):
    """A model directory that is missing a file or holds a damaged one."""


def weight_checksums(folder: str | Path) -> dict[str, str]:
    """SHA-256 of every ``*.safetensors`` file in ``folder`` (recorded in the model card)."""
    return {p.name: sha256_file(p) for p in sorted(Path(folder).glob("*.safetensors"))}


def open_model_dir(model_dir: str | Path) -> dict[str, Any]:
    """Check ``model_dir`` before anything is loaded from it; returns the model card.

    Checks, in order: it is a directory; every required file is present and
    non-empty; ``gensar.json`` and ``config.json`` are JSON objects;
    ``tokenizer.json`` is JSON; each weight file matches the checksum the card
    recorded. Each failure is one ModelDirError naming the file.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelDirError(
            "not a gensar model directory ("
            + ("a file, not a directory" if model_dir.exists() else "it does not exist")
            + ")",
            where=model_dir,
            fix="pass the model/ folder that `gensar train` wrote (RUN/model)",
        )
    if not (model_dir / MODEL_CARD).is_file():
        raise ModelDirError(
            f"no {MODEL_CARD}: not a gensar model directory",
            where=model_dir,
            fix="train one with `gensar train` and pass its model/ folder",
        )
    for name in REQUIRED:
        path = model_dir / name
        if not path.is_file():
            raise ModelDirError("missing file of the model directory", where=path, fix=REBUILD)
        if path.stat().st_size == 0:
            raise ModelDirError("empty file (truncated?)", where=path, fix=REBUILD)
    card = _json_object(model_dir / MODEL_CARD)
    for key in ("tasks", "model"):
        if not isinstance(card.get(key), dict):
            raise ModelDirError(
                f"the model card has no '{key}' section", where=model_dir / MODEL_CARD, fix=REBUILD
            )
    _json_object(model_dir / CONFIG)
    _json_object(model_dir / TOKENIZER)
    recorded = card.get("checksums")
    if recorded is not None:
        if not isinstance(recorded, dict):
            raise ModelDirError(
                "'checksums' must map file names to SHA-256 digests",
                where=model_dir / MODEL_CARD,
                fix=REBUILD,
            )
        for name, digest in recorded.items():
            path = model_dir / str(name)
            if not path.is_file():
                raise ModelDirError(
                    "missing weight file (listed in the model card)", where=path, fix=REBUILD
                )
            if sha256_file(path) != digest:
                raise ModelDirError(
                    "checksum mismatch: the file differs from the one training wrote "
                    "(truncated, corrupted or replaced)",
                    where=path,
                    fix=REBUILD,
                )
    return card


def load_part(path: Path, what: str, load: Callable[[], T]) -> T:
    """Run ``load`` (reading ``path``); any failure becomes one ModelDirError naming the file."""
    try:
        return load()
    except GensarError:
        raise
    except Exception as err:  # noqa: BLE001 (every library's error for a damaged file)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ModelDirError(
            f"cannot load the {what} ({type(err).__name__}: {first})", where=path, fix=REBUILD
        ) from None


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelDirError("not UTF-8 text", where=path, fix=REBUILD) from None
    except json.JSONDecodeError as err:
        raise ModelDirError(
            f"invalid JSON ({err.msg} at line {err.lineno})", where=path, fix=REBUILD
        ) from None
    if not isinstance(data, dict):
        raise ModelDirError("must be a JSON object", where=path, fix=REBUILD)
    return data


class GenSARCard(ModelCard):
    """GenSAR's model card (``gensar.json``): the shared fields, the weight checksums,
    the settings it was trained with and its training summary."""

    FILE: ClassVar[str] = MODEL_CARD

    family: str | None = "gensar"
    name: str = "GenSAR"
    checksums: dict[str, str] | None = None
    tasks: dict[str, Any] = {}
    model: dict[str, Any] = {}
    train: dict[str, Any] = {}
    training: dict[str, Any] = {}
    validation_history: list[Any] = []
