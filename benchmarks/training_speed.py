"""Training throughput: our loop against transformers' stock Seq2SeqTrainer, same run.

Both train the same tiny T5 (same initial weights) on the same examples of
amazon-scientific (a seeded sample of one epoch's five-task mix, built by the
task builder) with the same batch size, optimiser and schedule; the stock
trainer is measured without and with its own length grouping, and ratios are
to the stronger of the two (group_by_length). Each loop runs ``--repeats``
times in alternating order (the median counts), since this machine is shared.

The table ends with a ceiling: the FLOPs of one training pass per example
(counted by torch's FlopCounterMode on the sample's batches) against the rate of
the model's own matrix products measured alone, so one can see how close any
loop is to what this CPU can give. Prints a table and writes
benchmarks/results/training_speed.md/.json.

    .venv/bin/python benchmarks/training_speed.py [--examples 3200] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from _common import write_results

os.environ.setdefault("TQDM_DISABLE", "1")


def build(dataset_dir: Path, run_dir: Path, n: int):
    from transformers import AutoTokenizer

    from gensar.data import load_dataset
    from gensar.families.gensar.stage import GenSARConfig, build_vocabulary, item_descriptions
    from gensar.families.gensar.tasks.builder import TaskBuilder
    from gensar.ids.identifiers import ItemIdentifiers
    from gensar.model.backbone import ModelConfig, build_model

    dataset = load_dataset(dataset_dir)
    identifiers = ItemIdentifiers.load(run_dir)
    config = GenSARConfig()
    saved = run_dir / "training" / "tokenizer"
    tokenizer = (
        AutoTokenizer.from_pretrained(str(saved))
        if saved.is_dir()
        else build_vocabulary(dataset, identifiers, config)
    )
    builder = TaskBuilder(tokenizer, identifiers, item_descriptions(dataset.items), config.tasks)
    rows = {
        "nrip": dataset.samples_for("recommendation", "train").to_dicts(),
        "nsip": dataset.samples_for("search", "train").to_dicts(),
    }
    rows["nsqp"] = rows["nsip"]
    examples = builder.epoch_examples(rows, dataset.query_text, dataset.item_ids, epoch=0, seed=0)
    # a seeded sample of the whole mix (the epoch list is grouped by task: its head is
    # recommendation examples only, which hides the long ID2Desc targets)
    examples = random.Random(0).sample(examples, min(n, len(examples)))
    model = build_model(ModelConfig(), tokenizer, seed=0)
    return examples, model, tokenizer


def ours(examples, model, batch_size: int, bucket_by: str = "total") -> float:
    from gensar.families.gensar.training import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(
            epochs=1,
            batch_size=batch_size,
            log_every=10_000,
            checkpoint_every=10_000,
            precision="fp32",
            bucket_by=bucket_by,
        )
        result = train(
            model,
            lambda epoch: examples,
            lambda m: {"score": 0.0},
            lambda m: None,
            config,
            Path(tmp),
            pad_id=0,
            progress=False,
        )
    return result.examples_per_second


def stock_trainer(examples, model, tokenizer, batch_size: int, group_by_length: bool) -> float:
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    data = [
        {"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
        for e in examples
    ]
    with tempfile.TemporaryDirectory() as tmp:
        args = Seq2SeqTrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=batch_size,
            num_train_epochs=1,
            learning_rate=2e-3,
            weight_decay=1e-7,
            warmup_steps=max(1, round(0.01 * -(-len(data) // batch_size))),  # 1%, as ours
            lr_scheduler_type="cosine",
            max_grad_norm=1.0,
            logging_steps=10_000,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            dataloader_num_workers=0,
            train_sampling_strategy="group_by_length" if group_by_length else "random",
            disable_tqdm=True,
            seed=0,
        )
        trainer = Seq2SeqTrainer(
            model=model,
            args=args,
            train_dataset=data,
            data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, padding=True),
        )
        started = time.perf_counter()
        metrics = trainer.train().metrics
        elapsed = time.perf_counter() - started
    return len(examples) / elapsed if elapsed else metrics["train_samples_per_second"]


def flops_per_example(examples, model, batch_size: int) -> float:
    """FLOPs of one training pass (forward and backward) per example, as our loop batches."""
    from torch.utils.flop_counter import FlopCounterMode

    from gensar.families.gensar.training import collate, make_batches

    batches = make_batches(examples, batch_size, seed=0, epoch=0, bucketing=True)
    counter = FlopCounterMode(display=False)
    with counter:
        for indices in batches:
            model(**collate([examples[i] for i in indices], 0)).loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(examples)


def matmul_rate(model, tokens: int = 3584, seconds: float = 3.0) -> float:
    """FLOP/s of the model's largest products (a batch's tokens through the feed-forward
    layer, both ways), measured alone: the ceiling for a loop whose time is matmuls."""
    d_model, d_ff = model.config.d_model, model.config.d_ff
    a, w = torch.randn(tokens, d_model), torch.randn(d_model, d_ff)
    b, v = torch.randn(tokens, d_ff), torch.randn(d_ff, d_model)
    for _ in range(3):
        a @ w, b @ v
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ w, b @ v
        n += 1
    return n * 2 * 2 * tokens * d_model * d_ff / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=Path("runs/data/amazon-scientific"))
    parser.add_argument(
        "--run", type=Path, default=Path("runs/sci"), help="run dir with identifiers/"
    )
    parser.add_argument("--examples", type=int, default=3200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    examples, model, tokenizer = build(args.dataset, args.run, args.examples)
    initial = copy.deepcopy(model.state_dict())
    loops = {
        "gensar loop (buckets by total length, default)": lambda m: ours(
            examples, m, args.batch_size
        ),
        "gensar loop (buckets by target length, train.bucket_by=target)": lambda m: ours(
            examples, m, args.batch_size, "target"
        ),
        "stock Seq2SeqTrainer": lambda m: stock_trainer(
            examples, m, tokenizer, args.batch_size, False
        ),
        "stock Seq2SeqTrainer, group_by_length": lambda m: stock_trainer(
            examples, m, tokenizer, args.batch_size, True
        ),
    }
    speeds: dict[str, list[float]] = {name: [] for name in loops}
    for repeat in range(args.repeats):
        order = list(loops) if repeat % 2 == 0 else list(reversed(loops))
        for name in order:
            model.load_state_dict(initial)
            torch.manual_seed(0)
            speeds[name].append(loops[name](model))
            print(f"{name}: {speeds[name][-1]:.1f} examples/s", flush=True)
    rows = [(name, statistics.median(v), v) for name, v in speeds.items()]
    reference = speeds["stock Seq2SeqTrainer, group_by_length"]
    reference = statistics.median(reference)
    model.load_state_dict(initial)
    flops = flops_per_example(examples, model, args.batch_size)
    rate = matmul_rate(model)
    ceiling = rate / flops
    table = [
        "| training loop | examples/s (median) | runs | ratio to stock group_by_length | share of the matmul ceiling |",
        "|---|---:|---|---:|---:|",
    ]
    table += [
        f"| {name} | {speed:.1f} | {', '.join(f'{x:.1f}' for x in runs)} | "
        f"{speed / reference:.2f}x | {speed / ceiling:.0%} |"
        for name, speed, runs in rows
    ]
    tasks = sorted({e.task for e in examples})
    text = (
        f"Tiny T5 ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters), "
        f"{len(examples)} examples sampled from one epoch's mix ({', '.join(tasks)}) on "
        f"amazon-scientific, batch {args.batch_size}, fp32, {torch.get_num_threads()} "
        f"threads; every loop {args.repeats}x in alternating order, in one run.\n\n"
        + "\n".join(table)
        + "\n\n"
        + f"Ceiling: one training pass costs {flops / 1e6:.0f} MFLOP per example (forward and "
        f"backward, counted by FlopCounterMode over the same batches); this CPU's rate for "
        f"the model's largest products (a batch's tokens through the feed-forward layer) is "
        f"{rate / 1e9:.1f} GFLOP/s here, so a loop that did nothing but matrix products at "
        f"that rate would reach {ceiling:.0f} examples/s.\n"
    )
    print(text)
    write_results(
        "training_speed",
        text,
        {
            "rows": [{"loop": n, "examples_per_second": s, "runs": r} for n, s, r in rows],
            "examples": len(examples),
            "batch_size": args.batch_size,
            "flops_per_example": flops,
            "matmul_flops_per_second": rate,
            "ceiling_examples_per_second": ceiling,
        },
    )


if __name__ == "__main__":
    main()
