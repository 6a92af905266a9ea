"""The training loop's validation schedule and batching options (issue 18): validation
every N examples (and at the end), resumed bit-identically; the examples/s figure
excludes validation time; target-length buckets keep long-target examples apart."""

from __future__ import annotations

import json
import shutil
import time

import torch
from test_hostile_training import EXAMPLES, Toy, run_toy

from gensar.families.gensar.tasks.builder import Example
from gensar.families.gensar.training import TrainConfig, make_batches, train
from gensar.model.checkpoint import list_checkpoints


def _valid_records(work) -> list[dict]:
    lines = (work / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "valid"]


def test_eval_every_validates_on_examples_seen_and_at_the_end(tmp_path):
    """40 examples a epoch, batch 8, 2 epochs = 80 examples: every 24 examples gives
    validations after 24, 48 and 72 examples (the first step that crosses each mark),
    then one at the end (80)."""
    torch.manual_seed(0)
    result, _ = run_toy(tmp_path, Toy(), epochs=2, eval_every=24)
    seen = [r["examples_seen"] for r in _valid_records(tmp_path)]
    assert seen == [24, 48, 72, 80]
    assert [r["validation"] for r in _valid_records(tmp_path)] == [1, 2, 3, 4]
    assert len(result.history) == 4
    assert result.history[-1]["step"] == result.steps == 10


def test_without_eval_every_validation_stays_once_per_epoch(tmp_path):
    torch.manual_seed(0)
    run_toy(tmp_path, Toy(), epochs=2)
    assert [r["epoch"] for r in _valid_records(tmp_path)] == [1, 2]


def test_a_run_resumed_between_validations_ends_bit_identical(tmp_path):
    """Killed after a mid-epoch validation: the resumed run repeats nothing, logs every
    validation once and ends with the weights of an uninterrupted run."""
    torch.manual_seed(0)
    whole = Toy()
    run_toy(
        tmp_path / "whole",
        whole,
        epochs=2,
        eval_every=16,
        checkpoint_every=100,
        keep_checkpoints=20,
    )
    torch.manual_seed(0)
    first = Toy()
    run_toy(
        tmp_path / "cut", first, epochs=2, eval_every=16, checkpoint_every=100, keep_checkpoints=20
    )
    # the kill: the checkpoints after the third validation were never written
    for late in list_checkpoints(tmp_path / "cut" / "checkpoints")[2:]:
        shutil.rmtree(late)
    resumed = Toy()
    run_toy(tmp_path / "cut", resumed, epochs=2, eval_every=16, checkpoint_every=100, resume=True)
    assert resumed.calls == 6  # steps 5-10 only: it went on from the second validation
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    valid = _valid_records(tmp_path / "cut")
    assert [r["validation"] for r in valid] == [
        r["validation"] for r in _valid_records(tmp_path / "whole")
    ]
    assert [r["examples_seen"] for r in valid] == [16, 32, 48, 64, 80]


def test_examples_per_second_excludes_validation(tmp_path):
    def slow_validation(model):
        time.sleep(0.4)
        return {"score": 0.0}

    config = TrainConfig(epochs=2, batch_size=8, lr=0.01, threads=1, log_every=1, patience=10)
    result = train(
        Toy(),
        lambda epoch: EXAMPLES,
        slow_validation,
        lambda m: None,
        config,
        tmp_path,
        pad_id=0,
        progress=False,
    )
    assert result.validation_seconds >= 0.8
    training_only = result.seconds - result.validation_seconds
    assert result.examples_per_second > 80 / result.seconds
    assert abs(result.examples_per_second - 80 / training_only) / result.examples_per_second < 0.25


def test_target_buckets_do_not_batch_long_targets_with_short_ones():
    """Half the examples have 19-token targets (ID2Desc-like) and short inputs, half 6-token
    targets and long inputs, so their total lengths overlap: sorted by total length they
    share batches; sorted by target length no batch mixes them."""
    examples = []
    for i in range(256):
        if i % 2:
            examples.append(Example([1] * (8 + i % 9), [2] * 19, "id2desc"))
        else:
            examples.append(Example([1] * (21 + i % 9), [2] * 6, "nrip"))
    mixed = make_batches(examples, 16, seed=0, epoch=0, bucketing=True, bucket_by="total")
    apart = make_batches(examples, 16, seed=0, epoch=0, bucketing=True, bucket_by="target")

    def mixing(batches):
        return sum(len({len(examples[i].labels) for i in batch}) > 1 for batch in batches)

    assert mixing(mixed) > 0
    assert mixing(apart) == 0
    assert sorted(i for b in apart for i in b) == list(range(256))  # every example once


def test_an_added_option_at_its_default_keeps_trained_runs_up_to_date(tiny_dataset, tmp_path):
    """eval_every and bucket_by were added after runs were trained: left at their defaults
    they are not hashed, so those runs stay up to date; set, they change the fingerprint."""
    from gensar.config import fingerprint_view
    from gensar.pipeline import stage_fingerprints

    from conftest import tiny_run_config

    plain = tiny_run_config(tiny_dataset, tmp_path)
    view = fingerprint_view(plain.model)
    assert "eval_every" not in view["train"] and "bucket_by" not in view["train"]
    assert view["train"]["lr"] == plain.model.train.lr  # every other setting is hashed
    base = stage_fingerprints(plain, "h")["train"]
    for setting in ("train.eval_every=100", "train.bucket_by=target"):
        key, value = setting.split("=")
        changed = tiny_run_config(tiny_dataset, tmp_path, **{key: value})
        assert stage_fingerprints(changed, "h")["train"] != base, setting
    lr = tiny_run_config(tiny_dataset, tmp_path, **{"train.lr": 0.001})
    assert stage_fingerprints(lr, "h")["train"] != base
