"""Bad input gives one clear line, a non-zero exit and no partial output (issue 2, item 5)."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from gensar.cli import main

from conftest import write_synthetic_jsonl


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    old = sys.argv
    sys.argv = ["gensar", *args]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def prepare_args(raw: Path, out: Path, *extra: str) -> list[str]:
    return ["prepare", "--source", "jsonl", str(raw), "--out", str(out), *extra]


def edit_lines(path: Path, line_no: int, new: str | None) -> None:
    lines = path.read_text().splitlines()
    if new is None:
        del lines[line_no - 1]
    else:
        lines[line_no - 1] = new
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def raw(tmp_path) -> Path:
    return write_synthetic_jsonl(tmp_path / "raw", n_users=12, n_items=20)


def expect_error(
    capsys, raw: Path, tmp_path: Path, *patterns: str, extra: tuple[str, ...] = ()
) -> str:
    out = tmp_path / "out"
    code, _, err = run_cli(prepare_args(raw, out, *extra), capsys)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {err}"
    assert "Traceback" not in err
    for pattern in patterns:
        assert pattern in lines[0], lines[0]
    assert not out.exists(), "a failed prepare must not leave an output directory"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], (
        "temporary directory left behind"
    )
    return lines[0]


def test_good_input_succeeds(raw, tmp_path, capsys):
    code, out, err = run_cli(prepare_args(raw, tmp_path / "out"), capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_missing_file(raw, tmp_path, capsys):
    (raw / "items.jsonl").unlink()
    expect_error(capsys, raw, tmp_path, "items.jsonl", "missing")


def test_invalid_json_names_the_line(raw, tmp_path, capsys):
    edit_lines(raw / "events.jsonl", 5, '{"user_id": "u0", "time": 3,')
    expect_error(capsys, raw, tmp_path, "events.jsonl:5", "invalid JSON")


def test_missing_field(raw, tmp_path, capsys):
    edit_lines(raw / "events.jsonl", 2, json.dumps({"user_id": "u0", "item_id": "i1"}))
    expect_error(capsys, raw, tmp_path, "events.jsonl:2", "missing field 'time'")


def test_wrong_type(raw, tmp_path, capsys):
    edit_lines(
        raw / "events.jsonl", 3, json.dumps({"user_id": "u0", "time": "yesterday", "item_id": "i1"})
    )
    expect_error(capsys, raw, tmp_path, "events.jsonl:3", "'time' must be an integer")


def test_unknown_item(raw, tmp_path, capsys):
    edit_lines(raw / "events.jsonl", 4, json.dumps({"user_id": "u0", "time": 5, "item_id": "nope"}))
    expect_error(capsys, raw, tmp_path, "events.jsonl:4", "not in the item table", "'nope'")


def test_duplicate_item_id(raw, tmp_path, capsys):
    first = (raw / "items.jsonl").read_text().splitlines()[0]
    with open(raw / "items.jsonl", "a") as handle:
        handle.write(first + "\n")
    expect_error(capsys, raw, tmp_path, "items.jsonl:1", "duplicate item_id 'i0'")


def test_empty_items(raw, tmp_path, capsys):
    (raw / "items.jsonl").write_text("")
    expect_error(capsys, raw, tmp_path, "no items")


def test_empty_result(raw, tmp_path, capsys):
    # only recommendation events: no search history for any target
    lines = [
        line for line in (raw / "events.jsonl").read_text().splitlines() if '"query"' not in line
    ]
    (raw / "events.jsonl").write_text("\n".join(lines) + "\n")
    expect_error(capsys, raw, tmp_path, "no sample survives")


def test_unreadable_compression(raw, tmp_path, capsys):
    (raw / "events.jsonl").unlink()
    (raw / "events.jsonl.gz").write_bytes(b"this is not gzip at all")
    expect_error(capsys, raw, tmp_path, "events.jsonl.gz", "corrupt")


def test_truncated_gzip(raw, tmp_path, capsys):
    data = gzip.compress((raw / "events.jsonl").read_bytes())
    (raw / "events.jsonl").unlink()
    (raw / "events.jsonl.gz").write_bytes(data[: len(data) // 2])
    expect_error(capsys, raw, tmp_path, "events.jsonl.gz")


def test_user_without_usable_target(raw, tmp_path, capsys):
    with open(raw / "events.jsonl", "a") as handle:
        handle.write(json.dumps({"user_id": "lonely", "time": 1, "item_id": "i1"}) + "\n")
    expect_error(
        capsys,
        raw,
        tmp_path,
        "'lonely' has no usable target",
        extra=("--set", "samples.on_unusable_user=error"),
    )


def test_unknown_behaviour(raw, tmp_path, capsys):
    edit_lines(
        raw / "events.jsonl",
        1,
        json.dumps({"user_id": "u0", "time": 1, "item_id": "i1", "behaviour": "buy"}),
    )
    expect_error(capsys, raw, tmp_path, "events.jsonl:1", "unknown behaviour 'buy'")


def test_bad_option(raw, tmp_path, capsys):
    expect_error(
        capsys,
        raw,
        tmp_path,
        "samples.max_rec_history",
        extra=("--set", "samples.max_rec_history=-1"),
    )


def test_unknown_source(raw, tmp_path, capsys):
    code, _, err = run_cli(
        ["prepare", "--source", "csv", str(raw), "--out", str(tmp_path / "out")], capsys
    )
    assert code == 2 and "unknown source 'csv'" in err and "jsonl" in err


def test_failed_prepare_keeps_previous_output(raw, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(prepare_args(raw, out), capsys)[0] == 0
    before = (out / "manifest.json").read_bytes()
    edit_lines(raw / "events.jsonl", 1, "not json")
    assert run_cli(prepare_args(raw, out), capsys)[0] == 2
    assert (out / "manifest.json").read_bytes() == before


def test_inspect_old_schema(raw, tmp_path, capsys):
    out = tmp_path / "out"
    run_cli(prepare_args(raw, out), capsys)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["schema_version"] = 0
    (out / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run_cli(["inspect", str(out)], capsys)
    assert code == 2 and "schema version 0" in err and "prepare the dataset again" in err
