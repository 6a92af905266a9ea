"""Does early stopping on the full catalogue pick a good epoch for the candidate lists?

Trains one setting of ``benchmarks/sasrec_sweep.py`` and, after every epoch, scores
the validation and test 100-candidate recommendation lists (expected ties) beside the
full-catalogue validation NDCG@10 that early stopping watches. Diagnostic only: the
sweep chooses; this shows how the two validation metrics move together.

    nice -n 10 .venv/bin/python benchmarks/sasrec_epochs.py recbole-code

Writes ``benchmarks/results/sasrec_epochs-<setting>.{md,json}``. Needs the sweep's
candidate lists (``runs/sasrec_sweep/candidates``; the sweep builds them).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from _common import RESULTS, machine

os.environ.setdefault("TQDM_DISABLE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("setting")
    parser.add_argument("--dataset", type=Path, default=Path("runs/data/amazon-scientific"))
    parser.add_argument("--out", type=Path, default=Path("runs/sasrec_sweep"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from sasrec_sweep import SETTINGS

    from gensar.baselines import SASRecBaseline
    from gensar.data import load_dataset
    from gensar.embed import collab
    from gensar.embed.sasrec import SASRecConfig
    from gensar.evaluation import evaluate_model, load_candidates

    torch.set_num_threads(1)
    config = SASRecConfig(**SETTINGS[args.setting][1], seed=args.seed, threads=1)
    dataset = load_dataset(args.dataset)
    cands = {s: load_candidates(args.out, "recommendation", s) for s in ("valid", "test")}
    popularity = collab.item_popularity(
        collab.training_token_sequences(dataset), len(dataset.item_ids)
    )
    rows: list[dict] = []
    full_evaluate = collab.evaluate

    def evaluate_too(model, inputs, targets, batch_size, device):
        full = full_evaluate(model, inputs, targets, batch_size, device)
        rec = collab.SASRecRecommender(model, dataset.item_ids, popularity, config)
        baseline = SASRecBaseline(rec)
        baseline.fit(dataset)
        row = {"epoch": len(rows) + 1, "valid_full_ndcg@10": round(full.ndcg, 5)}
        for split, cand in cands.items():
            metrics = evaluate_model(baseline, dataset, cand, full_catalogue=False).metrics
            row[f"{split}_ndcg@10"] = round(metrics["NDCG@10"], 5)
        rows.append(row)
        print(row, flush=True)
        return full

    collab.evaluate = evaluate_too
    run_dir = args.out / f"epochs-{args.setting}-seed{args.seed}"
    summary = collab.train_collaborative(
        args.dataset, run_dir, config, progress=False, log=lambda *_: None
    )
    best = summary["best_epoch"]
    peak = max(rows, key=lambda r: r["valid_ndcg@10"])
    lines = [
        f"# SASRec `{args.setting}` (seed {args.seed}): validation metrics per epoch",
        "",
        f"Command: `nice -n 10 .venv/bin/python benchmarks/sasrec_epochs.py {args.setting}`. "
        f"{SETTINGS[args.setting][0]}. Early stopping (full-catalogue validation NDCG@10) "
        f"keeps epoch {best}; the validation candidate lists peak at epoch {peak['epoch']}. "
        "Candidate metrics: the benchmark's 100-candidate recommendation lists, expected ties.",
        "",
        "| epoch | valid full NDCG@10 | valid NDCG@10 | test NDCG@10 |",
        "|---:|---:|---:|---:|",
    ]
    for r in rows:
        mark = " (kept)" if r["epoch"] == best else ""
        lines.append(
            f"| {r['epoch']}{mark} | {r['valid_full_ndcg@10']:.4f} | {r['valid_ndcg@10']:.4f} "
            f"| {r['test_ndcg@10']:.4f} |"
        )
    name = f"sasrec_epochs-{args.setting}"
    data = {"machine": machine(), "setting": args.setting, "seed": args.seed, "rows": rows,
            "best_epoch": best}  # fmt: skip
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(f"<!-- written by benchmarks/{Path(__file__).name}; "
                                        f"machine: {data['machine']} -->\n" + text)  # fmt: skip
    print(text)


if __name__ == "__main__":
    main()
