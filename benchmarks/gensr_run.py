"""GenSR on amazon-scientific: a time-limited CPU training run, evaluated on the
benchmark's own candidate lists next to Popularity, SASRec and BM25.

    nice -n 10 .venv/bin/python benchmarks/gensr_run.py --minutes 25 [--set KEY=VALUE ...]

1. Prepares ``runs/data/amazon-scientific`` from the shared data when missing.
2. Builds (or reuses) the candidate lists with the evaluation's builder and its
   default settings (99 negatives, seed 0: the lists ``gensar benchmark`` ranks).
3. Trains GenSR for ``--minutes`` of training time (validation passes, vocabulary
   and SASRec excluded and reported separately), keeping the best validation.
4. Test NDCG@10/HR@10 on a fixed seeded subset of ``--test-samples`` lists per task
   (0: every list) for GenSR and, on the same rows, Popularity, SASRec (the run's,
   GenSR's item table and first stage) and BM25, under the shared metrics
   (expected ties). Full-catalogue metrics (GenSR re-ranking the first stage's
   top-N) on ``--full-samples`` rows.
5. Per-user latency of scoring 100 candidates (one user per call, p50/p95).

Writes ``benchmarks/results/<name>.{md,json}`` and ``<name>-curve.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gensar.baselines import BM25Search, Popularity, SASRecBaseline  # noqa: E402
from gensar.config import apply_overrides, validate  # noqa: E402
from gensar.data.dataset import load_dataset  # noqa: E402
from gensar.data.prepare import prepare_dataset  # noqa: E402
from gensar.evaluation.candidates import (  # noqa: E402
    CandidateConfig,
    CandidateSet,
    build_candidates,
    load_candidates,
)
from gensar.evaluation.protocol import evaluate_model  # noqa: E402
from gensar.evaluation.runner import evaluate_ranker, full_catalogue_rows  # noqa: E402
from gensar.families import gensr  # noqa: E402
from gensar.families.gensr import GenSRConfig, GenSRRanker  # noqa: E402
from gensar.utils import torch_threads  # noqa: E402

from _common import REPO, RESULTS, SHARED_DATA, write_results  # noqa: E402

TASKS = ("recommendation", "search")


def subset(cands: CandidateSet, n: int, seed: int = 0) -> CandidateSet:
    rows = full_catalogue_rows(len(cands), n if n > 0 else None, seed)
    return CandidateSet(cands.task, cands.split, cands.frame[rows], cands.path)


def latency(ranker: GenSRRanker, dataset, cands: CandidateSet, n: int) -> dict[str, float]:
    samples = cands.samples(dataset)
    lists = cands.candidates
    times = []
    for row in range(min(n, samples.height)):
        start = time.perf_counter()
        ranker.score_candidates(samples.slice(row, 1), lists[row : row + 1])
        times.append(time.perf_counter() - start)
    ms = lambda q: round(float(np.percentile(times, q)) * 1000, 1)  # noqa: E731
    return {"p50_ms": ms(50), "p95_ms": ms(95), "calls": len(times), "candidates": len(lists[0])}


def plot_curve(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = [r["examples"] for r in rows]
    for task, style in (("recommendation", "o-"), ("search", "s-")):
        key = f"{task}_ndcg10"
        if all(key in r for r in rows):
            ax.plot(x, [r[key] for r in rows], style, label=f"{task} (valid NDCG@10)")
    ax.axhline(0.0454, color="grey", ls=":", lw=1, label="chance (1 of 100)")
    ax.set_xlabel("training samples seen")
    ax.set_ylabel("validation NDCG@10 (subset)")
    ax.set_title("GenSR on amazon-scientific (1 CPU thread, shared machine)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=25.0, help="training time budget")
    parser.add_argument("--dataset", default=str(REPO / "runs/data/amazon-scientific"))
    parser.add_argument("--run", default=str(REPO / "runs/gensr/amazon-scientific"))
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE (gensr section)")
    parser.add_argument("--test-samples", type=int, default=2000, help="lists per task; 0 = all")
    parser.add_argument("--full-samples", type=int, default=200)
    parser.add_argument("--latency-calls", type=int, default=100)
    parser.add_argument("--name", default="gensr_amazon-scientific", help="results file name")
    args = parser.parse_args()

    dataset_dir, run_dir = Path(args.dataset), Path(args.run)
    if not (dataset_dir / "manifest.json").is_file():
        prepare_dataset("amazon-unisrec", SHARED_DATA / "amazon-scientific", dataset_dir)
    dataset = load_dataset(dataset_dir)
    build_candidates(dataset_dir, run_dir, CandidateConfig())

    overrides = [o.removeprefix("gensr.") for o in args.set]
    config = validate(
        GenSRConfig, apply_overrides({"max_minutes": args.minutes}, overrides), source="--set"
    )
    started = time.perf_counter()
    summary = gensr.train(dataset_dir, run_dir, config)
    wall_train = time.perf_counter() - started
    ranker = gensr.ranker(run_dir, config, "GenSR")
    others = [Popularity(), SASRecBaseline(), BM25Search()]
    for model in [ranker, *others]:
        model.fit(dataset, run_dir)

    test, baselines, eval_seconds = {}, {}, {}
    with torch_threads(config.threads):
        for task in TASKS:
            cands = subset(load_candidates(run_dir, task, "test"), args.test_samples)
            t0 = time.perf_counter()
            if args.full_samples:  # candidate metrics on every row, full/ on the first rows
                result = evaluate_ranker(ranker, dataset, cands, full_samples=args.full_samples)
            else:
                result = evaluate_model(ranker, dataset, cands, full_catalogue=False)
            eval_seconds[task] = round(time.perf_counter() - t0, 1)
            test[task] = {"n_samples": len(cands), **result.metrics}
            for model in others:
                if task in model.tasks:
                    r = evaluate_model(model, dataset, cands, full_catalogue=False)
                    baselines.setdefault(model.name, {})[task] = r.metrics
        lat = latency(
            ranker, dataset, load_candidates(run_dir, "recommendation", "test"), args.latency_calls
        )

    curve = [
        json.loads(line)
        for line in (run_dir / "gensr" / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    plot_curve(curve, RESULTS / f"{args.name}-curve.png")
    quick = RESULTS / "amazon-scientific-quick.json"
    reference = {}
    if quick.is_file():
        for row in json.loads(quick.read_text())["results"]:
            if row["split"] == "test" and row["model"] in {"Popularity", "SASRec", "BM25"}:
                reference[f"{row['model']} ({row['task']})"] = row["metrics"]["NDCG@10"]
    data = {
        "preliminary": True,
        "command": "nice -n 10 .venv/bin/python benchmarks/gensr_run.py "
        + " ".join(
            [
                f"--minutes {args.minutes:g}",
                f"--test-samples {args.test_samples}",
                f"--full-samples {args.full_samples}",
                *[f"--set {o}" for o in args.set],
                *[
                    f"--{flag} {value}"
                    for flag, value in (("run", args.run), ("name", args.name))
                    if value != parser.get_default(flag)
                ],
            ]
        ),
        "config": config.model_dump(mode="json"),
        "training": {**summary, "wall_seconds_with_setup": round(wall_train, 1)},
        "validation_curve": curve,
        "test": test,
        "full_samples": args.full_samples,
        "baselines_same_rows": baselines,
        "test_eval_seconds": eval_seconds,
        "latency_per_user_100_candidates": lat,
        "reference_quick_benchmark_ndcg10": reference,
    }
    write_results(args.name, markdown(data, args.name), data, script="gensr_run")


def markdown(data: dict, name: str) -> str:
    tr, test, base = data["training"], data["test"], data["baselines_same_rows"]
    n = {t: test[t]["n_samples"] for t in TASKS}
    lines = [
        "# GenSR on amazon-scientific (preliminary: time-limited, 1 CPU thread, shared machine)",
        "",
        f"Command: `{data['command']}`",
        "",
        f"Training: {tr['seconds'] / 60:.1f} min of training steps (+{tr['validation_seconds'] / 60:.1f} "
        f"min validation, +{tr['setup_seconds']:.0f} s vocabulary and inputs; SASRec item table "
        f"trained first when missing), {tr['examples_seen']:,} training samples seen "
        f"({tr['epochs_run']} epochs of {tr['train_samples']:,}; each with 1 positive + "
        f"{data['config']['negatives']} negatives = {tr['candidate_pairs_seen']:,} judged pairs), "
        f"{tr['steps']} steps, best validation at step {tr['best_step']}, stopped by "
        f"{tr['stopped_by']}. Learning curve: `{name}-curve.png` (validation NDCG@10 on "
        f"{data['config']['eval_samples']} lists per task).",
        "",
        f"Test split, candidate lists of the benchmark (1 target + 99 negatives), on a fixed "
        f"seeded subset of {n['recommendation']} recommendation and {n['search']} search lists; "
        "every model on the same rows; shared metrics, expected ties.",
        "",
        "| Metric | GenSR rec | Popularity rec | SASRec rec | GenSR search | Popularity search | BM25 search |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    pop, sas, bm = base.get("Popularity", {}), base.get("SASRec", {}), base.get("BM25", {})
    for metric in ("HR@1", "HR@10", "NDCG@5", "NDCG@10"):
        cells = [
            test["recommendation"].get(metric),
            pop.get("recommendation", {}).get(metric),
            sas.get("recommendation", {}).get(metric),
            test["search"].get(metric),
            pop.get("search", {}).get(metric),
            bm.get("search", {}).get(metric),
        ]
        lines.append(
            f"| {metric} | " + " | ".join("-" if c is None else f"{c:.4f}" for c in cells) + " |"
        )
    full = [m for m in ("full/Recall@10", "full/NDCG@10") if m in test["recommendation"]]
    if full:
        lines += [
            "",
            "Full catalogue (GenSR re-ranks the top "
            f"{data['config']['rerank_top_n']} of SASRec / BM25; the rest keep the first "
            "stage's order), on a seeded subset of "
            f"{data['full_samples']} of these rows: "
            + "; ".join(f"{t} " + ", ".join(f"{m} {test[t][m]:.4f}" for m in full) for t in TASKS),
        ]
    lat = data["latency_per_user_100_candidates"]
    lines += [
        "",
        f"Latency per user, {lat['candidates']} candidates in one call ({lat['calls']} calls, "
        f"1 torch thread, shared CPU): p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms.",
        "",
        "Quick benchmark (`amazon-scientific-quick.md`, every test list) NDCG@10 for "
        "reference: "
        + ", ".join(f"{k} {v:.4f}" for k, v in data["reference_quick_benchmark_ndcg10"].items())
        + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
