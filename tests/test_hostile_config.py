"""Hostile inputs, part 3: configuration. Non-finite floats, booleans given for integers
(issue 16, item 5), non-UTF-8 YAML (item 4) and alias bombs (item 7) are one-line
errors with exit code 2; nothing runs and nothing is written."""

from __future__ import annotations

import resource
import subprocess
import sys
import time

import pytest
from hostile import CliResult, assert_one_line_error, run_cli

from gensar.config import MAX_YAML_NODES
from gensar.run import load_run_config
from gensar.serving.config import load_serve_config


@pytest.mark.parametrize(
    ("override", "field", "words"),
    [
        ("train.lr=.inf", "train.lr", ["finite"]),
        ("train.lr=.nan", "train.lr", ["finite"]),
        ("train.lr=-.inf", "train.lr", []),
        ("train.epochs=.inf", "train.epochs", ["finite"]),
        ("train.weight_decay=.inf", "train.weight_decay", ["finite"]),
        ("train.max_grad_norm=.nan", "train.max_grad_norm", ["finite"]),
        ("train.warmup_ratio=.nan", "train.warmup_ratio", ["finite"]),
        ("train.batch_size=true", "train.batch_size", ["boolean"]),
        ("train.batch_size=1e400", "train.batch_size", []),
        ("train.seed=false", "train.seed", ["boolean"]),
        ("evaluate.num_beams=true", "model.num_beams", ["boolean"]),  # the old spelling
        ("model.num_beams=true", "model.num_beams", ["boolean"]),
        ("collab.max_epochs=true", "collab.max_epochs", ["boolean"]),
        ("index.codebook_size=true", "index.codebook_size", ["boolean"]),
    ],
)
def test_config_numbers_are_refused(capsys, override, field, words):
    result = run_cli(capsys, "config", "--set", override)
    assert_one_line_error(result, field, *words)
    assert result.out == ""  # nothing printed as if it were valid


def test_booleans_stay_booleans():
    config = load_run_config(None, ["tasks.compact=false", "train.length_bucketing=true"])
    assert config.model.tasks.compact is False and config.model.train.length_bucketing is True


def test_train_with_an_infinite_learning_rate_never_starts(capsys, tiny_dataset, tmp_path):
    run = tmp_path / "run"
    result = run_cli(capsys, "train", tiny_dataset, "--run", run, "--set", "train.lr=.inf")
    assert_one_line_error(result, "train.lr", "finite")
    assert not run.exists()


def test_yaml_file_with_a_boolean_for_an_integer(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  batch_size: true\n")
    assert_one_line_error(run_cli(capsys, "config", "-c", config), "train.batch_size", "boolean")


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("max_wait_ms=.nan", "max_wait_ms"),
        ("max_k=true", "max_k"),
        ("port=true", "port"),
        ("threads=.inf", "threads"),
    ],
)
def test_serve_settings_are_refused(override, field):
    with pytest.raises(Exception, match=field) as info:
        load_serve_config(None, [override])
    assert type(info.value).__name__ == "ConfigError"


@pytest.mark.parametrize(
    "content",
    [b"train:\n  lr: 0.01 # caf\xe9\n", b"\xff\xfe t\x00r\x00", b"name: \x80\x81\n"],
)
def test_non_utf8_yaml(capsys, tmp_path, content):
    config = tmp_path / "run.yaml"
    config.write_bytes(content)
    assert_one_line_error(run_cli(capsys, "config", "-c", config), "run.yaml", "utf-8")


def test_yaml_with_a_byte_order_mark_is_read(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_bytes(b"\xef\xbb\xbftrain:\n  lr: 0.01\n")
    result = run_cli(capsys, "config", "-c", config)
    assert result.code == 0 and "lr: 0.01" in result.out


BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
    "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
    "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n"
)


def run_bounded(*args: str) -> subprocess.CompletedProcess:
    """``gensar ARGS`` in a child with 60 s and 2 GiB of address space: a bomb that is not
    refused fails this test instead of eating the machine (as it did before the bound)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    try:
        return subprocess.run(
            [sys.executable, "-m", "gensar.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=limit,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the alias bomb was not refused within 60 s")


def test_yaml_alias_bomb_is_refused_fast(tmp_path):
    assert len(BOMB) < 500  # a few hundred bytes, ~387 million values expanded
    config = tmp_path / "bomb.yaml"
    config.write_text(BOMB)
    started = time.perf_counter()
    result = run_bounded("config", "-c", str(config))
    assert time.perf_counter() - started < 30
    assert_one_line_error(
        CliResult(result.returncode, result.stdout, result.stderr),
        "bomb.yaml",
        "alias",
        f"{MAX_YAML_NODES:,}",
    )


def test_yaml_alias_bomb_in_a_set_value():
    value = "{" + BOMB.replace("\n", ", ").rstrip(", ") + "}"
    result = run_bounded("config", "--set", f"train={value}")
    assert_one_line_error(CliResult(result.returncode, result.stdout, result.stderr), "alias")


def test_recursive_alias_is_refused(capsys, tmp_path):
    config = tmp_path / "loop.yaml"
    config.write_text("name: &x [*x]\n")
    assert_one_line_error(run_cli(capsys, "config", "-c", config), "loop.yaml")


def test_small_aliases_are_still_fine(capsys, tmp_path):
    config = tmp_path / "ok.yaml"
    config.write_text("x: &lr 0.004\ntrain:\n  lr: *lr\n")
    config.write_text("train: &t\n  lr: 0.004\n")
    result = run_cli(capsys, "config", "-c", config)
    assert result.code == 0 and "lr: 0.004" in result.out


def test_missing_and_unreadable_config(capsys, tmp_path):
    assert_one_line_error(run_cli(capsys, "config", "-c", tmp_path / "nope.yaml"), "not found")
    assert_one_line_error(run_cli(capsys, "config", "-c", tmp_path), "not found")
