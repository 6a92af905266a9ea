"""How GenSAR ranks a candidate list: restricted beam 20, restricted beam 30, exact scoring.

Restricted beam search keeps ``num_beams`` partial identifiers at every step,
so on lists of 100 it prunes after the shared (collaborative) codes, before any
task-specific code is scored; only the last step is exact. Exact scoring ranks
every candidate by its identifier's log-likelihood (no pruning). This script
ranks the same test lists of a trained model all three ways and reports, per
task, NDCG@10/HR@10 (expected ties; candidates the beam pruned are tied at the
bottom), NDCG@10 had pruned candidates been ranked pessimistically, how often
the beam pruned the target, and the time per list (with its ratio to exact
scoring measured in the same run: the machine is shared and noisy).

    nice -n 5 .venv/bin/python benchmarks/ranking_modes.py \\
        --model runs/benchmarks/amazon-scientific-quick/seed-0/gensar/model \\
        --lists runs/benchmarks/amazon-scientific-quick \\
        --label "quick benchmark's GenSAR (seed 0, 1 epoch)"

Results: benchmarks/results/ranking_modes.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import shlex
import time
from pathlib import Path

import numpy as np

from _common import write_results

os.environ.setdefault("TQDM_DISABLE", "1")

MODES = (("beam 20", "beam", 20), ("beam 30", "beam", 30), ("exact", "exact", 30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="a trained model directory")
    parser.add_argument("--dataset", type=Path, default=Path("runs/data/amazon-scientific"))
    parser.add_argument(
        "--lists", type=Path, required=True, help="folder holding candidates/ (a benchmark's out)"
    )
    parser.add_argument("--label", required=True, help="which model this is, for the table")
    parser.add_argument(
        "--samples", type=int, default=None, help="a fixed random subset per task (default: all)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import torch

    from gensar.data import load_dataset
    from gensar.evaluation.candidates import CandidateSet, load_candidates
    from gensar.evaluation.evaluate import evaluate_scores
    from gensar.families.gensar.api import GenSAR
    from gensar.families.gensar.ranking import GenSARRanker

    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
    gensar = GenSAR.load(args.model)
    rows = []
    for task in ("recommendation", "search"):
        cands = load_candidates(args.lists, task, "test")
        if args.samples is not None and args.samples < len(cands):
            keep = np.sort(
                np.random.default_rng(0).choice(len(cands), size=args.samples, replace=False)
            )
            cands = CandidateSet(cands.task, cands.split, cands.frame[keep], cands.path)
        samples = cands.samples(dataset)
        lists = cands.candidates
        timed = {}
        for label, mode, beams in MODES:
            ranker = GenSARRanker(
                gensar=gensar, num_beams=beams, candidate_ranking=mode, batch_size=args.batch_size
            )
            ranker.fit(dataset)
            scores = np.empty((len(cands), len(lists[0])))
            started = time.perf_counter()
            for start in range(0, len(cands), 256):
                chunk = samples.slice(start, 256)
                scores[start : start + chunk.height] = ranker.score_candidates(
                    chunk, lists[start : start + chunk.height]
                )
            seconds = time.perf_counter() - started
            timed[label] = seconds
            fair = evaluate_scores(label, cands, scores, ties="expected").metrics
            worst = evaluate_scores(label, cands, scores, ties="pessimistic").metrics
            target = scores[np.arange(len(cands)), cands.target_index]
            rows.append(
                {
                    "task": task,
                    "mode": label,
                    "samples": len(cands),
                    "NDCG@10": round(fair["NDCG@10"], 5),
                    "HR@10": round(fair["HR@10"], 5),
                    "NDCG@10 pessimistic": round(worst["NDCG@10"], 5),
                    "target pruned": round(float(np.isinf(target).mean()), 5),
                    "ms per list": round(1000 * seconds / len(cands), 2),
                    "seconds": round(seconds, 1),
                }
            )
            print(rows[-1], flush=True)
        for row in rows:
            if row["task"] == task:
                row["time vs exact"] = round(timed[row["mode"]] / timed["exact"], 2)

    lines = [
        "# GenSAR candidate ranking: restricted beam 20 / 30 vs exact scoring",
        "",
        f"Model: **{args.label}** (`{args.model}`); test lists of `{args.lists}`"
        + (f", a fixed random subset of {args.samples} per task" if args.samples else "")
        + f"; {args.threads} torch thread(s), batch {args.batch_size}.",
        "",
        "NDCG@10/HR@10 under expected ties (candidates the beam pruned are tied at the "
        "bottom and the target ranked among them fairly); `NDCG@10 pessimistic` ranks a "
        "pruned target below all of them. `target pruned`: share of lists where the beam "
        "dropped the target before the last identifier step. Time ratios are to exact "
        "scoring in the same run.",
        "",
        "| task | mode | NDCG@10 | HR@10 | NDCG@10 pessimistic | target pruned "
        "| ms per list | time vs exact |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['mode']} | {r['NDCG@10']:.4f} | {r['HR@10']:.4f} "
            f"| {r['NDCG@10 pessimistic']:.4f} | {r['target pruned']:.1%} "
            f"| {r['ms per list']:.1f} | {r['time vs exact']:.2f} |"
        )
    command = (
        "nice -n 5 .venv/bin/python benchmarks/ranking_modes.py "
        f"--model {args.model} --lists {args.lists} --label {shlex.quote(args.label)}"
        + (f" --samples {args.samples}" if args.samples else "")
    )
    lines += ["", f"Command: `{command}`"]
    write_results(
        "ranking_modes",
        "\n".join(lines),
        {"label": args.label, "model": str(args.model), "rows": rows, "command": command},
    )


if __name__ == "__main__":
    main()
