"""Which identifiers should be the default? The authors' RQ-VAE rule, the fixed RQ-VAE, residual k-means.

Every method starts from the same embeddings (a run directory whose
``embeddings/`` the index stage has: MiniLM text vectors and SASRec vectors)
and is measured in two steps:

1. ``--train-epochs 0`` (cheap): the identifier stage alone; its seconds and the
   diagnostics of ``index_report.json``: fraction of variance unexplained per
   side, collisions after each step, codebook usage, and agreement of identifier
   prefixes with categories and queries (NMI, modal share of query groups of 5+
   items) next to shuffled codes of the same sizes.
2. ``--train-epochs E``: the same short GenSAR training for every method (the
   learning-log harness of ``benchmarks/learning_speed.py``: E epochs of the
   training samples, validation NDCG@10 of both tasks on 1,000 fixed validation
   samples, every candidate scored exactly), then full-catalogue search
   Recall@10 by constrained beam search on a fixed subset of the validation
   search samples. The test split is never read.

Rows are merged into ``benchmarks/results/index_methods.{md,json}`` by method
name, so the two steps (and methods) can run at different times.

    nice -n 5 .venv/bin/python benchmarks/index_methods.py --run runs/idx-base
    nice -n 5 .venv/bin/python benchmarks/index_methods.py --run runs/idx-base \\
        --train-epochs 0.2 --methods rqkmeans rqvae-authors
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, machine

os.environ.setdefault("TQDM_MININTERVAL", "10")

import numpy as np  # noqa: E402

from gensar.config import apply_overrides, validate  # noqa: E402
from gensar.ids.build import build_identifiers  # noqa: E402
from gensar.ids.config import IndexConfig  # noqa: E402

#: name -> IndexConfig overrides (everything else at the defaults of this version)
METHODS: dict[str, list[str]] = {
    "rqvae-authors": ["method=rqvae", "checkpoint=collisions"],
    "rqvae-converged": ["method=rqvae", "checkpoint=converged"],
    "rqkmeans": ["method=rqkmeans"],
    "rqkmeans-balanced": ["method=rqkmeans", "balanced=true"],
    # the semantic side's share of the shared levels' input variance (default 0.7)
    "rqkmeans-w0.5": ["method=rqkmeans", "semantic_weight=0.5"],
    "rqkmeans-w0.3": ["method=rqkmeans", "semantic_weight=0.3"],
    # one shared level instead of two: the first code keeps the text-heavy grouping
    # (modal share), the recommendation identifier gets three collaborative codes
    "rqkmeans-m1": ["method=rqkmeans", "shared_levels=1", "specific_levels=3"],
}


def index_row(
    dataset: Path, base: Path, work: Path, overrides: list[str], reuse: bool = False
) -> dict[str, Any]:
    """Build the identifiers of one method in ``work`` (embeddings copied from ``base``);
    ``reuse``: read the report of identifiers an earlier call built there."""
    report_file = work / "identifiers" / "index_report.json"
    if reuse and report_file.is_file():
        report = json.loads(report_file.read_text())
        timings = report.get("timings_s", {})
        # "total" already sums the parts (adding it too doubled the figure)
        seconds = timings.get("total", sum(timings.values()))
    else:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base / "embeddings", work / "embeddings")
        config = validate(IndexConfig, apply_overrides({}, overrides), source="--set")
        started = time.perf_counter()
        report = build_identifiers(dataset, work, config, progress=False)
        seconds = time.perf_counter() - started
    diag = report["diagnostics"]["by_level"]
    learned = [r for r in report["codebook_usage"] if not r["disambiguation"]]
    return {
        "overrides": overrides,
        "index_seconds": round(seconds, 1),
        "fvu": {
            k: round(v["fraction_unexplained"], 4) for k, v in report["reconstruction"].items()
        },
        "collisions": report["collision_rate"],
        "disambiguated": report["disambiguated"],
        "min_usage": min(r["usage"] for r in learned),
        "usage": {r["level"]: [r["usage"], round(r["perplexity"], 1)] for r in learned},
        "best_epoch": report["training"].get("best_epoch"),
        "agreement": diag,
        "query_groups": report["diagnostics"]["query_groups"],
    }


def trained_row(trained: Path) -> dict[str, Any]:
    """The figures :func:`learning_speed.short_training` returns, from its model card."""
    card = json.loads((trained / "model" / "gensar.json").read_text())
    last = card["validation_history"][-1]
    return {
        "train_minutes": round(card["training"]["train_seconds"] / 60, 1),
        "valid_rec_ndcg10": round(last["recommendation/NDCG@10"], 4),
        "valid_search_ndcg10": round(last["search/NDCG@10"], 4),
    }


def full_catalogue_search_recall(
    model_dir: Path, dataset_dir: Path, candidates_dir: Path, samples: int, k: int = 10
) -> dict[str, float]:
    """Recall@k of constrained beam search over the whole catalogue, validation search subset."""
    from gensar.data import load_dataset, schema
    from gensar.evaluation import metrics
    from gensar.evaluation.candidates import CandidateSet, load_candidates
    from gensar.evaluation.runner import full_catalogue_rows
    from gensar.families.gensar.config import GenSARSection
    from gensar.families.gensar.ranking import GenSARRanker

    dataset = load_dataset(dataset_dir)
    cands = load_candidates(candidates_dir, schema.SEARCH, "valid")
    rows = full_catalogue_rows(len(cands), samples, seed=0)
    subset = CandidateSet(cands.task, cands.split, cands.frame[rows], cands.path)
    ranker = GenSARRanker.for_run(model_dir, GenSARSection())
    ranker.fit(dataset)
    frame = subset.samples(dataset)
    targets = subset.target_item_ids
    ranks = np.empty(len(rows))
    started = time.perf_counter()
    for start in range(0, len(rows), 64):
        chunk = frame.slice(start, 64)
        ranks[start : start + chunk.height] = metrics.rank_in_topk(
            ranker.top_k(chunk, 20), targets[start : start + chunk.height]
        ).rank()  # a top-k list has no ties
    return {
        "samples": len(rows),
        f"recall@{k}": round(float(np.mean(ranks <= k)), 4),
        "recall@20": round(float(np.mean(ranks <= 20)), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="Run dir with embeddings/.")
    parser.add_argument("--dataset", type=Path, default=Path("runs/data/amazon-scientific"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--train-epochs", type=float, default=0.0)
    parser.add_argument("--full-samples", type=int, default=500)
    parser.add_argument("--work", type=Path, default=Path("runs/index-methods"))
    parser.add_argument("--set", dest="train_overrides", action="append", default=[])
    parser.add_argument(
        "--tag",
        default="",
        help="row name suffix, 'method (tag)': keeps a run with --set training overrides "
        "apart from the method's own row",
    )
    parser.add_argument(
        "--results",
        default="index_methods",
        help="results file name under benchmarks/results/ (a comparison on other embeddings "
        "goes to a file of its own)",
    )
    parser.add_argument(
        "--reuse-trained",
        action="store_true",
        help="read the identifiers and the short training an earlier (interrupted) call "
        "left in --work and runs/learning instead of building them again",
    )
    args = parser.parse_args(argv)
    out = RESULTS / args.results
    if not (args.run / "embeddings").is_dir():
        print(f"error: no embeddings/ in {args.run}; run `gensar embed` first", file=sys.stderr)
        return 2

    results = (
        json.loads(out.with_suffix(".json").read_text())
        if out.with_suffix(".json").exists()
        else {}
    )
    rows: dict[str, Any] = results.get("methods", {})
    for method in args.methods:
        name = f"{method} ({args.tag})" if args.tag else method
        work = args.work / name.replace(" ", "_").replace("(", "").replace(")", "")
        print(f"== {name}: identifiers", flush=True)
        row = index_row(args.dataset, args.run, work, METHODS[method], args.reuse_trained)
        row["machine"] = machine()
        if args.train_epochs > 0:
            from learning_speed import short_training

            from gensar.evaluation.candidates import build_candidates
            from gensar.run import load_run_config

            shared = args.work / "candidates-source"
            config = load_run_config(None, [], dataset=args.dataset, run_dir=shared)
            build_candidates(args.dataset, shared, config.candidates)
            shutil.rmtree(work / "candidates", ignore_errors=True)
            shutil.copytree(shared / "candidates", work / "candidates")
            trained = Path("runs/learning") / f"index-{name}"
            if args.reuse_trained and (trained / "model" / "gensar.json").is_file():
                train = trained_row(trained)
            else:
                print(f"== {name}: {args.train_epochs} epochs of GenSAR", flush=True)
                train, trained = short_training(
                    work, args.dataset, f"index-{name}", args.train_epochs, args.train_overrides
                )
            print(f"== {name}: full-catalogue search", flush=True)
            full = full_catalogue_search_recall(
                trained / "model", args.dataset, trained, args.full_samples
            )
            row["downstream"] = {
                "epochs": args.train_epochs,
                "train_overrides": args.train_overrides,
                "train_minutes": train["train_minutes"],
                "valid_rec_ndcg10": train["valid_rec_ndcg10"],
                "valid_search_ndcg10": train["valid_search_ndcg10"],
                "valid_search_full_recall10": full["recall@10"],
                "valid_search_full_recall20": full["recall@20"],
                "full_samples": full["samples"],
            }
        elif name in rows and "downstream" in rows[name]:
            row["downstream"] = rows[name]["downstream"]  # identifiers unchanged by settings
        if out.with_suffix(".json").exists():  # rows another process wrote meanwhile
            rows = {**rows, **json.loads(out.with_suffix(".json").read_text())["methods"]}
        rows[name] = row
        results = {"dataset": str(args.dataset), "embeddings": str(args.run), "methods": rows}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
        out.with_suffix(".md").write_text(render(results) + "\n")
    print(render(results))
    return 0


def _first(row: dict[str, Any], kind: str, key: str) -> float:
    return row["agreement"][kind][0][key]


def render(results: dict[str, Any]) -> str:
    rows = results["methods"]
    lines = [
        f"# Identifier methods on {Path(results['dataset']).name}",
        "",
        "Written by `benchmarks/index_methods.py` (same MiniLM + SASRec embeddings for every",
        "method; validation data only). FVU: fraction of variance unexplained by the",
        "identifier's code vectors. Modal share: mean over query groups of 5+ items of the share",
        "of the group's most common first code (random: the codes shuffled over items).",
        "",
        "| method | index s | FVU sem | FVU collab | coll. argmax sem/collab | after Sinkhorn | final "
        "| min usage | 1st-code modal share (random) | 1st-code NMI query (random) "
        "| 1st-code NMI category (random) |",
        "|---|---:|---:|---:|---|---|---|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        c = r["collisions"]
        lines.append(
            f"| {name} | {r['index_seconds']:.0f} | {r['fvu']['semantic']:.3f} | "
            f"{r['fvu']['collaborative']:.3f} | "
            f"{c['semantic']['argmax']:.2%} / {c['collaborative']['argmax']:.2%} | "
            f"{c['semantic']['sinkhorn']:.2%} / {c['collaborative']['sinkhorn']:.2%} | "
            f"{c['semantic']['final']:.2%} / {c['collaborative']['final']:.2%} | "
            f"{r['min_usage']:.1%} | "
            f"{_first(r, 'semantic', 'modal_share_query'):.3f} "
            f"({_first(r, 'semantic', 'random_modal_share_query'):.3f}) | "
            f"{_first(r, 'semantic', 'nmi_query'):.3f} "
            f"({_first(r, 'semantic', 'random_nmi_query'):.3f}) | "
            f"{_first(r, 'semantic', 'nmi_category'):.3f} "
            f"({_first(r, 'semantic', 'random_nmi_category'):.3f}) |"
        )
    lines += [
        "",
        "Agreement by prefix depth (semantic identifier; depth j = the first j codes):",
        "",
        "| method | depth | prefixes | modal share (random) | NMI query (random) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        for d in r["agreement"]["semantic"]:
            lines.append(
                f"| {name} | {d['depth']} ({d['level']}) | {d['prefixes']} | "
                f"{d['modal_share_query']:.3f} ({d['random_modal_share_query']:.3f}) | "
                f"{d['nmi_query']:.3f} ({d['random_nmi_query']:.3f}) |"
            )
    trained = {n: r["downstream"] for n, r in rows.items() if "downstream" in r}
    if trained:
        lines += [
            "",
            "Downstream, the same short GenSAR training for every method "
            "(`benchmarks/learning_speed.py` harness, exact candidate scoring, 1,000 validation "
            "samples per task; full-catalogue search by constrained beam search, 20 beams, on a "
            "fixed validation subset):",
            "",
            "| method | epochs | train min | valid rec NDCG@10 | valid search NDCG@10 "
            "| valid search full-catalogue Recall@10 | Recall@20 | samples |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, d in trained.items():
            lines.append(
                f"| {name} | {d['epochs']} | {d['train_minutes']} | {d['valid_rec_ndcg10']:.4f} "
                f"| {d['valid_search_ndcg10']:.4f} | {d['valid_search_full_recall10']:.4f} "
                f"| {d['valid_search_full_recall20']:.4f} | {d['full_samples']} |"
            )
        lines += _over_seeds(trained)
    return "\n".join(lines)


def _over_seeds(trained: dict[str, dict[str, Any]]) -> list[str]:
    """Mean (min-max) over training seeds of the methods run with ``--tag seedN``
    (``--set train.seed=N``; the untagged row is seed 0). A seed also draws its own
    1,000 validation samples, so the methods are compared pair-wise within a seed."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for name, d in trained.items():
        base, _, tag = name.partition(" (seed")
        if tag or f"{name} (seed1)" in trained:
            groups.setdefault(base, []).append(d)
    groups = {k: v for k, v in groups.items() if len(v) > 1}
    if not groups:
        return []
    keys = ("valid_rec_ndcg10", "valid_search_ndcg10", "valid_search_full_recall10")

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})"

    lines = [
        "",
        "Over training seeds (`--tag seedN --set train.seed=N`; each seed also draws its own "
        "validation samples, so compare methods within a seed): mean (min-max).",
        "",
        "| method | seeds | valid rec NDCG@10 | valid search NDCG@10 "
        "| valid search full-catalogue Recall@10 |",
        "|---|---:|---:|---:|---:|",
    ]
    for base, runs in groups.items():
        lines.append(
            f"| {base} | {len(runs)} | "
            + " | ".join(cell([r[k] for r in runs]) for k in keys)
            + " |"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
