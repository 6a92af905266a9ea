"""Training throughput of GenSAR's input forms (``tasks.soft_tokens``), same run, same loop.

Eq. (11) spends a behaviour token and four identifier codes on every history item;
``tasks.soft_tokens=instead`` spends a behaviour token and one projected vector, and
``beside`` adds the vector to the codes. This measures what that does to the examples
a CPU trains per second: each form builds the same seeded sample of one epoch's task
mix from a run's identifiers and vectors, trains a fresh tiny T5 (same seed) on it
with our training loop, in alternating order over ``--repeats`` (the median counts,
this machine is shared), and reports the mean input length beside the rate and the
ratio to Eq. (11)'s form. Validation quality at equal examples is the learning log's
job (``benchmarks/learning_speed.py --set tasks.soft_tokens=...``).

    .venv/bin/python benchmarks/soft_token_speed.py --run runs/index-methods2/rqvae-converged
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
from pathlib import Path

import numpy as np
import torch

from _common import write_results

os.environ.setdefault("TQDM_DISABLE", "1")

MODES = ("off", "instead", "beside")


def build(dataset_dir: Path, run_dir: Path, n: int, mode: str):
    """A seeded sample of ``n`` examples in one input form, and its fresh model."""
    from transformers import AutoTokenizer

    from gensar.data import load_dataset
    from gensar.families.gensar.soft_inputs import soft_inputs_for_run
    from gensar.families.gensar.stage import GenSARConfig, build_vocabulary, item_descriptions
    from gensar.families.gensar.tasks.builder import SampleRows, TaskBuilder
    from gensar.families.gensar.tasks.config import TaskConfig
    from gensar.ids.identifiers import ItemIdentifiers
    from gensar.model.backbone import ModelConfig, build_model
    from gensar.model.soft_tokens import attach_soft_tokens

    dataset = load_dataset(dataset_dir)
    identifiers = ItemIdentifiers.load(run_dir)
    saved = run_dir / "training" / "tokenizer"
    tokenizer = (
        AutoTokenizer.from_pretrained(str(saved))
        if saved.is_dir()
        else build_vocabulary(dataset, identifiers, GenSARConfig())
    )
    model = build_model(ModelConfig(), tokenizer, seed=0)
    soft = None
    if mode != "off":
        soft, table = soft_inputs_for_run(
            run_dir,
            dataset.item_ids,
            list(dataset.query_text.values()),
            model.get_input_embeddings().num_embeddings,
            mode,
        )
        attach_soft_tokens(model, torch.from_numpy(table), seed=0)
    config = TaskConfig(soft_tokens=mode)
    builder = TaskBuilder(tokenizer, identifiers, item_descriptions(dataset.items), config, soft)
    rows = {
        "nrip": SampleRows.of(dataset.samples, "recommendation", "train"),
        "nsip": SampleRows.of(dataset.samples, "search", "train"),
    }
    rows["nsqp"] = rows["nsip"]
    examples = builder.epoch_examples(rows, dataset.query_text, dataset.item_ids, epoch=0, seed=0)
    # the same positions of the epoch in every form (the epoch lists are aligned)
    picked = random.Random(0).sample(range(len(examples)), min(n, len(examples)))
    return [examples[i] for i in picked], model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run", type=Path, required=True, help="run with identifiers/ and embeddings/"
    )
    parser.add_argument("--dataset", type=Path, default=Path("runs/data/amazon-scientific"))
    parser.add_argument("--examples", type=int, default=3200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from training_speed import ours

    built = {mode: build(args.dataset, args.run, args.examples, mode) for mode in MODES}
    initial = {
        mode: {k: v.clone() for k, v in m.state_dict().items()} for mode, (_, m) in built.items()
    }
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    for repeat in range(args.repeats):
        order = MODES if repeat % 2 == 0 else MODES[::-1]
        for mode in order:
            examples, model = built[mode]
            model.load_state_dict(initial[mode], strict=False)
            rates[mode].append(ours(examples, model, 64))
            print(f"repeat {repeat}: {mode} {rates[mode][-1]:.1f} ex/s", flush=True)
    reference = statistics.median(rates["off"])
    rows = []
    for mode in MODES:
        examples, _ = built[mode]
        rate = statistics.median(rates[mode])
        rows.append(
            {
                "input form": {"off": "Eq. 11 (codes, words)"}.get(mode, f"soft tokens {mode}"),
                "mean input tokens": round(float(np.mean([len(e.input_ids) for e in examples])), 1),
                "mean target tokens": round(float(np.mean([len(e.labels) for e in examples])), 1),
                "examples/s (median)": round(rate, 1),
                "runs": " / ".join(f"{r:.1f}" for r in rates[mode]),
                "x Eq. 11": round(rate / reference, 2),
            }
        )
    note = (
        f"run: {args.run}; {args.examples} examples (seeded sample of one epoch's task mix), "
        f"batch 64, tiny T5, fp32, {torch.get_num_threads()} torch thread(s), "
        f"{args.repeats} alternating repeats (median)."
    )
    columns = list(rows[0])
    lines = [
        "# Training examples/s by input form (`tasks.soft_tokens`), our loop, same sample",
        "",
        note,
        "",
        "| " + " | ".join(columns) + " |",
        "|---|" + "---:|" * (len(columns) - 1),
        *("| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows),
    ]
    write_results("soft_token_speed", "\n".join(lines), {"note": note, "rows": rows})


if __name__ == "__main__":
    main()
