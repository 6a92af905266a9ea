"""Hostile inputs, part 4: damaged model directories, bad `gensar predict` requests and
a history store that is not one (issue 16, item 4, and the integrity check): one line
naming the damaged file, exit code 2, no answers file written."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from hostile import assert_one_line_error, run_cli

from gensar.families.gensar.api import GenSAR
from gensar.families.gensar.directory import open_model_dir
from gensar.io import sha256_file


@pytest.fixture
def model_dir(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny trained model, free to damage."""
    return Path(shutil.copytree(tiny_run / "model", tmp_path / "model"))


@pytest.fixture
def requests(tmp_path) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text('{"task": "recommend", "history": [], "k": 3}\n')
    return path


def predict(capsys, model_dir: Path, requests: Path, out: Path):
    return run_cli(capsys, "predict", model_dir, "-i", requests, "-o", out)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4] ^= 0x01  # inside the tensor data, past the header
    path.write_bytes(bytes(data))


DAMAGES = {
    "missing weights": ("model.safetensors", lambda p: p.unlink(), ["missing"]),
    "truncated weights": ("model.safetensors", truncate, ["checksum"]),
    "flipped byte in weights": ("model.safetensors", flip_byte, ["checksum mismatch"]),
    "empty weights": ("model.safetensors", lambda p: p.write_bytes(b""), ["empty"]),
    "missing tokenizer": ("tokenizer.json", lambda p: p.unlink(), ["missing"]),
    "truncated tokenizer": ("tokenizer.json", truncate, ["invalid json"]),
    "missing identifiers": ("identifiers.parquet", lambda p: p.unlink(), ["missing"]),
    "truncated identifiers": ("identifiers.parquet", truncate, ["identifiers"]),
    "missing items": ("items.parquet", lambda p: p.unlink(), ["missing"]),
    "truncated items": ("items.parquet", truncate, ["item titles"]),
    "invalid card": ("gensar.json", lambda p: p.write_text("{not json"), ["invalid json"]),
    "card is a list": ("gensar.json", lambda p: p.write_text("[]"), ["json object"]),
    "card without tasks": (
        "gensar.json",
        lambda p: p.write_text(json.dumps({"model": {}})),
        ["'tasks'"],
    ),
    "invalid config": ("config.json", lambda p: p.write_text('{"d_model": '), ["invalid json"]),
    "missing config": ("config.json", lambda p: p.unlink(), ["missing"]),
    "binary card": ("gensar.json", lambda p: p.write_bytes(b"\xff\xfe\x00"), ["utf-8"]),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_model_directory(capsys, model_dir, requests, tmp_path, damage):
    name, damage_fn, words = DAMAGES[damage]
    damage_fn(model_dir / name)
    out = tmp_path / "answers.jsonl"
    assert_one_line_error(predict(capsys, model_dir, requests, out), name, *words)
    assert not out.exists()


def test_legacy_card_without_checksums_still_names_a_truncated_file(
    capsys, model_dir, requests, tmp_path
):
    card = json.loads((model_dir / "gensar.json").read_text())
    del card["checksums"]
    (model_dir / "gensar.json").write_text(json.dumps(card))
    truncate(model_dir / "model.safetensors")
    out = tmp_path / "answers.jsonl"
    line = assert_one_line_error(predict(capsys, model_dir, requests, out), "model.safetensors")
    assert "cannot load the model" in line


def test_the_card_records_a_checksum_of_every_weight_file(model_dir):
    card = open_model_dir(model_dir)
    weights = sorted(p.name for p in model_dir.glob("*.safetensors"))
    assert sorted(card["checksums"]) == weights == ["model.safetensors"]
    assert card["checksums"]["model.safetensors"] == sha256_file(model_dir / "model.safetensors")


def test_the_python_api_raises_the_same_error(model_dir):
    flip_byte(model_dir / "model.safetensors")
    with pytest.raises(Exception, match="checksum mismatch") as info:
        GenSAR.load(model_dir)
    assert type(info.value).__name__ == "ModelDirError"


def test_model_dir_that_is_a_file_or_missing(capsys, requests, tmp_path):
    out = tmp_path / "answers.jsonl"
    assert_one_line_error(predict(capsys, requests, requests, out), "not a gensar model directory")
    missing = tmp_path / "nothing"
    assert_one_line_error(predict(capsys, missing, requests, out), "does not exist")


# -- gensar predict requests -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"task": "recommend", "history": ["i1", "i2"]}', ["history[0]", "object"]),
        ('{"task": "recommend", "history": [["rec_item", "i1"]]}', ["history[0]"]),
        ('{"task": "recommend", "history": [], "k": true}', ["'k'"]),
        ('{"task": "search", "history": [], "query": "tape \\ud800"}', ["surrogate"]),
        ('{"task": "recommend", "history": "i1 i2"}', ["must be a list"]),
        ('{"task": "recommend", "history": [], "k": 1e999}', ["'k'"]),
        ('["recommend"]', ["'task'"]),
    ],
)
def test_bad_predict_requests(capsys, tiny_run, tmp_path, line, words):
    requests = tmp_path / "requests.jsonl"
    requests.write_text('{"task": "recommend", "history": []}\n' + line + "\n")
    out = tmp_path / "answers.jsonl"
    assert_one_line_error(predict(capsys, tiny_run / "model", requests, out), ":2", *words)
    assert not out.exists()


# -- --set serve.store= that is not a history store -------------------------------------------------
def other_database(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER, payload TEXT)")
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: (p.write_text("just text, not SQLite\n"), p)[1], ["not a gensar history store"]),
        (lambda p: (p.write_bytes(b"\x00" * 4096), p)[1], ["not a gensar history store"]),
        (lambda p: (p.mkdir(), p)[1], ["directory"]),
        (other_database, ["not a gensar history store"]),
        (lambda p: p / "below-a-file" / "h.sqlite3", []),
    ],
)
def test_serve_store_that_is_not_a_database(capsys, tiny_run, tmp_path, make, words):
    target = make(tmp_path / "store")
    if target.name == "h.sqlite3":
        (tmp_path / "store").write_text("a file")
    before = target.read_bytes() if target.is_file() else None
    result = run_cli(capsys, "serve", tiny_run / "model", "--set", f"serve.store={target}")
    assert_one_line_error(result, *words)
    if before is not None:
        assert target.read_bytes() == before  # the user's file is untouched
