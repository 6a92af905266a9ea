"""The MiniLM vectors of item and query texts, from the project's semantic embedder.

Item vectors are the run's ``embeddings/semantic.safetensors`` (the embeddings
stage output, built here through :func:`gensar.embed.semantic.embed_items` when
missing, which reuses the on-disk cache). Query vectors are encoded once per
distinct query text with the same model and settings
(:func:`gensar.embed.semantic.encode_texts`) and stored inside the trained
model, so scoring a known query never runs the encoder again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gensar.data.dataset import Dataset
from gensar.embed.semantic import SemanticConfig, embed_items, encode_texts
from gensar.embed.store import ItemEmbeddings

SEMANTIC_FILE = Path("embeddings") / "semantic.safetensors"


def item_text_vectors(
    dataset: Dataset, run_dir: Path, config: SemanticConfig | None = None
) -> np.ndarray:
    """[n_items, dim] MiniLM vectors of the items, in the dataset's item order."""
    file = Path(run_dir) / SEMANTIC_FILE
    if file.is_file():
        stored = ItemEmbeddings.load(file)
        if stored.item_ids == dataset.item_ids:
            return stored.matrix.astype(np.float32)
    embed_items(dataset.path, run_dir, config)
    return ItemEmbeddings.load(file).matrix.astype(np.float32)


def query_text_vectors(texts: list[str], config: SemanticConfig | None = None) -> np.ndarray:
    """[n, dim] MiniLM vectors of query texts (each distinct text encoded once)."""
    distinct = sorted(set(texts))
    if not distinct:
        return encode_texts([], config)
    matrix = encode_texts(distinct, config)
    row = {text: i for i, text in enumerate(distinct)}
    return matrix[[row[t] for t in texts]]
