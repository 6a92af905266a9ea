"""The training loop (paper 3.4.1, Eq. 12): one accelerate loop for CPU, one GPU or many.

Kept in one visible function rather than callbacks: AdamW, linear warm-up then
cosine decay, gradient accumulation, bf16 autocast where the hardware has it,
gradient clipping, atomic checkpoints every N steps, validation each epoch with
early stopping and best-model selection, a progress bar and a JSONL metrics log.

Determinism: epoch ``e``'s batches are a pure function of (seed, e), and a
checkpoint stores the position inside the epoch plus every RNG, so ``resume``
skips exactly the consumed batches and continues bit-for-bit (on CPU).
Multi-GPU: ``accelerate launch -m gensar.cli train ...`` shards each epoch's batches.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from tqdm.auto import tqdm

from gensar.config import ADDED_OPTION, Section
from gensar.errors import GensarError
from gensar.families.gensar.tasks.builder import Example
from gensar.io import atomic_write_bytes, remove_stale_temporaries
from gensar.model.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from gensar.utils import MetricsLog


class TrainConfig(Section):
    epochs: float = Field(
        3.0,
        gt=0,
        description="Passes over the per-epoch task mix (paper: 200 on 8 GPUs; fractions allowed).",
    )
    examples: int | None = Field(
        None,
        ge=1,
        description="Training budget in examples seen; when set it replaces epochs "
        "(epochs = examples / examples per epoch). Equal-budget ablations give every "
        "variant the joint model's number.",
    )
    batch_size: int = Field(64, ge=1, description="Examples per micro-batch (per device).")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    lr: float = Field(
        2e-3,
        gt=0,
        description="Peak learning rate (code: 1e-3 for pretrained T5-small at batch 8k; a from-scratch tiny T5 at batch 64 learns faster higher).",
    )
    weight_decay: float = Field(1e-7, ge=0, description="AdamW weight decay (code: 1e-7).")
    warmup_ratio: float = Field(
        0.01, ge=0, lt=1, description="Linear warm-up share of all steps (code: 1%)."
    )
    max_grad_norm: float = Field(1.0, gt=0)
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto",
        description="auto = bf16 autocast where the hardware computes bf16 natively (a bf16 GPU, or a CPU with AVX512-BF16 or AMX); fp32 elsewhere.",
    )
    seed: int = 0
    checkpoint_every: int = Field(
        500, ge=1, description="Optimizer steps between checkpoints (also one at each epoch end)."
    )
    keep_checkpoints: int = Field(2, ge=1)
    eval_samples: int = Field(
        1000,
        ge=1,
        description="Validation samples per task, a fixed random subset (SPEC 8: selection by NDCG@5 averaged over tasks).",
    )
    eval_ranking: Literal["beam", "exact"] = Field(
        "beam",
        description="How validation ranks the candidate lists (see model.candidate_ranking).",
    )
    patience: int = Field(
        3,
        ge=1,
        description="Validations without a better score before stopping (one per epoch, "
        "or one per train.eval_every examples).",
    )
    eval_every: int | None = Field(
        None,
        ge=1,
        json_schema_extra=ADDED_OPTION,
        description="Validate every this many training examples (and at the end) instead "
        "of at each epoch end: a curve with more points in a short run, fewer validations "
        "in a long one. Validation time is not counted in the examples/s figure.",
    )
    length_bucketing: bool = Field(
        True, description="Batch examples of similar length so little padding is computed."
    )
    bucket_by: Literal["total", "target"] = Field(
        "total",
        json_schema_extra=ADDED_OPTION,
        description="What length buckets sort by: 'total' (input + target tokens) or "
        "'target' (target tokens first, then input): with 'target' the ~19-token ID2Desc "
        "targets are not batched with 6-token identifier targets, so the decoder pads less.",
    )
    log_every: int = Field(50, ge=1)
    threads: int | None = Field(
        None, ge=1, description="torch CPU threads (default: torch's choice)."
    )


@dataclass
class TrainResult:
    best_score: float | None
    best_step: int | None
    steps: int
    epochs_run: float
    stopped_early: bool
    seconds: float
    examples_per_second: float  #: training examples per second, validation time excluded
    history: list[dict[str, Any]]
    interrupted: bool = False
    examples_seen: int | None = None  #: training examples over every step (None: unknown)
    validation_seconds: float = 0.0  #: of ``seconds``, spent validating


def make_batches(
    examples: Sequence[Example],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    bucketing: bool,
    bucket_by: str = "total",
) -> list[list[int]]:
    """Indices of each batch of one epoch: shuffled, or length-bucketed then shuffled.

    Bucketing sorts shuffled examples by length inside windows of 50 batches and
    then shuffles the batches, so padding is small but the order stays random.
    ``bucket_by="target"`` sorts by target length first (then input length), so
    examples with long targets are batched together and short-target batches
    are not padded to a long target.
    """
    rng = random.Random(seed * 7_919 + epoch)
    order = list(range(len(examples)))
    rng.shuffle(order)
    if bucketing:
        window = batch_size * 50
        chunks = [order[i : i + window] for i in range(0, len(order), window)]
        order = [
            i
            for chunk in chunks
            for i in sorted(chunk, key=lambda j: _length_key(examples[j], bucket_by))
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if bucketing:
        rng.shuffle(batches)
    return batches


def _length_key(example: Example, bucket_by: str) -> tuple[int, int]:
    if bucket_by == "target":
        return (len(example.labels), len(example.input_ids))
    return (len(example.input_ids) + len(example.labels), 0)


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad inputs with ``pad_id`` and labels with -100 (ignored by the loss)."""
    width = max(len(e.input_ids) for e in examples)
    target = max(len(e.labels) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), target), -100, dtype=torch.long)
    for row, example in enumerate(examples):
        input_ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
        attention[row, : len(example.input_ids)] = 1
        labels[row, : len(example.labels)] = torch.tensor(example.labels)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def bf16_supported(device: torch.device) -> bool:
    """bf16 autocast only where the hardware computes it natively.

    On a CPU without AVX512-BF16 or AMX, bf16 matmuls are emulated: measured here
    (AVX2 only) a training step of the tiny T5 ran 30x slower than fp32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def train(
    model: torch.nn.Module,
    epoch_examples: Callable[[int], Sequence[Example]],
    validate: Callable[[torch.nn.Module], dict[str, float]],
    save_best: Callable[[torch.nn.Module], None],
    config: TrainConfig,
    work_dir: Path,
    *,
    pad_id: int,
    resume: bool = False,
    score_key: str = "score",
    stop_after_steps: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` on ``epoch_examples(epoch)``; ``validate`` returns metrics with ``score_key``.

    ``save_best`` is called with the unwrapped model whenever validation
    improves. ``work_dir`` receives ``checkpoints/`` and ``metrics.jsonl``.
    ``stop_after_steps`` ends the process early (used by tests to simulate a kill).
    """
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup

    if config.threads:
        torch.set_num_threads(config.threads)
    probe = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and bf16_supported(probe))
    accelerator = Accelerator(mixed_precision="bf16" if use_bf16 else "no")
    torch.manual_seed(config.seed)
    work_dir.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(work_dir / "metrics.jsonl")

    n_examples = len(epoch_examples(0))
    batches_per_epoch = math.ceil(n_examples / config.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum)
    epochs = config.epochs if config.examples is None else config.examples / max(1, n_examples)
    total_steps = max(1, int(round(epochs * steps_per_epoch)))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, int(config.warmup_ratio * total_steps), total_steps
    )
    model, optimizer = accelerator.prepare(model, optimizer)

    state: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "batch_in_epoch": 0,
        "best_score": None,
        "best_step": None,
        "bad_epochs": 0,
        "history": [],
        "stopped_early": False,
        "train_seconds": 0.0,
        "examples_seen": 0,
        "validations": 0,
        "valid_seconds": 0.0,
    }
    checkpoints = work_dir / "checkpoints"
    remove_stale_temporaries(work_dir)  # what a killed run left half-written
    remove_stale_temporaries(checkpoints)
    if resume and list_checkpoints(checkpoints):
        latest = list_checkpoints(checkpoints)[-1]
        state = load_checkpoint(
            latest, model=accelerator.unwrap_model(model), optimizer=optimizer, scheduler=scheduler
        )
        if accelerator.is_main_process:
            drop_logged_after(log, state)
        accelerator.print(
            f"resumed from {latest.name} (epoch {state['epoch']}, step {state['step']})"
        )
    elif not resume and checkpoints.exists():
        for old in list_checkpoints(checkpoints):
            import shutil

            shutil.rmtree(old)

    def checkpoint() -> None:
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise NonFiniteLoss(float("nan"), state["step"], checkpoints, what="weights")
        if accelerator.is_main_process:
            save_checkpoint(
                checkpoints,
                model=accelerator.unwrap_model(model),
                optimizer=optimizer,
                scheduler=scheduler,
                state=state,
                keep=config.keep_checkpoints,
            )

    bar = tqdm(
        total=total_steps,
        initial=state["step"],
        desc="train",
        unit="step",
        disable=not progress or not accelerator.is_main_process,
        dynamic_ncols=True,
    )
    started = time.perf_counter()
    seen_examples = 0  # in this process: the rate excludes the seconds of a run before --resume
    seconds_before = state["train_seconds"]
    valid_before = state.get("valid_seconds", 0.0)

    def rate() -> float:
        """Training examples per second in this process, validation time excluded."""
        seconds = state["train_seconds"] - seconds_before + time.perf_counter() - started
        seconds -= state.get("valid_seconds", 0.0) - valid_before
        return seen_examples / max(1e-9, seconds)

    def run_validation(epoch: float) -> None:
        """Validate, keep the best model, count a validation without improvement."""
        t0 = time.perf_counter()
        model.eval()
        if accelerator.is_main_process:
            metrics = validate(accelerator.unwrap_model(model))
            score = metrics[score_key]
            improved = state["best_score"] is None or score > state["best_score"]
            if improved:
                state["best_score"], state["best_step"], state["bad_epochs"] = (
                    score,
                    state["step"],
                    0,
                )
                save_best(accelerator.unwrap_model(model))
            else:
                state["bad_epochs"] += 1
            state["validations"] = state.get("validations", 0) + 1
            entry = {"epoch": round(epoch, 4), "step": state["step"], **metrics}
            state["history"].append(entry)
            log.log(
                kind="valid",
                validation=state["validations"],
                examples_seen=state["examples_seen"],
                improved=improved,
                **entry,
            )
            bar.write(
                f"epoch {epoch:g}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                + (" (best)" if improved else "")
            )
            if state["bad_epochs"] >= config.patience:
                state["stopped_early"] = True
        if accelerator.num_processes > 1:  # only the main process validates: tell the others
            flag = torch.tensor([float(state["stopped_early"])], device=accelerator.device)
            state["stopped_early"] = bool(accelerator.reduce(flag, reduction="sum").item() > 0)
        model.train()
        state["valid_seconds"] = state.get("valid_seconds", 0.0) + time.perf_counter() - t0

    def validation_due() -> bool:
        """With eval_every: whether the examples seen crossed the next validation mark."""
        every = config.eval_every
        return every is not None and state["examples_seen"] // every > state.get("eval_mark", 0)

    running_loss, running_n = 0.0, 0
    n_epochs = math.ceil(epochs)
    while state["epoch"] < n_epochs and state["step"] < total_steps and not state["stopped_early"]:
        epoch = state["epoch"]
        examples = epoch_examples(epoch)
        batches = make_batches(
            examples,
            config.batch_size,
            seed=config.seed,
            epoch=epoch,
            bucketing=config.length_bucketing,
            bucket_by=config.bucket_by,
        )
        shard = batches[accelerator.process_index :: accelerator.num_processes]
        model.train()
        position = state["batch_in_epoch"]
        while position < len(shard) and state["step"] < total_steps:
            group = shard[position : position + config.grad_accum]
            for n, indices in enumerate(group):
                batch = {
                    k: v.to(accelerator.device)
                    for k, v in collate([examples[i] for i in indices], pad_id).items()
                }
                last = n == len(group) - 1
                context = accelerator.no_sync(model) if not last else _null()
                with context, accelerator.autocast():
                    loss = model(**batch).loss / len(group)
                if not torch.isfinite(loss.detach()).all():
                    bar.close()
                    raise NonFiniteLoss(float(loss.detach()), state["step"] + 1, checkpoints)
                accelerator.backward(loss)
                running_loss += loss.item() * len(group)
                running_n += 1
                seen_examples += len(indices) * accelerator.num_processes
                state["examples_seen"] = state.get("examples_seen", 0) + len(indices) * (
                    accelerator.num_processes
                )
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            position += len(group)
            state["step"] += 1
            state["batch_in_epoch"] = position
            bar.update(1)
            if state["step"] % config.log_every == 0:
                elapsed = state["train_seconds"] + time.perf_counter() - started
                record = {
                    "step": state["step"],
                    "epoch": epoch + position / max(1, len(shard)),
                    "loss": running_loss / max(1, running_n),
                    "lr": scheduler.get_last_lr()[0],
                    "examples_per_second": rate(),
                }
                bar.set_postfix(
                    loss=f"{record['loss']:.3f}", ex_s=f"{record['examples_per_second']:.0f}"
                )
                if accelerator.is_main_process:
                    log.log(kind="train", elapsed=round(elapsed, 1), **record)
                running_loss, running_n = 0.0, 0
            periodic = validation_due()
            if periodic:
                state["eval_mark"] = state["examples_seen"] // config.eval_every
                run_validation(epoch + position / max(1, len(shard)))
            if periodic or state["step"] % config.checkpoint_every == 0:
                state["train_seconds"] += time.perf_counter() - started
                started = time.perf_counter()
                checkpoint()
            if state["stopped_early"]:
                break
            if stop_after_steps is not None and state["step"] >= stop_after_steps:
                bar.close()
                return _result(state, rate(), started)
        # end of an epoch (or of the step budget): validate, select, maybe stop
        state["epoch"] += 1
        state["batch_in_epoch"] = 0
        if config.eval_every is None:
            run_validation(state["epoch"])
        elif state["step"] >= total_steps and not state["stopped_early"]:
            last = state["history"][-1]["step"] if state["history"] else None
            if last != state["step"]:  # the end of training, unless just validated
                run_validation(epoch + position / max(1, len(shard)))
        state["train_seconds"] += time.perf_counter() - started
        started = time.perf_counter()
        checkpoint()
        accelerator.wait_for_everyone()
    bar.close()
    return _result(state, rate(), started)


