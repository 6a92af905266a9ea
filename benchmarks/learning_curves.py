"""Validation learning curves of a benchmark's trained generative models, one plot.

    .venv/bin/python benchmarks/learning_curves.py runs/benchmarks/amazon-scientific

Reads each run's own metrics log (nothing is retrained):

* GenSAR-family runs: ``seed-N/<model>/training/metrics.jsonl`` (``kind: valid`` rows,
  candidate-list NDCG@10 on the validation subset, per epoch);
* GenSR: ``seed-N/gensr/gensr/metrics.jsonl`` (candidate-list NDCG@10 on its validation
  subset, every ``eval_every`` steps);
* SynerGen: ``seed-N/synergen/synergen/metrics.jsonl`` (full-catalogue NDCG@10 of the
  retrieval head on its validation subset, per epoch: a different, much lower scale,
  so it has its own panel).

x is training minutes (each family's own clock, validation excluded where it records
it). Writes ``benchmarks/results/<out>-curves.png`` and a small table ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine, write_results  # noqa: E402

TASKS = ("recommendation", "search")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def gensar_curve(run: Path) -> dict[str, list[tuple[float, float]]] | None:
    log = run / "training" / "metrics.jsonl"
    if not log.is_file():
        return None
    rows = _rows(log)
    elapsed, out = 0.0, {t: [] for t in TASKS}
    for row in rows:
        if "elapsed" in row:
            elapsed = row["elapsed"]
        if row.get("kind") == "valid":
            for task in TASKS:
                if f"{task}/NDCG@10" in row:
                    out[task].append((elapsed / 60, row[f"{task}/NDCG@10"]))
    return out


def gensr_curve(run: Path) -> dict[str, list[tuple[float, float]]] | None:
    log = run / "gensr" / "metrics.jsonl"
    if not log.is_file():
        return None
    out = {t: [] for t in TASKS}
    for row in _rows(log):
        for task in TASKS:
            if f"{task}_ndcg10" in row:
                out[task].append((row["train_seconds"] / 60, row[f"{task}_ndcg10"]))
    return out


def synergen_curve(run: Path) -> dict[str, list[tuple[float, float]]] | None:
    log = run / "synergen" / "metrics.jsonl"
    if not log.is_file():
        return None
    out, seconds = {t: [] for t in TASKS}, 0.0
    for row in _rows(log):
        seconds += row.get("epoch_seconds", 0.0)
        for task in TASKS:
            if f"{task}_ndcg10" in row:
                out[task].append((seconds / 60, row[f"{task}_ndcg10"]))
    return out


READERS = (gensr_curve, synergen_curve, gensar_curve)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark_out", type=Path, help="a benchmark's out folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None, help="results name (default: <out>-curves)")
    args = parser.parse_args()
    seed_dir = args.benchmark_out / f"seed-{args.seed}"
    curves: dict[str, tuple[str, dict]] = {}
    for run in sorted(p for p in seed_dir.iterdir() if p.is_dir()):
        for reader in READERS:
            curve = reader(run)
            if curve and any(curve.values()):
                curves[run.name] = (reader.__name__.removesuffix("_curve"), curve)
                break
    if not curves:
        raise SystemExit(f"error: {seed_dir}: no metrics logs of trained models found")
    name = args.name or f"{args.benchmark_out.name}-curves"

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    lines = [
        f"# Validation learning curves: {args.benchmark_out}",
        "",
        "| run | family | task | validations | first | best | last | minutes |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for run, (family, curve) in curves.items():
        for task in TASKS:
            points = curve.get(task) or []
            if not points:
                continue
            ax = axes[2] if family == "synergen" else axes[0 if task == "recommendation" else 1]
            label = f"{run} ({task[:3]})" if family == "synergen" else run
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", ms=3, label=label)
            values = [p[1] for p in points]
            lines.append(
                f"| {run} | {family} | {task} | {len(points)} | {values[0]:.4f} | "
                f"{max(values):.4f} | {values[-1]:.4f} | {points[-1][0]:.1f} |"
            )
    titles = (
        "recommendation: candidate-list NDCG@10",
        "search: candidate-list NDCG@10",
        "SynerGen: full-catalogue NDCG@10",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training minutes")
        if ax.has_data():
            ax.legend(fontsize=7)
    axes[0].set_ylabel("validation NDCG@10 (subset)")
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)
    lines += [
        "",
        "Validation subsets as each family trains (GenSAR and GenSR: candidate lists;",
        "SynerGen: the whole catalogue, its model-selection metric). Command:",
        f"`python benchmarks/learning_curves.py {args.benchmark_out}`.",
    ]
    write_results(name, "\n".join(lines) + "\n", {"curves": curves, "machine": machine()})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
