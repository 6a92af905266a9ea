"""Benchmark of the whole index stage on a prepared dataset (default: amazon-scientific).

Times the three parts of the stage as a user runs them (text embeddings, SASRec
collaborative embeddings, codebooks + identifier assignment with the default
``index.method``), then checks the identifier targets: semantic fraction of
variance unexplained at most 0.45, first-code modal share of query groups at
least 0.6, 100% unique identifiers after the final step, at least 90% of the
codes of every level used, and the whole stage within 10 minutes.
(``benchmarks/index_methods.py`` compares the methods on the same embeddings.)

It also re-runs the assignment of the same trained RQ-VAE with the other
setting of ``sinkhorn_free_codes_only`` (whether a colliding item may move only
onto last-level codes no other item with its prefix holds), to show what that
option changes.

    .venv/bin/python benchmarks/index_stage.py                      # SASRec as the stage runs it
    .venv/bin/python benchmarks/index_stage.py --collab svd         # stand-in, no SASRec
    .venv/bin/python benchmarks/index_stage.py --set epochs=50      # any IndexConfig override

Writes ``benchmarks/results/index_stage.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from gensar.config import apply_overrides, validate
from gensar.data.dataset import load_dataset
from gensar.embed.semantic import SemanticConfig, embed_items
from gensar.embed.store import ItemEmbeddings
from gensar.ids.build import assign_all, build_identifiers
from gensar.ids.config import IndexConfig
from gensar.ids.identifiers import WEIGHTS
from gensar.ids.rqkmeans import load_index_model
from gensar.io import write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BUDGET_S = 600.0
MAX_FVU = 0.45
MIN_MODAL_SHARE = 0.6
MIN_USAGE = 0.90


def svd_collab(dataset_dir: Path, run_dir: Path, dim: int = 64, seed: int = 0) -> dict[str, Any]:
    """Stand-in collaborative embeddings: SVD of the normalised item co-occurrence matrix.

    Built from the leakage-free rec training sequences (neighbours within 3
    positions); used only when SASRec is not wanted or not available.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import svds

    start = time.perf_counter()
    dataset = load_dataset(dataset_dir)
    index = dataset.item_index
    rows: list[int] = []
    cols: list[int] = []
    for seq in dataset.rec_training_sequences().values():
        ids = [index[i] for i in seq]
        for a in range(len(ids)):
            for b in range(max(0, a - 3), a):
                rows += [ids[a], ids[b]]
                cols += [ids[b], ids[a]]
    n = len(index)
    counts = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    scale = sp.diags(1.0 / np.sqrt(np.asarray(counts.sum(1)).ravel() + 1.0))
    u, s, _ = svds(scale @ counts @ scale, k=dim, random_state=seed)
    matrix = (u * np.sqrt(s)).astype(np.float32)
    ItemEmbeddings(dataset.item_ids, matrix, {"kind": "svd stand-in"}).save(
        run_dir / "embeddings" / "collab.safetensors"
    )
    return {"method": "co-occurrence SVD stand-in", "seconds": time.perf_counter() - start}


def sasrec_collab(dataset_dir: Path, run_dir: Path) -> dict[str, Any]:
    from gensar.embed.collab import train_collaborative
    from gensar.embed.sasrec import SASRecConfig

    start = time.perf_counter()
    summary = train_collaborative(
        dataset_dir, run_dir, SASRecConfig(), progress=False, log=lambda *_: None
    )
    return {
        "method": "SASRec (gensar.embed.collab, default settings)",
        "seconds": time.perf_counter() - start,
        "summary": {k: v for k, v in summary.items() if isinstance(v, int | float | str)},
    }


def other_sinkhorn_rates(run_dir: Path, dataset_dir: Path) -> dict[str, dict[str, float]]:
    """Assignment of the trained model again, with ``sinkhorn_free_codes_only`` flipped."""
    import torch

    from gensar.ids.build import load_inputs, needed_towers

    model = load_index_model(run_dir / "identifiers" / WEIGHTS)
    flipped = not model.config.sinkhorn_free_codes_only
    model.config = model.config.model_copy(update={"sinkhorn_free_codes_only": flipped})
    inputs, _ = load_inputs(
        run_dir, load_dataset(dataset_dir).item_ids, needed_towers(model.config)
    )
    torch.set_num_threads(1)
    steps = assign_all(model, inputs)
    return {kind: step.rates() for kind, step in steps.items()}


