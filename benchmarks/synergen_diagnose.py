"""Where a trained SynerGen's candidate-list quality comes from, on the *validation* lists.

    PYTHONPATH=src .venv/bin/python benchmarks/synergen_diagnose.py --run runs/synergen/X [--name N]

For one trained run (``RUN/synergen``) and the benchmark's validation lists
(built by ``synergen_run.py`` under the same run folder), NDCG@10 per task of:

* ``retrieval``: the retrieval head's dot products;
* ``ranking``: the ranking head;
* ``sum``: both z-scored per list and added (``synergen_run.py``'s third scorer);
* ``retrieval - a*log(pop)`` for a grid of ``a``: the retrieval head with a log-popularity
  correction (pop = the model's training targets per item, +1), i.e. how much of the
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
from gensar.families.synergen import data as D  # noqa: E402
from gensar.utils import torch_threads  # noqa: E402

from _common import REPO, write_results  # noqa: E402

TASKS = ("recommendation", "search")
ALPHAS = (0.25, 0.5, 0.75, 1.0)


def _z(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp(min=1e-6)


def diagnose(run_dir: Path, dataset_dir: Path) -> dict:
    dataset = load_dataset(dataset_dir)
    loaded = load_model(run_dir / "synergen")
    ranker = SynerGenRanker(loaded)
    ranker.fit(dataset)
    windows = D.training_windows(ranker.streams, D.heldout_cutoffs(dataset), loaded.config.max_len)
    log_pop = torch.from_numpy(np.log(D.item_popularity(windows, len(dataset.item_ids)) + 1.0))
    out: dict = {}
    model = loaded.model
    with torch_threads(loaded.config.threads), torch.no_grad():
        for task in TASKS:
            cands = load_candidates(run_dir, task, "valid")
            samples = cands.samples(dataset)
            states = ranker._states(samples)
            rows = ranker._rows(cands.candidates)
            ret = model.retrieval_scores(states, rows).double()
            rank = model.ranking_scores(states, rows).double()
            scorers = {"retrieval": ret, "ranking": rank, "sum": _z(ret) + _z(rank)}
            for a in ALPHAS:
                scorers[f"retrieval - {a:g}*log(pop)"] = ret - a * log_pop[rows]
            out[task] = {
                name: float(
                    per_sample_ndcg(rank_of_target(s.numpy(), cands.target_index), 10).mean()
                )
                for name, s in scorers.items()
            }
    return out


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
