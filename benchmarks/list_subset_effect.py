"""How a benchmark's seeded list subset (evaluate.candidate_lists) moves a cheap model's
figure: SASRec's test NDCG@10 on every list and on the subset, per seed, from the runs a
benchmark trained (nothing is retrained).

    .venv/bin/python benchmarks/list_subset_effect.py [--config benchmarks/amazon-scientific.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gensar.benchmark import load_benchmark, run_config_for, slug  # noqa: E402
from gensar.data import load_dataset  # noqa: E402
from gensar.evaluation.candidates import load_candidates  # noqa: E402
from gensar.evaluation.runner import evaluate_tasks  # noqa: E402
from gensar.families.registry import get_family  # noqa: E402

from _common import write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("benchmarks/amazon-scientific.yaml"))
    parser.add_argument("--model", default="SASRec")
    parser.add_argument(
        "--task", action="append", choices=["recommendation", "search"], default=None
    )
    args = parser.parse_args()
    bench = load_benchmark(args.config)
    dataset = load_dataset(bench.dataset.prepared)
    spec = next(m for m in bench.models if m.name == args.model)
    tasks = args.task or ["recommendation"]
    rows = []
    for seed in spec.seeds or bench.seeds:
        run = Path(bench.out) / f"seed-{seed}" / slug(spec.name)
        config = run_config_for(bench, spec, seed, run)
        lists = config.evaluate.candidate_lists
        ranker = get_family(spec.family).ranker(run, config, spec.name)
        ranker.fit(dataset, run)
        for task in tasks:
            every = load_candidates(bench.out, task, "test")
            figures = {}
            for label, cands in (("all", every), ("subset", every.subset(lists))):
                (result,) = evaluate_tasks(
                    ranker,
                    dataset,
                    {task: cands},
                    full_samples=1,
                    ties="expected",
                    log=lambda *_: None,
                )
                figures[label] = (len(cands), result.metrics["NDCG@10"])
            rows.append((seed, task, figures))
    lines = [
        f"# {args.model} test NDCG@10: every list vs the benchmark's subset",
        "",
        "| seed | task | every list | NDCG@10 | subset | NDCG@10 |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for seed, task, f in rows:
        lines.append(
            f"| {seed} | {task} | {f['all'][0]:,} | {f['all'][1]:.4f} | {f['subset'][0]:,} | "
            f"{f['subset'][1]:.4f} |"
        )
    lines += [
        "",
        f"Runs of `{args.config}` (out `{bench.out}`); expected ties. Command:",
        f"`python benchmarks/list_subset_effect.py --config {args.config} --model '{args.model}' "
        + " ".join(f"--task {t}" for t in tasks)
        + "`.",
    ]
    write_results(f"list_subset_effect-{slug(args.model)}", "\n".join(lines) + "\n", {"rows": rows})


if __name__ == "__main__":
    main()
