"""Hostile inputs, part 1: output paths. Nothing a user owns is ever replaced or deleted
(issue 16, item 1), unwritable destinations are one-line errors (item 4), and the
temporary folders of a killed stage are cleaned up (item 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hostile import assert_one_line_error, run_cli, tree_digest

from gensar.io import (
    MANIFESTS,
    OutputError,
    allow_overwrite,
    atomic_output_dir,
    check_output_dir,
    remove_stale_temporaries,
)

from conftest import REPO, write_synthetic_jsonl


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_synthetic_jsonl(tmp_path_factory.mktemp("raw") / "raw")


def prepare(capsys, raw: Path, out: Path, *extra: str):
    return run_cli(capsys, "prepare", "--source", "jsonl", raw, "--out", out, *extra)


def precious_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "precious.txt").write_text("my thesis\n")
    (path / "sub").mkdir()
    (path / "sub" / "notes.md").write_text("do not delete\n")
    return path


# -- item 1: prepare --out never deletes what is not its own --------------------------------------
def test_prepare_refuses_a_folder_of_other_things(capsys, raw, tmp_path):
    out = precious_folder(tmp_path / "d")
    before = tree_digest(out)
    line = assert_one_line_error(prepare(capsys, raw, out), str(out), "refusing", "--overwrite")
    assert "manifest.json" in line
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary left beside it


def test_prepare_refuses_an_existing_file(capsys, raw, tmp_path):
    out = tmp_path / "dataset"
    out.write_text("a file the user keeps\n")
    assert_one_line_error(prepare(capsys, raw, out), "not a directory", "--overwrite")
    assert out.read_text() == "a file the user keeps\n"


def test_prepare_replaces_its_own_earlier_dataset(capsys, raw, tmp_path):
    out = tmp_path / "dataset"
    assert prepare(capsys, raw, out).code == 0
    first = json.loads((out / "manifest.json").read_text())
    assert prepare(capsys, raw, out).code == 0  # an earlier dataset: replaced, no flag needed
    assert json.loads((out / "manifest.json").read_text())["content_hash"] == first["content_hash"]


def test_prepare_overwrite_replaces_deliberately(capsys, raw, tmp_path):
    out = precious_folder(tmp_path / "d")
    result = prepare(capsys, raw, out, "--overwrite")
    assert result.code == 0, result.text
    assert (out / "manifest.json").is_file() and not (out / "precious.txt").exists()


def test_prepare_into_an_empty_folder_is_fine(capsys, raw, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert prepare(capsys, raw, out).code == 0
    assert (out / "manifest.json").is_file()


# -- item 4: destinations that cannot be written ---------------------------------------------------
def test_prepare_under_a_regular_file(capsys, raw, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(prepare(capsys, raw, blocker / "sub" / "dataset"), "is a file")
    assert blocker.read_text() == "x"


@pytest.mark.skipif(not Path("/proc/1").is_dir(), reason="needs Linux /proc (a read-only place)")
def test_prepare_in_a_read_only_place(capsys, raw):
    assert_one_line_error(prepare(capsys, raw, Path("/proc/1/gensar-dataset")), "cannot write")


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux /sys")
def test_prepare_where_the_system_refuses_to_create(capsys, raw):
    # /sys accepts the permission check but refuses mkdir (EPERM): found when writing.
    assert_one_line_error(prepare(capsys, raw, Path("/sys/gensar-dataset")), "cannot")


# -- run directories (embed, index, train, run, evaluate) ----------------------------------------
@pytest.mark.parametrize(
    "command",
    [["embed", "text"], ["embed", "collab"], ["index"], ["train"], ["run"], ["evaluate"]],
)
def test_stages_refuse_a_run_folder_of_other_things(capsys, tiny_dataset, tmp_path, command):
    run = precious_folder(tmp_path / "home")
    before = tree_digest(run)
    result = run_cli(capsys, *command, tiny_dataset, "--run", run)
    assert_one_line_error(result, str(run), "refusing", "--overwrite")
    assert tree_digest(run) == before  # not even config.yaml was written


def test_stage_run_dir_under_a_file(capsys, tiny_dataset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli(capsys, "index", tiny_dataset, "--run", blocker / "run")
    assert_one_line_error(result, "is a file")


def test_predict_refuses_to_replace_a_foreign_file(capsys, tiny_run, tmp_path):
    requests = tmp_path / "in.jsonl"
    requests.write_text('{"task": "recommend", "history": [], "k": 3}\n')
    out = tmp_path / "answers.jsonl"
    out.write_text("precious\n")
    result = run_cli(capsys, "predict", tiny_run / "model", "-i", requests, "-o", out)
    assert_one_line_error(result, "already exists", "--overwrite")
    assert out.read_text() == "precious\n"
    # its own earlier answers are replaced without a flag, a foreign file with --overwrite
    out.unlink()
    assert run_cli(capsys, "predict", tiny_run / "model", "-i", requests, "-o", out).code == 0
    assert run_cli(capsys, "predict", tiny_run / "model", "-i", requests, "-o", out).code == 0
    out.write_text("precious\n")
    args = ["predict", tiny_run / "model", "-i", requests, "-o", out, "--overwrite"]
    assert run_cli(capsys, *args).code == 0
    assert json.loads(out.read_text().splitlines()[0])["task"] == "recommend"


def test_predict_output_is_a_directory_or_the_input(capsys, tiny_run, tmp_path):
    requests = tmp_path / "in.jsonl"
    requests.write_text('{"task": "recommend", "history": []}\n')
    result = run_cli(capsys, "predict", tiny_run / "model", "-i", requests, "-o", tmp_path)
    assert_one_line_error(result, "is a directory")
    result = run_cli(capsys, "predict", tiny_run / "model", "-i", requests, "-o", requests)
    assert_one_line_error(result, "the output file is the input file")
    assert requests.read_text() == '{"task": "recommend", "history": []}\n'


def test_quickstart_refuses_a_folder_of_other_things(capsys, tmp_path):
    out = precious_folder(tmp_path / "q")
    assert_one_line_error(run_cli(capsys, "quickstart", "--out", out), "refusing", "--overwrite")
    assert (out / "precious.txt").is_file()


# -- the guard itself ------------------------------------------------------------------------------
def test_atomic_output_refuses_a_foreign_subfolder_and_keeps_it(tmp_path):
    """A stage's own subfolder (RUN/model, RUN/identifiers...) is replaced only when it is gensar's."""
    target = precious_folder(tmp_path / "model")
    with pytest.raises(OutputError, match="refusing"), atomic_output_dir(target) as tmp:
        (tmp / "gensar.json").write_text("{}")
    assert (target / "precious.txt").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    with allow_overwrite(), atomic_output_dir(target) as tmp:
        (tmp / "gensar.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["gensar.json"]


def test_a_failed_stage_leaves_the_previous_output(tmp_path):
    target = tmp_path / "identifiers"
    with atomic_output_dir(target, kind="identifiers") as tmp:
        (tmp / "report.json").write_text('{"v": 1}')
    with pytest.raises(RuntimeError), atomic_output_dir(target, kind="identifiers") as tmp:
        (tmp / "report.json").write_text('{"v": 2}')
        raise RuntimeError("killed half-way")
    assert (target / "report.json").read_text() == '{"v": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["identifiers"]


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_every_kind_accepts_its_own_output_and_refuses_others(tmp_path, kind):
    own = tmp_path / "own"
    (own / MANIFESTS[kind][0]).parent.mkdir(parents=True)
    (own / MANIFESTS[kind][0]).write_text("{}")
    assert check_output_dir(own, kind) == own
    foreign = precious_folder(tmp_path / "foreign")
    with pytest.raises(OutputError, match="--overwrite"):
        check_output_dir(foreign, kind)


# -- item 8: leftovers of a killed stage -----------------------------------------------------------
KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from gensar.io import atomic_output_dir
    with atomic_output_dir(sys.argv[1]) as tmp:
        (tmp / "model.safetensors").write_bytes(b"half" * 1000)
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_the_temporary_folder_of_a_killed_stage_is_removed_by_the_next_stage(
    capsys, tiny_dataset, tmp_path
):
    run = tmp_path / "run"
    (run / "training" / "checkpoints").mkdir(parents=True)
    (run / "stages.json").write_text("{}")
    for target in (run / "model", run / "training" / "checkpoints" / "step-00000009"):
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_WRITER, str(target)], cwd=REPO, capture_output=True
        )
        assert killed.returncode == -9
    leftovers = [p for p in run.rglob(".*tmp-*")]
    assert len(leftovers) == 2, leftovers
    # the next stage on this run (here one that fails fast on its input) cleans them up
    result = run_cli(capsys, "index", tiny_dataset, "--run", run)  # no embeddings: exit 2
    assert result.code == 2
    assert not [p for p in run.rglob(".*tmp-*")]


def test_temporaries_of_a_live_writer_are_kept(tmp_path):
    mine = tmp_path / f".model.tmp-{os.getpid()}-abc"
    mine.mkdir()
    dead = tmp_path / ".model.tmp-999999999-abc"
    dead.mkdir()
    user = tmp_path / ".hidden-user-folder"
    user.mkdir()
    removed = remove_stale_temporaries(tmp_path)
    assert removed == [dead]
    assert mine.exists() and user.exists()


def test_benchmark_refuses_an_out_folder_of_other_things(capsys, tiny_dataset, tmp_path):
    out = precious_folder(tmp_path / "results")
    config = tmp_path / "bench.yaml"
    config.write_text(
        f"name: hostile\ndataset: {{prepared: {tiny_dataset}}}\nout: {out}\n"
        "models: [{name: Pop, kind: popularity}]\n"
    )
    before = tree_digest(out)
    result = run_cli(capsys, "benchmark", config)
    assert_one_line_error(result, str(out), "benchmark", "--overwrite")
    assert tree_digest(out) == before
