"""GenSAR's soft-token inputs (``tasks.soft_tokens``): items and queries as one vector each.

Issue 18's option for more learning per example. The vectors are those the
identifiers were built from: an item's row is its MiniLM text vector beside its
SASRec vector (whichever of the two the run has), a query's row is its MiniLM
vector (same model and settings as the items', so both live in one space). Each
block is standardised over the items and scaled to total variance 1, so neither
side dominates the learned projection by its width.

``beside`` puts an entry's soft token before its identifier codes (or query
words); ``instead`` replaces them, shortening a history item from a behaviour
token and 4+ codes to a behaviour token and one soft token. Targets stay the
identifiers of Eq. (11) either way, and Desc2ID / ID2Desc keep their word and
code inputs (an item's own vector as input would hand the model its answer).

A query the model was not trained with (a new text at serving time) has no row:
it enters as words, in both modes.

The table is stored in the model directory as ``soft_tokens.safetensors`` (the
vectors, and the item ids and query texts of its rows as metadata), so a model
directory stays self-contained and checksummed like its weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gensar.errors import GensarError
from gensar.families.gensar.directory import REBUILD

FILE = "soft_tokens.safetensors"


@dataclass
class SoftVocabulary:
    """Which soft-token id stands for which item or query (ids ``base + row``)."""

    base: int
    items: list[str]
    queries: list[str]
    mode: str = "beside"
    _item_row: dict[str, int] = field(init=False, repr=False)
    _query_row: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._item_row = {item: row for row, item in enumerate(self.items)}
        self._query_row = {q: len(self.items) + row for row, q in enumerate(self.queries)}

    @property
    def size(self) -> int:
        return len(self.items) + len(self.queries)

    def item(self, item_id: str) -> int | None:
        row = self._item_row.get(item_id)
        return None if row is None else self.base + row

    def query(self, text: str) -> int | None:
        row = self._query_row.get(text)
        return None if row is None else self.base + row

    def describe(self, token_id: int) -> str:
        """Readable form of a soft-token id, for ``TaskBuilder.render``."""
        row = token_id - self.base
        if 0 <= row < len(self.items):
            return f"<soft item {self.items[row]}>"
        if len(self.items) <= row < self.size:
            return f"<soft query {self.queries[row - len(self.items)]!r}>"
        return f"<soft ?{token_id}>"


def _standardised_block(matrix: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Columns z-scored by ``reference``'s statistics (default: ``matrix``'s own), then
    the block scaled to total variance 1 over the reference rows."""
    ref = matrix if reference is None else reference
    mean, std = ref.mean(axis=0), ref.std(axis=0) + 1e-6
    return ((matrix - mean) / std / np.sqrt(matrix.shape[1])).astype(np.float32)


def build_soft_table(
    item_ids: list[str],
    item_blocks: list[np.ndarray],
    query_texts: list[str],
    query_semantic: np.ndarray | None,
    item_semantic: np.ndarray | None,
) -> np.ndarray:
    """The vector table: one row per item (its blocks side by side), then one per query
    (its MiniLM vector in the semantic block, zeros elsewhere).

    ``item_blocks`` lists the items' matrices (semantic first when there is one);
    ``item_semantic`` is that first block again when it is MiniLM, so queries are
    standardised with the items' statistics and stay comparable with them.
    """
    if not item_blocks:
        raise GensarError(
            "tasks.soft_tokens needs item vectors and the run has none",
            fix="run `gensar embed text` and/or `gensar embed collab` first",
        )
    items = np.concatenate([_standardised_block(b) for b in item_blocks], axis=1)
    queries = np.zeros((len(query_texts), items.shape[1]), dtype=np.float32)
    if query_texts and query_semantic is not None and item_semantic is not None:
        width = item_semantic.shape[1]
        queries[:, :width] = _standardised_block(query_semantic, item_semantic)
    if items.shape[0] != len(item_ids):
        raise ValueError("one row per item expected")
    return np.concatenate([items, queries], axis=0)


def save_soft_tokens(folder: Path, vocabulary: SoftVocabulary, table: np.ndarray) -> None:
    from safetensors.numpy import save_file

    metadata = {
        "base": str(vocabulary.base),
        "mode": vocabulary.mode,
        "items": json.dumps(vocabulary.items),
        "queries": json.dumps(vocabulary.queries),
    }
    save_file(
        {"vectors": np.ascontiguousarray(table, dtype=np.float32)}, str(folder / FILE), metadata
    )


def load_soft_tokens(folder: Path) -> tuple[SoftVocabulary, np.ndarray]:
    """The vocabulary and table a model directory stores (errors name the file)."""
    from safetensors import safe_open

    path = Path(folder) / FILE
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
            table = handle.get_tensor("vectors")
        vocabulary = SoftVocabulary(
            base=int(meta["base"]),
            items=json.loads(meta["items"]),
            queries=json.loads(meta["queries"]),
            mode=meta.get("mode", "beside"),
        )
    except (KeyError, ValueError, OSError) as err:
        raise GensarError(
            f"not a soft-token table ({err})",
            where=path,
            fix=REBUILD,
        ) from None
    if table.ndim != 2 or table.shape[0] != vocabulary.size:
        raise GensarError(
            f"soft-token table has shape {tuple(table.shape)} for {vocabulary.size} items and queries",
            where=path,
            fix=REBUILD,
        )
    return vocabulary, table


def soft_inputs_for_run(
    run_dir: Path,
    item_ids: list[str],
    query_texts: list[str],
    base: int,
    mode: str,
    semantic_config=None,
    *,
    log=None,
) -> tuple[SoftVocabulary, np.ndarray]:
    """The soft-token vocabulary and table of a run: its item vectors (``embeddings/``)
    and every query text of the dataset encoded with the run's MiniLM settings."""
    from gensar.embed.store import ItemEmbeddings
    from gensar.layout import RunLayout

    layout = RunLayout(run_dir)
    blocks: list[np.ndarray] = []
    semantic = None
    if layout.semantic_embeddings.is_file():
        semantic = ItemEmbeddings.load(layout.semantic_embeddings, item_ids).matrix
        blocks.append(semantic)
    if layout.collab_embeddings.is_file():
        blocks.append(ItemEmbeddings.load(layout.collab_embeddings, item_ids).matrix)
    queries = sorted(set(query_texts)) if semantic is not None else []
    query_vectors = None
    if queries:
        from gensar.embed.semantic import encode_texts

        if log:
            log(f"soft tokens: encoding {len(queries):,} query texts")
        query_vectors = encode_texts(queries, semantic_config, progress=False)
    table = build_soft_table(item_ids, blocks, queries, query_vectors, semantic)
    return SoftVocabulary(base, list(item_ids), queries, mode), table
