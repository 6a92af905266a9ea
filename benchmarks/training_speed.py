"""Training throughput: our loop against transformers' stock Seq2SeqTrainer, same run.

Both train the same tiny T5 (same initial weights) on the same examples of
amazon-scientific (the five tasks, built by the task builder) with the same
batch size, optimiser and schedule; the stock trainer is measured without and
with its own length grouping. Prints a table and writes
benchmarks/results/training_speed.md/.json.

    .venv/bin/python benchmarks/training_speed.py [--examples 3200]
"""

from __future__ import annotations

import argparse
import copy
import os
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
    examples = builder.epoch_examples(rows, dataset.query_text, dataset.item_ids, epoch=0, seed=0)[
        :n
    ]
    model = build_model(ModelConfig(), tokenizer, seed=0)
    return examples, model, tokenizer


def ours(examples, model, batch_size: int) -> float:
    from gensar.families.gensar.training import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(
            epochs=1,
            batch_size=batch_size,
            log_every=10_000,
            checkpoint_every=10_000,
            precision="fp32",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=Path("runs/data/amazon-scientific"))
    parser.add_argument(
        "--run", type=Path, default=Path("runs/sci"), help="run dir with identifiers/"
    )
    parser.add_argument("--examples", type=int, default=3200)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    examples, model, tokenizer = build(args.dataset, args.run, args.examples)
    initial = copy.deepcopy(model.state_dict())
    rows = []
    for name, run in (
        ("gensar loop (length bucketing)", lambda m: ours(examples, m, args.batch_size)),
        (
            "stock Seq2SeqTrainer",
            lambda m: stock_trainer(examples, m, tokenizer, args.batch_size, False),
        ),
        (
            "stock Seq2SeqTrainer, group_by_length",
            lambda m: stock_trainer(examples, m, tokenizer, args.batch_size, True),
        ),
    ):
        model.load_state_dict(initial)
        torch.manual_seed(0)
        rows.append((name, run(model)))
    reference = rows[1][1]
    table = ["| training loop | examples/s | ratio to stock |", "|---|---:|---:|"]
    table += [f"| {name} | {speed:.1f} | {speed / reference:.2f}x |" for name, speed in rows]
    text = (
        f"Tiny T5 ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters), {len(examples)} examples "
        f"of the five tasks on amazon-scientific, batch {args.batch_size}, fp32, {torch.get_num_threads()} threads; "
        "measured in one run.\n\n" + "\n".join(table) + "\n"
    )
    write_results(
        "training_speed",
        text,
        {
            "rows": [{"loop": n, "examples_per_second": s} for n, s in rows],
            "examples": len(examples),
            "batch_size": args.batch_size,
        },
    )


if __name__ == "__main__":
    main()
