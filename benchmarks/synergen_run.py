"""SynerGen on amazon-scientific: a time-limited training run, evaluated on the benchmark's
own candidate lists.

    nice -n 5 .venv/bin/python benchmarks/synergen_run.py --minutes 15 [--set synergen.KEY=VALUE ...]

1. Prepares ``runs/data/amazon-scientific`` from the shared data when missing
   (``gensar prepare --source amazon-unisrec``).
2. Builds (or reuses) the candidate lists with the evaluation's builder and its
   default settings (99 negatives, seed 0: the lists ``gensar benchmark`` ranks).
3. Trains SynerGen for ``--minutes`` of training time (text encoding excluded
   and reported separately), keeping the best epoch by validation.
4. Chooses the candidate scorer (ranking head, retrieval head or their sum) on
   the *validation* lists, then evaluates the test lists: NDCG@10/HR@10 on every
   test sample and full-catalogue Recall/NDCG@10/20 (retrieval head, exact top-k)
   on the benchmark's fixed subset of 1000 samples.
5. Measures per-user latency (one sample per call, p50/p95) of full-catalogue
   retrieval and of ranking 100 candidates.

Writes ``benchmarks/results/synergen_probe.{md,json}``. On a shared CPU the
result is a time-limited preliminary, not the issue's final benchmark row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synergen_diagnose import choose, scorer_grid  # noqa: E402

from gensar.config import apply_overrides, validate  # noqa: E402
from gensar.data.dataset import load_dataset  # noqa: E402
from gensar.data.prepare import prepare_dataset  # noqa: E402
from gensar.evaluation.candidates import (  # noqa: E402
    CandidateConfig,
    build_candidates,
    load_candidates,
)
from gensar.evaluation.runner import evaluate_ranker  # noqa: E402
from gensar.families.synergen import SynerGenConfig, SynerGenRanker, load_model, train  # noqa: E402
from gensar.utils import torch_threads  # noqa: E402

from _common import REPO, RESULTS, SHARED_DATA, write_results  # noqa: E402

TASKS = ("recommendation", "search")
TARGETS = {"recommendation": 0.230, "search": 0.50}  # issue 17, NDCG@10 on the 100-candidate lists
FULL_SAMPLES = 1000  # benchmarks/amazon-scientific.yaml: evaluate.full_catalogue_samples


def reference_rows() -> dict[str, dict[str, float]]:
    """SASRec and BM25 test metrics from the committed benchmark (same lists)."""
    path = RESULTS / "amazon-scientific.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    out = {}
    for row in data.get("results", []):
        if row["split"] == "test" and row["model"] in {"SASRec", "BM25"}:
            out[f"{row['model']} ({row['task']})"] = row["metrics"]
    return out


def latency(ranker: SynerGenRanker, dataset, cands, n: int) -> dict[str, float]:
    """p50/p95 ms per user: exact top-10 over the catalogue; ranking its 100 candidates."""
    samples = cands.samples(dataset)
    lists = cands.candidates
    retrieval, ranking = [], []
    for row in range(min(n, samples.height)):
        one = samples.slice(row, 1)
        start = time.perf_counter()
        ranker.top_k(one, 10)
        retrieval.append(time.perf_counter() - start)
        start = time.perf_counter()
        ranker.score_candidates(one, lists[row : row + 1])
        ranking.append(time.perf_counter() - start)
    ms = lambda xs, q: round(float(np.percentile(xs, q)) * 1000, 2)  # noqa: E731
    return {
        "retrieval_p50_ms": ms(retrieval, 50),
        "retrieval_p95_ms": ms(retrieval, 95),
        "ranking_p50_ms": ms(ranking, 50),
        "ranking_p95_ms": ms(ranking, 95),
        "calls": len(retrieval),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training time budget")
    parser.add_argument("--dataset", default=str(REPO / "runs/data/amazon-scientific"))
    parser.add_argument("--run", default=str(REPO / "runs/synergen/amazon-scientific"))
    parser.add_argument("--set", action="append", default=[], help="synergen.KEY=VALUE")
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument("--name", default="synergen_probe", help="results file name")
    parser.add_argument(
        "--no-correction",
        action="store_true",
        help="choose the candidate scorer without the popularity correction",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN's last checkpoint up to --minutes of training in all",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="evaluate RUN/synergen again instead of training"
    )
    args = parser.parse_args()

    dataset_dir, run_dir = Path(args.dataset), Path(args.run)
    if not (dataset_dir / "manifest.json").is_file():
        prepare_dataset("amazon-unisrec", SHARED_DATA / "amazon-scientific", dataset_dir)
    dataset = load_dataset(dataset_dir)
    build_candidates(dataset_dir, run_dir, CandidateConfig())
    sets = {(t, s): load_candidates(run_dir, t, s) for t in TASKS for s in ("valid", "test")}

    overrides = [o.removeprefix("synergen.") for o in args.set]
    config = validate(
        SynerGenConfig,
        apply_overrides({"max_minutes": args.minutes}, overrides),
        source="--set",
    )
    if args.reuse and (run_dir / "synergen" / "config.json").is_file():
        loaded = load_model(run_dir / "synergen")  # evaluate the trained run again
        config, summary = loaded.config, loaded.summary
    else:
        summary = train(dataset_dir, run_dir, config, resume=args.resume)
        loaded = load_model(run_dir / "synergen")

    # candidate scorer and per-task popularity correction chosen on the validation lists
    base = SynerGenRanker(loaded)
    base.fit(dataset)
    grids = {t: scorer_grid(base, dataset, sets[t, "valid"]) for t in TASKS}
    chosen, correction, chosen_valid = choose(grids)
    if args.no_correction:  # the scorer alone, uncorrected (the stop-20 protocol)
        plain = {t: {k: v for k, v in g.items() if k.endswith(" a=0")} for t, g in grids.items()}
        chosen, correction, chosen_valid = choose(plain)
    valid_scores = {
        s: {t: grids[t][f"{s} a=0"] for t in TASKS} for s in ("ranking", "retrieval", "sum")
    }
    ranker = SynerGenRanker(loaded, candidate_scorer=chosen, popularity_correction=correction)
    ranker.fit(dataset)
    test = {}
    with torch_threads(config.threads):
        for t in TASKS:
            result = evaluate_ranker(ranker, dataset, sets[t, "test"], full_samples=FULL_SAMPLES)
            test[t] = {"n_samples": len(sets[t, "test"]), **result.metrics}
        lat = latency(ranker, dataset, sets["recommendation", "test"], args.latency_calls)

    refs = reference_rows()
    data = {
        "preliminary": True,
        "command": "OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/synergen_run.py "
        + " ".join(
            [
                f"--minutes {args.minutes:g}",
                *[f"--set {o}" for o in args.set],
                *(["--no-correction"] if args.no_correction else []),
                *(["--reuse"] if args.reuse else []),
                *(["--resume"] if args.resume else []),
            ]
        )
        + "".join(
            f" --{flag} {value}"
            for flag, value, default in (
                ("run", args.run, parser.get_default("run")),
                ("name", args.name, parser.get_default("name")),
            )
            if value != default
        ),
        "config": config.model_dump(mode="json"),
        "training": summary,
        "validation_curve": [
            json.loads(line)
            for line in (run_dir / "synergen" / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        ],
        "valid_ndcg10_by_scorer": valid_scores,
        "valid_ndcg10_grid": grids,
        "candidate_scorer": chosen,
        "popularity_correction": correction,
        "valid_ndcg10_chosen": chosen_valid,
        "test": test,
        "latency_per_user": lat,
        "reference": refs,
        "targets_ndcg10": TARGETS,
    }
    write_results(args.name, markdown(data), data, script="synergen_run")


def markdown(data: dict) -> str:
    train_info, test = data["training"], data["test"]
    lines = [
        "# SynerGen on amazon-scientific (preliminary, time-limited, shared CPU)",
        "",
        f"Command: `{data['command']}`",
        "",
        f"Training: {train_info['seconds'] / 60:.1f} min of training "
        f"(+{train_info['setup_seconds']:.0f} s streams and MiniLM text vectors), "
        f"{train_info['examples_seen']:,} targets seen ({train_info['epochs_run']} epochs of "
        f"{train_info['targets_per_epoch']:,}), best epoch {train_info['best_epoch']}, "
        f"stopped by {train_info['stopped_by']}. Candidate scorer chosen on validation: "
        f"**{data['candidate_scorer']}** (validation NDCG@10 per scorer: "
        + ", ".join(
            f"{s}: rec {v['recommendation']:.4f} / search {v['search']:.4f}"
            for s, v in data["valid_ndcg10_by_scorer"].items()
        )
        + f"). Popularity correction a per task (retrieval - a*log(1+training targets), chosen "
        f"on validation): {data['popularity_correction']}; validation NDCG@10 of the chosen "
        f"scorer: {data['valid_ndcg10_chosen']}.",
        "",
        "Test split; candidate metrics on every sample of the benchmark's lists (1 target + "
        "99 negatives); `full/` = retrieval head over the whole catalogue on the benchmark's "
        f"fixed subset of {FULL_SAMPLES} samples.",
        "",
        "| Metric | SynerGen rec | SynerGen search | SASRec rec | BM25 search |",
        "|---|---:|---:|---:|---:|",
    ]
    sas = data["reference"].get("SASRec (recommendation)", {})
    bm = data["reference"].get("BM25 (search)", {})
    for metric in ("HR@10", "NDCG@10", "full/Recall@10", "full/NDCG@10", "full/Recall@20"):
        cells = [
            f"{test['recommendation'].get(metric, float('nan')):.4f}",
            f"{test['search'].get(metric, float('nan')):.4f}",
            f"{sas[metric]:.4f}" if metric in sas else "-",
            f"{bm[metric]:.4f}" if metric in bm else "-",
        ]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    lines += ["", "Issue 17 targets (NDCG@10, both in one model):", ""]
    for task, goal in data["targets_ndcg10"].items():
        got = test[task]["NDCG@10"]
        verdict = "met" if got >= goal else f"NOT met (gap {goal - got:.4f})"
        lines.append(f"- {task}: {got:.4f} vs target {goal:.3f}: {verdict}")
    lat = data["latency_per_user"]
    lines += [
        "",
        f"Latency per user (one sample per call, {lat['calls']} calls, 1 torch thread): "
        f"full-catalogue exact top-10 p50 {lat['retrieval_p50_ms']} ms / p95 "
        f"{lat['retrieval_p95_ms']} ms; ranking 100 candidates p50 {lat['ranking_p50_ms']} ms "
        f"/ p95 {lat['ranking_p95_ms']} ms (shared, noisy CPU).",
        "",
        "SASRec/BM25 columns: the committed `benchmarks/results/amazon-scientific.md` rows "
        "(same candidate lists and full-catalogue subset).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
