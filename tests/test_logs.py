"""Progress messages go through stdlib logging; the CLI prints them on standard output."""

from __future__ import annotations

import logging

from gensar.pipeline import StageRecord, run_stage


def test_stage_messages_are_log_records(tmp_path, caplog):
    out = tmp_path / "out.txt"
    with caplog.at_level(logging.INFO, logger="gensar"):
        run_stage(StageRecord(tmp_path), "demo", "fp", out, lambda: out.write_text("x"))
        run_stage(StageRecord(tmp_path), "demo", "fp", out, lambda: out.write_text("x"))
    messages = [r.getMessage() for r in caplog.records if r.name == "gensar.pipeline"]
    assert messages[0].startswith("[demo] building") and "up to date" in messages[-1]


def test_the_cli_shows_them(capsys):
    from gensar.logs import console_logging

    console_logging()
    console_logging()  # once only
    logging.getLogger("gensar.demo").info("hello")
    assert capsys.readouterr().out == "hello\n"
