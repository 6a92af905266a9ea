"""Hostile conditions, part 6: training. A diverging run stops with one line and keeps
its last good checkpoint (issue 16, item 5); a resumed run leaves no temporary folder
of the killed one behind and logs each validation once (item 8).

The training loop is driven with a toy model (a few hundred parameters) so that each
case takes a second; the real model's resume is tested in test_model_pipeline.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gensar.errors import GensarError
from gensar.families.gensar.tasks.builder import Example
from gensar.families.gensar.training import TrainConfig, train
from gensar.model.checkpoint import list_checkpoints


class Toy(torch.nn.Module):
    """Predicts each label from the mean input embedding; ``poison_after`` makes the loss NaN."""

    def __init__(self, poison_after: int | None = None):
        super().__init__()
        self.embed = torch.nn.Embedding(16, 8)
        self.out = torch.nn.Linear(8, 16)
        self.calls = 0
        self.poison_after = poison_after

    def forward(self, input_ids, attention_mask, labels):
        self.calls += 1
        hidden = self.embed(input_ids).mean(1, keepdim=True).expand(-1, labels.shape[1], -1)
        loss = torch.nn.functional.cross_entropy(
            self.out(hidden).reshape(-1, 16), labels.reshape(-1), ignore_index=-100
        )
        if self.poison_after is not None and self.calls > self.poison_after:
            loss = loss * float("nan")
        return SimpleNamespace(loss=loss)


EXAMPLES = [Example([1 + i % 7, 2, 3], [4 + i % 5, 1], "nrip") for i in range(40)]


def run_toy(work: Path, model: Toy, *, resume: bool = False, **settings):
    config = TrainConfig(
        epochs=settings.pop("epochs", 3),
        batch_size=8,
        lr=0.01,
        checkpoint_every=settings.pop("checkpoint_every", 2),
        threads=1,
        log_every=1,
        patience=10,
        **settings,
    )
    saved = []
    result = train(
        model,
        lambda epoch: EXAMPLES,
        lambda m: {"score": float(len(saved))},
        lambda m: saved.append(1),
        config,
        work,
        pad_id=0,
        resume=resume,
        progress=False,
    )
    return result, saved


def test_a_diverging_loss_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path):
    torch.manual_seed(0)
    with pytest.raises(GensarError) as info:
        run_toy(tmp_path, Toy(poison_after=7))
    message = str(info.value)
    assert "\n" not in message and "nan" in message and "step 8" in message
    assert "train.lr" in message  # says how to fix it
    kept = list_checkpoints(tmp_path / "checkpoints")
    assert kept and kept[-1].name == "step-00000006"
    assert f"{kept[-1]} is kept" in message
    weights = __import__("safetensors.torch", fromlist=["load_file"]).load_file(
        str(kept[-1] / "model.safetensors")
    )
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_a_diverging_loss_through_the_cli_is_exit_code_2(capsys, monkeypatch, tiny_run, tmp_path):
    """`gensar train` whose loss turns NaN: one error line, exit 2, no model directory."""
    import shutil

    from hostile import assert_one_line_error, run_cli

    from conftest import TINY_OVERRIDES

    run = tmp_path / "run"
    run.mkdir()
    for part in ("identifiers", "candidates"):
        shutil.copytree(tiny_run / part, run / part)
    original = torch.nn.functional.cross_entropy
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 6 and loss.requires_grad else loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", poisoned)
    args = [x for o in TINY_OVERRIDES for x in ("--set", o)]
    result = run_cli(capsys, "train", tiny_run.parent / "none", "--run", run, *args)
    assert result.code == 2  # the dataset path is wrong: checked before training
    dataset = Path(json.loads((tiny_run / "model" / "gensar.json").read_text())["dataset"]["path"])
    result = run_cli(capsys, "train", dataset, "--run", run, *args)
    assert_one_line_error(result, "training loss became nan", "checkpoint")
    assert not (run / "model").exists()


@pytest.mark.parametrize("torn_line", [False, True])
def test_resume_logs_each_validation_once(tmp_path, torn_line):
    """Killed after validation was logged but before the epoch's checkpoint: the resumed
    run validates that epoch again and must not log it twice (nor keep a torn last line)."""
    torch.manual_seed(0)
    run_toy(tmp_path, Toy(), epochs=2, checkpoint_every=100)
    log = tmp_path / "metrics.jsonl"
    valid = [r for r in map(json.loads, log.read_text().splitlines()) if r["kind"] == "valid"]
    assert [r["epoch"] for r in valid] == [1, 2]
    # simulate the kill: the last checkpoint (after epoch 2's validation) never got written
    last = list_checkpoints(tmp_path / "checkpoints")[-1]
    import shutil

    shutil.rmtree(last)
    if torn_line:
        with open(log, "a") as handle:
            handle.write('{"kind": "train", "step"')  # a line torn by the kill
    run_toy(tmp_path, Toy(), epochs=2, checkpoint_every=100, resume=True)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    valid = [r for r in records if r["kind"] == "valid"]
    assert [r["epoch"] for r in valid] == [1, 2]
    steps = [r["step"] for r in records if r["kind"] == "train"]
    assert steps == sorted(set(steps)), "a training step was logged twice"


def test_resume_removes_the_temporaries_of_the_killed_run(tmp_path):
    torch.manual_seed(0)
    run_toy(tmp_path, Toy(), epochs=1, checkpoint_every=2)
    dead = 999_999_999
    leftovers = [
        tmp_path / "checkpoints" / f".step-00000004.tmp-{dead}-x1",
        tmp_path / f".best.tmp-{dead}-x2",
        tmp_path / f".tokenizer.old-{dead}-x3",
    ]
    for path in leftovers:
        path.mkdir()
        (path / "model.safetensors").write_bytes(b"half")
    (tmp_path / "checkpoints" / f".state.json.tmp-{dead}-x4").write_text("{")
    live = tmp_path / "checkpoints" / f".step-00000005.tmp-{os.getpid()}-x5"
    live.mkdir()
    run_toy(tmp_path, Toy(), epochs=2, checkpoint_every=2, resume=True)
    assert not any(p.exists() for p in leftovers)
    assert not (tmp_path / "checkpoints" / f".state.json.tmp-{dead}-x4").exists()
    assert live.exists()  # a live writer's temporary is not touched