def main(argv: list[str] | None = None) -> int:
    from gensar.logs import console_logging

    console_logging()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", type=Path, default=REPO / "runs" / "data" / "amazon-scientific"
    )
    parser.add_argument("--run", type=Path, default=REPO / "runs" / "bench-index-stage")
    parser.add_argument("--collab", choices=["sasrec", "svd", "reuse"], default="sasrec")
    parser.add_argument("--use-cache", action="store_true", help="Allow cached text embeddings.")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="IndexConfig key=value"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "index_stage")
    args = parser.parse_args(argv)

    if not (args.dataset / "manifest.json").is_file():
        print(
            f"error: no prepared dataset at {args.dataset}; run `gensar prepare` first",
            file=sys.stderr,
        )
        return 2
    config = validate(IndexConfig, apply_overrides({}, args.overrides), source="--set")
    load_before = os.getloadavg()
    timings: dict[str, float] = {}

    start = time.perf_counter()
    embed_items(args.dataset, args.run, SemanticConfig(cache=args.use_cache))
    timings["text_embeddings"] = time.perf_counter() - start

    if args.collab == "sasrec":
        collab = sasrec_collab(args.dataset, args.run)
    elif args.collab == "svd":
        collab = svd_collab(args.dataset, args.run)
    else:
        collab = {"method": "reused existing collab.safetensors", "seconds": 0.0}
    timings["collaborative_embeddings"] = collab["seconds"]

    start = time.perf_counter()
    report = build_identifiers(args.dataset, args.run, config, progress=False)
    timings["identifiers"] = time.perf_counter() - start
    timings["total"] = sum(timings.values())
    other = other_sinkhorn_rates(args.run, args.dataset)

    learned = [row for row in report["codebook_usage"] if not row["disambiguation"]]
    rates = report["collision_rate"]
    first = report["diagnostics"]["by_level"]["semantic"][0]
    checks = {
        f"stage within {BUDGET_S:.0f} s": timings["total"] <= BUDGET_S,
        f"semantic variance unexplained <= {MAX_FVU}": report["reconstruction"]["semantic"][
            "fraction_unexplained"
        ]
        <= MAX_FVU,
        f"first-code modal share of query groups >= {MIN_MODAL_SHARE}": first["modal_share_query"]
        >= MIN_MODAL_SHARE,
        **{
            f"{kind} 100% unique after the final step": rates[kind]["final"] == 0.0
            for kind in rates
        },
        f"every level uses >= {MIN_USAGE:.0%} of its codes": all(
            r["usage"] >= MIN_USAGE for r in learned
        ),
    }
    result = {
        "dataset": str(args.dataset),
        "items": report["items"],
        "variant": report["variant"],
        "method": report["method"],
        "collaborative": collab,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "rqvae_timings_s": report["timings_s"],
        "best_epoch": report["training"].get("best_epoch"),
        "diagnostics": report["diagnostics"],
        "collision_rate": rates,
        "collision_rate_other_sinkhorn": {
            "sinkhorn_free_codes_only": not config.sinkhorn_free_codes_only,
            **other,
        },
        "codebook_usage": report["codebook_usage"],
        "reconstruction": report["reconstruction"],
        "settings": report["settings"],
        "checks": checks,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "command": "python benchmarks/index_stage.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    markdown = render(result)
    print(markdown)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), result)
    args.out.with_suffix(".md").write_text(markdown + "\n", encoding="utf-8")
    return 0 if all(checks.values()) else 1


def render(result: dict[str, Any]) -> str:
    t = result["timings_s"]
    other = result["collision_rate_other_sinkhorn"]
    lines = [
        f"# Index stage on {Path(result['dataset']).name} ({result['items']} items, "
        f"{result['method']}, variant {result['variant']})",
        "",
        f"Command: `{result['command'].strip()}`; machine: {result['machine']['cpus']} CPUs, load average "
        f"{result['machine']['load_average_before'][0]} before / {result['machine']['load_average_after'][0]} after "
        "(shared machine: timings are noisy).",
        "",
        "| part | seconds |",
        "|---|---:|",
        f"| text embeddings (all-MiniLM-L6-v2, no cache) | {t['text_embeddings']:.1f} |",
        f"| collaborative embeddings ({result['collaborative']['method']}) | {t['collaborative_embeddings']:.1f} |",
        f"| identifiers ({result['method']}"
        + (f", kept epoch {result['best_epoch']}" if result["best_epoch"] else "")
        + f") + assignment | {t['identifiers']:.1f} |",
        f"| **whole stage** | **{t['total']:.1f}** |",
        "",
        f"| identifier | argmax | after Sinkhorn | final | after Sinkhorn, "
        f"free codes only = {other['sinkhorn_free_codes_only']} |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, rates in result["collision_rate"].items():
        lines.append(
            f"| {kind} | {rates['argmax']:.2%} | {rates['sinkhorn']:.2%} | {rates['final']:.2%} "
            f"| {other[kind]['sinkhorn']:.2%} |"
        )
    lines += ["", "| level | codes used | of | usage | perplexity |", "|---|---:|---:|---:|---:|"]
    for row in result["codebook_usage"]:
        name = row["level"] + (" (disambiguation)" if row["disambiguation"] else "")
        lines.append(
            f"| {name} | {row['used']} | {row['of']} | {row['usage']:.1%} | {row['perplexity']:.1f} |"
        )
    recon = ", ".join(
        f"{k} {v['fraction_unexplained']:.3f}" for k, v in result["reconstruction"].items()
    )
    lines += [
        "",
        f"Reconstruction (fraction of variance unexplained): {recon}.",
        "",
        "Agreement of identifier prefixes with queries (query groups of 5+ items; random = "
        "codes shuffled over items):",
        "",
        "| identifier | depth | modal share (random) | NMI query (random) | NMI category (random) |",
        "|---|---|---:|---:|---:|",
    ]
    for kind, rows in result["diagnostics"]["by_level"].items():
        for r in rows:
            lines.append(
                f"| {kind} | {r['depth']} ({r['level']}) | {r['modal_share_query']:.3f} "
                f"({r['random_modal_share_query']:.3f}) | {r['nmi_query']:.3f} "
                f"({r['random_nmi_query']:.3f}) | {r['nmi_category']:.3f} "
                f"({r['random_nmi_category']:.3f}) |"
            )
    lines += [
        "",
        "| check | passed |",
        "|---|---|",
    ]
    lines += [f"| {name} | {'yes' if ok else 'NO'} |" for name, ok in result["checks"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
