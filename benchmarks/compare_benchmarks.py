"""Are two benchmark results the same? Metric by metric, per model, task and seed.

For a change that must not move any figure (a refactoring, a new seam): run the
same benchmark YAML before and after it, in one environment, and compare the two
``results.json``. Prints a table (per model and task: metrics compared, how many
are identical, the largest absolute difference) and writes it under
benchmarks/results/.

    .venv/bin/python benchmarks/compare_benchmarks.py BEFORE.json AFTER.json \\
        --label-a "6ec65e5 (before the seam)" --label-b "db5eb08 (the seam)" --name seam_equivalence
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import write_results


def per_seed_metrics(summary: dict) -> dict[tuple[str, str, str], dict[str, float]]:
    """(model, task, seed) -> metrics, from a results.json."""
    out = {}
    for seed, rows in summary["per_seed"].items():
        for row in rows:
            out[(row["model"], row["task"], seed)] = row["metrics"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--label-a", default="A")
    parser.add_argument("--label-b", default="B")
    parser.add_argument("--name", default="benchmark_comparison")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    a, b = (json.loads(p.read_text()) for p in (args.a, args.b))
    ma, mb = per_seed_metrics(a), per_seed_metrics(b)
    rows, identical_all, total_all = [], 0, 0
    for key in sorted(set(ma) | set(mb)):
        if key not in ma or key not in mb:
            rows.append((key, 0, 0, "only in " + (args.label_a if key in ma else args.label_b)))
            continue
        names = sorted(set(ma[key]) & set(mb[key]))
        diffs = [abs(ma[key][n] - mb[key][n]) for n in names]
        same = sum(d == 0 for d in diffs)
        identical_all += same
        total_all += len(names)
        rows.append((key, len(names), same, f"{max(diffs, default=0.0):.2g}"))
    lines = [
        f"A: {args.label_a} (`{args.a}`); B: {args.label_b} (`{args.b}`). "
        + (args.note + " " if args.note else "")
        + f"{identical_all} of {total_all} per-seed metrics identical.",
        "",
        "| model | task | seed | metrics | identical | largest difference |",
        "|---|---|---|---:|---:|---:|",
    ]
    lines += [f"| {m} | {t} | {s} | {n} | {same} | {d} |" for (m, t, s), n, same, d in rows]
    text = "\n".join(lines) + "\n"
    write_results(
        args.name,
        text,
        {"a": str(args.a), "b": str(args.b), "identical": identical_all, "total": total_all},
        script="compare_benchmarks",
    )


if __name__ == "__main__":
    main()
