"""``ItemIdentifiers``: the one-to-one map between items and their identifiers (Eq. 5, 11).

On disk, ``identifiers.parquet`` has one row per item in the dataset's item order::

    item_id (str), shared (list[int]), semantic (list[int]), collaborative (list[int]),
    semantic_tokens (str), collaborative_tokens (str)

``semantic`` / ``collaborative`` hold the specific codes, including a final
disambiguation code when one was needed; the token strings are the identifiers
of Eq. (11) without the behaviour token, e.g. ``<m1_12><m2_200><s1_3><s2_9>``.
The Parquet key-value metadata ``gensar_identifiers`` (JSON) records the variant,
K and the level names, so the file is self-describing wherever it is copied.
The code vectors live beside it in ``rqvae.safetensors`` (run directory only).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from gensar.errors import DataError
from gensar.io import atomic_write_bytes
from gensar.layout import IDENTIFIERS as IDENTIFIERS_FOLDER

TABLE = "identifiers.parquet"
WEIGHTS = "rqvae.safetensors"
REPORT = "index_report.json"
PLOT = "codebook_usage.png"
META_KEY = "gensar_identifiers"
FORMAT_VERSION = 1
SEMANTIC, COLLABORATIVE = "semantic", "collaborative"
_TOKEN = re.compile(r"<([a-z]+\d+)_(\d+)>")


def token(level: str, code: int) -> str:
    """The vocabulary token of ``code`` at ``level`` (e.g. ``<m1_12>``)."""
    return f"<{level}_{code}>"


def identifiers_dir(path: str | Path) -> Path:
    """``path`` itself if it holds identifiers.parquet, else ``path/identifiers``."""
    path = Path(path)
    return path if (path / TABLE).is_file() else path / IDENTIFIERS_FOLDER


@dataclass
class ItemIdentifiers:
    """Both identifiers of every item, with lookups in both directions.

    ``levels[kind]`` lists the level names of that identifier in order (shared
    levels first, then the specific ones, then any disambiguation level), which
    are the token prefixes: codes ``[12, 200, 3, 9]`` with levels
    ``[m1, m2, s1, s2]`` are the tokens ``<m1_12><m2_200><s1_3><s2_9>``.
    """

    item_ids: list[str]
    shared: np.ndarray  #: [N, L_m] int64
    semantic: np.ndarray  #: [N, L_s] int64, specific codes (+ disambiguation)
    collaborative: np.ndarray  #: [N, L_c] int64
    levels: dict[str, list[str]]
    variant: str = "joint"
    codebook_size: int = 256
    #: levels appended by de-duplication (their codes are 0..max, not 0..K-1)
    disambiguation_levels: list[str] = field(default_factory=list)
    source: Path | None = None

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        for name in ("shared", "semantic", "collaborative"):
            matrix = np.asarray(getattr(self, name), dtype=np.int64)
            if matrix.ndim != 2 or matrix.shape[0] != n:
                matrix = matrix.reshape(n, -1)
            setattr(self, name, matrix)
        for kind in (SEMANTIC, COLLABORATIVE):
            if len(self.levels[kind]) != self.codes_matrix(kind).shape[1]:
                raise DataError(
                    f"{kind} identifiers have {self.codes_matrix(kind).shape[1]} codes but "
                    f"{len(self.levels[kind])} level names",
                    where=self.source or TABLE,
                    fix="rebuild the identifiers with `gensar index`",
                )

    # --- whole matrices ------------------------------------------------------------------

    def codes_matrix(self, kind: str) -> np.ndarray:
        """[N, length] full identifiers (shared + specific codes) of one kind."""
        return np.concatenate([self.shared, self._specific(kind)], axis=1)

    def _specific(self, kind: str) -> np.ndarray:
        if kind == SEMANTIC:
            return self.semantic
        if kind == COLLABORATIVE:
            return self.collaborative
        raise ValueError(f"unknown identifier kind {kind!r}; expected semantic or collaborative")

    @cached_property
    def _row(self) -> dict[str, int]:
        return {item: row for row, item in enumerate(self.item_ids)}

    def _row_of(self, item_id: str) -> int:
        try:
            return self._row[item_id]
        except KeyError:
            raise KeyError(f"unknown item id {item_id!r}") from None

    # --- item -> identifier --------------------------------------------------------------

    def semantic_codes(self, item_id: str) -> list[int]:
        """Shared + semantic-specific codes of ``item_id`` (Eq. 5, I_{m+s})."""
        return self.codes_matrix(SEMANTIC)[self._row_of(item_id)].tolist()

    def collaborative_codes(self, item_id: str) -> list[int]:
        """Shared + collaborative-specific codes of ``item_id`` (Eq. 5, I_{m+c})."""
        return self.codes_matrix(COLLABORATIVE)[self._row_of(item_id)].tolist()

    def semantic_tokens(self, item_id: str) -> list[str]:
        return self._tokens(SEMANTIC, self.semantic_codes(item_id))

    def collaborative_tokens(self, item_id: str) -> list[str]:
        return self._tokens(COLLABORATIVE, self.collaborative_codes(item_id))

    def tokens(self, item_id: str, kind: str) -> list[str]:
        return self._tokens(kind, self.codes_matrix(kind)[self._row_of(item_id)].tolist())

    def _tokens(self, kind: str, codes: Sequence[int]) -> list[str]:
        return [token(level, int(c)) for level, c in zip(self.levels[kind], codes, strict=True)]

    # --- identifier -> item --------------------------------------------------------------

    @cached_property
    def _lookup(self) -> dict[str, dict[tuple[int, ...], str]]:
        out: dict[str, dict[tuple[int, ...], str]] = {}
        for kind in (SEMANTIC, COLLABORATIVE):
            table = {
                tuple(row): item
                for row, item in zip(self.codes_matrix(kind).tolist(), self.item_ids, strict=True)
            }
            if len(table) != len(self.item_ids):
                raise DataError(
                    f"{kind} identifiers are not unique",
                    where=self.source or TABLE,
                    fix="rebuild the identifiers with `gensar index`",
                )
            out[kind] = table
        return out

    def item_for(self, kind: str, identifier: str | Sequence[str] | Sequence[int]) -> str | None:
        """The item of an identifier given as a token string, token list or code list; None if none."""
        codes = self._parse(kind, identifier)
        return None if codes is None else self._lookup[kind].get(codes)

    def item_for_semantic(self, identifier: str | Sequence[str] | Sequence[int]) -> str | None:
        return self.item_for(SEMANTIC, identifier)

    def item_for_collaborative(self, identifier: str | Sequence[str] | Sequence[int]) -> str | None:
        return self.item_for(COLLABORATIVE, identifier)

    def _parse(
        self, kind: str, identifier: str | Sequence[str] | Sequence[int]
    ) -> tuple[int, ...] | None:
        if isinstance(identifier, str):
            identifier = [f"<{a}_{b}>" for a, b in _TOKEN.findall(identifier)]
        items = list(identifier)
        if items and all(isinstance(x, str) for x in items):
            levels = self.levels[kind]
            parsed = [_TOKEN.fullmatch(x) for x in items]
            if len(parsed) != len(levels) or any(
                m is None or m.group(1) != level for m, level in zip(parsed, levels, strict=True)
            ):
                return None
            return tuple(int(m.group(2)) for m in parsed)  # type: ignore[union-attr]
        try:
            return tuple(int(x) for x in items)
        except (TypeError, ValueError):
            return None

    # --- vocabulary ------------------------------------------------------------------------

    def all_tokens(self) -> list[str]:
        """Every identifier token that can appear, in a stable order, without repeats.

        All K codes of every learned level (so the vocabulary does not depend on
        which codes the training happened to use), then the codes 0..max of
        each disambiguation level; shared levels first, then semantic, then
        collaborative.
        """
        seen: dict[str, None] = {}
        for kind in (SEMANTIC, COLLABORATIVE):
            matrix = self.codes_matrix(kind)
            for j, level in enumerate(self.levels[kind]):
                if level in self.disambiguation_levels:
                    top = int(matrix[:, j].max()) + 1 if len(matrix) else 0
                else:
                    top = self.codebook_size
                for code in range(top):
                    seen.setdefault(token(level, code), None)
        return list(seen)

    def code_vectors(self) -> dict[str, np.ndarray]:
        """Token -> its RQ-VAE code vector (shared: 2d-dim, specific: d-dim).

        Disambiguation tokens have no vector and are absent. Needs the
        ``rqvae.safetensors`` written beside ``identifiers.parquet``.
        """
        from safetensors.numpy import load_file

        if self.source is None or not (self.source / WEIGHTS).is_file():
            raise DataError(
                f"no {WEIGHTS} beside the identifiers, so there are no code vectors",
                where=self.source or TABLE,
                fix="load the identifiers from the run directory written by `gensar index`",
            )
        tensors = load_file(str(self.source / WEIGHTS))
        out: dict[str, np.ndarray] = {}
        for kind in (SEMANTIC, COLLABORATIVE):
            for level in self.levels[kind]:
                book = tensors.get(f"quantizers.{level}.codebook")
                if book is None:
                    continue
                for code in range(book.shape[0]):
                    out.setdefault(token(level, code), book[code].astype(np.float32))
        return out

    # --- files ---------------------------------------------------------------------------

    def to_frame(self) -> pl.DataFrame:
        codes_list = pl.List(pl.Int64)
        return pl.DataFrame(
            {
                "item_id": self.item_ids,
                "shared": pl.Series(self.shared.tolist(), dtype=codes_list),
                "semantic": pl.Series(self.semantic.tolist(), dtype=codes_list),
                "collaborative": pl.Series(self.collaborative.tolist(), dtype=codes_list),
                "semantic_tokens": [
                    "".join(self._tokens(SEMANTIC, r)) for r in self.codes_matrix(SEMANTIC).tolist()
                ],
                "collaborative_tokens": [
                    "".join(self._tokens(COLLABORATIVE, r))
                    for r in self.codes_matrix(COLLABORATIVE).tolist()
                ],
            },
            schema={
                "item_id": pl.String,
                "shared": codes_list,
                "semantic": codes_list,
                "collaborative": codes_list,
                "semantic_tokens": pl.String,
                "collaborative_tokens": pl.String,
            },
        )

    def _meta(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "variant": self.variant,
            "codebook_size": self.codebook_size,
            "levels": self.levels,
            "shared_levels": int(self.shared.shape[1]),
            "disambiguation_levels": self.disambiguation_levels,
        }

    def save_table(self, directory: str | Path) -> Path:
        """Write ``identifiers.parquet`` (with its metadata) into ``directory``, atomically."""
        buffer = io.BytesIO()
        self.to_frame().write_parquet(
            buffer, compression="zstd", metadata={META_KEY: json.dumps(self._meta())}
        )
        path = Path(directory) / TABLE
        atomic_write_bytes(path, buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path) -> ItemIdentifiers:
        """Load from a run directory, its ``identifiers/`` folder, or a folder holding the table."""
        folder = identifiers_dir(path)
        file = folder / TABLE
        if not file.is_file():
            raise DataError(
                f"no {TABLE}",
                where=Path(path),
                fix="build the identifiers with `gensar index DATASET RUN`",
            )
        try:
            meta = json.loads(pl.read_parquet_metadata(file)[META_KEY])
            frame = pl.read_parquet(file)
        except (KeyError, ValueError, OSError) as err:
            raise DataError(
                f"not a gensar identifiers table ({err})",
                where=file,
                fix="rebuild the identifiers with `gensar index`",
            ) from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"identifiers format {meta.get('format_version')} is not supported",
                where=file,
                fix="rebuild the identifiers with this version of gensar",
            )
        n = frame.height

        def matrix(column: str) -> np.ndarray:
            values = frame[column].to_list()
            width = len(values[0]) if values else 0
            return np.array(values, dtype=np.int64).reshape(n, width)

        return cls(
            item_ids=frame["item_id"].to_list(),
            shared=matrix("shared"),
            semantic=matrix("semantic"),
            collaborative=matrix("collaborative"),
            levels={k: list(v) for k, v in meta["levels"].items()},
            variant=meta["variant"],
            codebook_size=int(meta["codebook_size"]),
            disambiguation_levels=list(meta.get("disambiguation_levels", [])),
            source=folder,
        )