class NonFiniteLoss(GensarError):
    """Training diverged: the loss is inf or NaN. Nothing after it is saved."""

    def __init__(self, value: float, step: int, checkpoints: Path, what: str = "loss"):
        kept = list_checkpoints(checkpoints)
        where = (
            f"the last good checkpoint {kept[-1]} is kept" if kept else "no checkpoint was written"
        )
        became = (
            f"training loss became {value}" if what == "loss" else "model weights became inf/NaN"
        )
        super().__init__(
            f"the {became} at step {step}; stopped without saving it ({where})",
            fix="lower train.lr (or raise train.warmup_ratio / lower train.max_grad_norm) and train again",
        )


def drop_logged_after(log: MetricsLog, state: dict[str, Any]) -> int:
    """Forget the metrics a killed run logged after the checkpoint it resumes from.

    The resumed run recomputes them (same steps, same validation), so keeping them
    would log every such step and validation twice. Returns how many were dropped.
    """
    records = []
    lines = log.path.read_text(encoding="utf-8").splitlines() if log.path.exists() else []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):  # a line torn by the kill is dropped
            records.append(json.loads(line))

    def before_checkpoint(r: dict[str, Any]) -> bool:
        if r.get("kind") != "valid":
            return r.get("step", 0) <= state["step"]
        if "validation" in r:  # numbered validations (any schedule)
            return r["validation"] <= state.get("validations", 0)
        return r.get("epoch", 0) <= state["epoch"]  # older logs: one per epoch

    kept = [r for r in records if before_checkpoint(r)]
    if len(kept) != len([line for line in lines if line.strip()]):
        text = "".join(json.dumps(r) + "\n" for r in kept)
        atomic_write_bytes(log.path, text.encode("utf-8"))
    return len(records) - len(kept)


def _result(state: dict[str, Any], examples_per_second: float, started: float) -> TrainResult:
    seconds = state["train_seconds"] + (time.perf_counter() - started)
    return TrainResult(
        best_score=state["best_score"],
        best_step=state["best_step"],
        steps=state["step"],
        epochs_run=state["epoch"],
        stopped_early=state["stopped_early"],
        seconds=round(seconds, 2),
        examples_per_second=round(examples_per_second, 2),
        history=state["history"],
        examples_seen=state.get("examples_seen"),
        validation_seconds=round(state.get("valid_seconds", 0.0), 2),
    )


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
