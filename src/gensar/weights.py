"""A trained model as a folder: ``model.safetensors`` plus a ``config.json`` card.

SASRec (``embed/collab.py``) and SynerGen (``families/synergen``) save and load
their weights the same way: the card names a format and its version, the
settings and the dataset it was trained on, and loading turns every damage (a
missing file, invalid JSON, another format or version, weights that do not fit
the settings) into one :class:`GensarError` naming the file. One copy of that
logic here instead of one per model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gensar import __version__
from gensar.data.dataset import Dataset
from gensar.errors import GensarError
from gensar.io import read_json, write_json

WEIGHTS, CARD = "model.safetensors", "config.json"


def save_weights_folder(
    folder: Path,
    tensors: dict[str, torch.Tensor],
    *,
    fmt: str,
    version: int,
    config: Any,
    dataset: Dataset,
    **card: Any,
) -> None:
    """Write ``tensors`` and a card (format, version, settings, dataset, ``card`` fields)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": fmt})
    head = {
        "format": fmt,
        "format_version": version,
        "gensar_version": __version__,
        "config": config.model_dump(mode="json"),
    }
    dataset_info = {
        "path": str(dataset.path.resolve()),
        "content_hash": dataset.manifest.get("content_hash"),
    }
    write_json(folder / CARD, head | {"dataset": dataset_info} | card)


def card_summary(folder: str | Path) -> dict[str, Any]:
    """The training summary recorded in a weights folder's card (empty when the folder
    has no card: the model is not trained yet). Benchmarks read examples seen and
    training time from it."""
    card = Path(folder) / CARD
    if not card.is_file():
        return {}
    return read_json(card).get("summary", {}) or {}


def read_weights_folder(
    folder: str | Path, *, fmt: str, version: int, what: str, fix_missing: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor], Path]:
    """The card, the tensors and the weights path of a folder written by :func:`save_weights_folder`."""
    folder = Path(folder)
    card_file, weights_file = folder / CARD, folder / WEIGHTS
    if not card_file.is_file() or not weights_file.is_file():
        raise GensarError(
            f"not a trained {what} folder ({CARD} or {WEIGHTS} missing)",
            where=folder,
            fix=fix_missing,
        )
    try:
        info = read_json(card_file)
    except ValueError as err:
        raise GensarError(
            f"{CARD} is not valid JSON ({err})", where=card_file, fix=f"retrain {what}"
        ) from None
    if info.get("format") != fmt or info.get("format_version") != version:
        raise GensarError(
            f"unsupported format {info.get('format')!r} v{info.get('format_version')}",
            where=card_file,
            fix=f"retrain {what} with this version of gensar",
        )
    return info, load_file(str(weights_file)), weights_file


def load_weights(
    model: nn.Module, tensors: dict[str, torch.Tensor], weights_file: Path, what: str
) -> None:
    """``model.load_state_dict(tensors)``, a mismatch being one line naming the file."""
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise GensarError(
            f"weights do not match {CARD} ({str(err).splitlines()[0]})",
            where=weights_file,
            fix=f"retrain {what}",
        ) from None
