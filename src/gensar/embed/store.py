"""The on-disk form of an item-embedding matrix, shared by the semantic and
collaborative embedders and read by the identifier stage.

``<name>.safetensors`` holds one float32 tensor ``embedding`` of shape
[n_items, dim] whose rows follow ``item_ids``; the item ids and any provenance
(model, hashes, settings) live in the safetensors metadata, so the file is
self-describing and loads without pickle.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from gensar.errors import DataError
from gensar.io import temp_prefix


@dataclass
class ItemEmbeddings:
    """An embedding matrix with the item id of each row."""

    item_ids: list[str]
    matrix: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.item_ids):
            raise DataError(
                f"embedding matrix has shape {tuple(self.matrix.shape)} but there are "
                f"{len(self.item_ids)} item ids",
                fix="rebuild the embeddings for this dataset",
            )

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def save(self, path: str | Path) -> None:
        """Write atomically to ``path`` (a ``.safetensors`` file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"item_ids": json.dumps(self.item_ids), "meta": json.dumps(self.meta)}
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), dir=path.parent)
        os.close(fd)
        try:
            save_file(
                {"embedding": np.ascontiguousarray(self.matrix, dtype=np.float32)},
                tmp,
                metadata=metadata,
            )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path, expected_item_ids: list[str] | None = None) -> ItemEmbeddings:
        """Load from ``path``; if ``expected_item_ids`` is given, rows are checked
        (and re-ordered) to follow it, with a clear error on a mismatch."""
        path = Path(path)
        if not path.is_file():
            raise DataError(
                "embedding file not found",
                where=path,
                fix="run `gensar embed text` / `gensar embed collab` first",
            )
        try:
            with safe_open(str(path), framework="numpy") as handle:
                metadata = handle.metadata() or {}
            matrix = load_file(str(path))["embedding"]
            item_ids = json.loads(metadata["item_ids"])
            meta = json.loads(metadata.get("meta", "{}"))
        except (KeyError, ValueError, OSError) as err:
            raise DataError(
                f"not a gensar embedding file ({err})",
                where=path,
                fix="rebuild it with `gensar embed text` or `gensar embed collab`",
            ) from None
        emb = cls(item_ids=item_ids, matrix=matrix, meta=meta)
        if expected_item_ids is not None and item_ids != list(expected_item_ids):
            emb = emb.aligned_to(expected_item_ids, source=path)
        return emb

    def aligned_to(
        self, item_ids: list[str], *, source: str | Path = "embeddings"
    ) -> ItemEmbeddings:
        """Rows re-ordered to follow ``item_ids``; every id must be present."""
        if len(item_ids) != len(self.item_ids):
            raise DataError(
                f"embeddings have {len(self.item_ids)} rows but the dataset has {len(item_ids)} items",
                where=source,
                fix="rebuild the embeddings for this dataset",
            )
        position = {item: row for row, item in enumerate(self.item_ids)}
        missing = [item for item in item_ids if item not in position]
        if missing:
            raise DataError(
                f"{len(missing)} dataset items have no embedding (first: {missing[0]!r})",
                where=source,
                fix="rebuild the embeddings for this dataset",
            )
        order = np.fromiter(
            (position[item] for item in item_ids), dtype=np.int64, count=len(item_ids)
        )
        return ItemEmbeddings(list(item_ids), self.matrix[order], dict(self.meta))
