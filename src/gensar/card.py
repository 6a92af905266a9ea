"""The model card: what a model directory says about itself, typed, written and read by
one class.

Every family's card has the fields of :class:`ModelCard` (its family, display
name, the gensar version that wrote it, the dataset it was trained on and the
history window of its training samples); a family adds its own fields in a
subclass with its own file name (GenSAR: ``gensar.json``). Serving reads the
shared fields only: the window (how much of a stored history the model reads)
and the dataset hash (a warning when served with another dataset).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from gensar.errors import DataError


class DatasetRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: str | None = None
    content_hash: str | None = None

    @classmethod
    def of(cls, dataset) -> DatasetRef:
        return cls(path=str(dataset.path), content_hash=dataset.manifest.get("content_hash"))


class HistoryWindow(BaseModel):
    """How many rec items and search sessions of a history the training samples kept."""

    model_config = ConfigDict(extra="ignore")

    max_rec_history: int
    max_search_sessions: int

    @classmethod
    def of(cls, dataset) -> HistoryWindow | None:
        """The window of a prepared dataset's samples (None if its manifest has none)."""
        options = dataset.manifest.get("options", {}).get("samples", {})
        try:
            return cls.model_validate(options)
        except ValidationError:
            return None


class ModelCard(BaseModel):
    """The fields every family's model card has."""

    model_config = ConfigDict(extra="ignore")

    #: The card's file in the model directory.
    FILE: ClassVar[str] = "card.json"

    family: str | None = None
    name: str = "model"
    gensar_version: str | None = None
    dataset: DatasetRef = DatasetRef()
    history_window: HistoryWindow | None = None

    def write(self, model_dir: str | Path) -> Path:
        from gensar.io import write_json

        path = Path(model_dir) / self.FILE
        write_json(path, self.model_dump(mode="json"))
        return path

    @classmethod
    def parse(cls, data: Any, where: str | Path):
        """Validate a card's JSON; a wrong field is one DataError naming the file."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise DataError(
                f"model card field '{field}': {first['msg']}",
                where=where,
                fix="retrain with `gensar train`, or copy the model directory again",
            ) from None

    @classmethod
    def read(cls, model_dir: str | Path):
        path = Path(model_dir) / cls.FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError("no model card", where=path, fix="train the model first") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(
                f"unreadable model card ({type(err).__name__})", where=path, fix="retrain"
            ) from None
        return cls.parse(data, path)
