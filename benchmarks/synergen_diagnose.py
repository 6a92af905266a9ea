"""Where a trained SynerGen's candidate-list quality comes from, on the *validation* lists.

    PYTHONPATH=src .venv/bin/python benchmarks/synergen_diagnose.py --run runs/synergen/X [--name N]

For one trained run (``RUN/synergen``) and the benchmark's validation lists
(built by ``synergen_run.py`` under the same run folder), NDCG@10 per task of:

* ``retrieval``: the retrieval head's dot products;
* ``ranking``: the ranking head;
* ``sum``: both z-scored per list and added (``synergen_run.py``'s third scorer);
* each of retrieval and sum with the retrieval score corrected to ``retrieval - a*log(1 + pop)``
  for a grid of ``a`` (pop = the model's training targets per item): how much of the
  retrieval score is popularity that the popularity-sampled candidate lists cancel out.

Prints a table and writes ``benchmarks/results/<name>.{md,json}`` when ``--name`` is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gensar.data.dataset import load_dataset  # noqa: E402
from gensar.evaluation.candidates import load_candidates  # noqa: E402
from gensar.evaluation.metrics import per_sample_ndcg, rank_of_target  # noqa: E402
from gensar.families.synergen import SynerGenRanker, load_model  # noqa: E402
from gensar.utils import torch_threads  # noqa: E402

from _common import REPO, write_results  # noqa: E402

TASKS = ("recommendation", "search")
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
SCORERS = ("retrieval", "ranking", "sum")


def _z(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp(min=1e-6)


def scorer_grid(ranker: SynerGenRanker, dataset, cands) -> dict[str, float]:
    """NDCG@10 on one candidate set of every (scorer, popularity correction a) pair,
    named ``"retrieval a=0.5"``; ``ranking`` has no correction (one entry, a=0)."""
    model = ranker.loaded.model
    with torch_threads(ranker.loaded.config.threads), torch.no_grad():
        states = ranker._states(cands.samples(dataset))
        rows = ranker._rows(cands.candidates)
        ret = model.retrieval_scores(states, rows).double()
        rank = model.ranking_scores(states, rows).double()
        log_pop = ranker.log_popularity.double()[rows]
    variants = {"ranking a=0": rank}
    for a in ALPHAS:
        corrected = ret - a * log_pop
        variants[f"retrieval a={a:g}"] = corrected
        variants[f"sum a={a:g}"] = _z(corrected) + _z(rank)
    return {
        name: float(per_sample_ndcg(rank_of_target(s.numpy(), cands.target_index), 10).mean())
        for name, s in variants.items()
    }


def choose(grids: dict[str, dict[str, float]]) -> tuple[str, dict[str, float], dict]:
    """(scorer, task -> a, validation NDCG@10 per task) maximising the mean over tasks,
    each task with its own best correction a for that scorer."""
    best = None
    for scorer in SCORERS:
        picks = {}
        for task, grid in grids.items():
            mine = {k: v for k, v in grid.items() if k.startswith(scorer + " ")}
            name = max(mine, key=mine.get)
            picks[task] = (float(name.split("a=")[1]), mine[name])
        mean = float(np.mean([v for _, v in picks.values()]))
        if best is None or mean > best[0]:
            best = (mean, scorer, picks)
    _, scorer, picks = best
    return scorer, {t: a for t, (a, _) in picks.items()}, {t: v for t, (_, v) in picks.items()}


def diagnose(run_dir: Path, dataset_dir: Path) -> dict:
    dataset = load_dataset(dataset_dir)
    ranker = SynerGenRanker(load_model(run_dir / "synergen"))
    ranker.fit(dataset)
    return {t: scorer_grid(ranker, dataset, load_candidates(run_dir, t, "valid")) for t in TASKS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--dataset", default=str(REPO / "runs/data/amazon-scientific"))
    parser.add_argument("--name", default=None, help="results file name (none: print only)")
    args = parser.parse_args()
    found = diagnose(Path(args.run), Path(args.dataset))
    lines = [
        f"# SynerGen candidate scorers on the validation lists ({args.run})",
        "",
        "| scorer | rec NDCG@10 | search NDCG@10 |",
        "|---|---:|---:|",
    ]
    for name in found["recommendation"]:
        lines.append(
            f"| {name} | {found['recommendation'][name]:.4f} | {found['search'][name]:.4f} |"
        )
    text = "\n".join(lines)
    if args.name:
        write_results(args.name, text, {"run": args.run, "valid_ndcg10": found})
    else:
        print(text)


if __name__ == "__main__":
    main()
