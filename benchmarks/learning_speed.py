"""How fast does the generative model learn on this CPU? One short training run per setting.

Every run starts from the same identifiers and candidate lists of a prepared
amazon-scientific run, trains for the same number of examples, and records the
validation NDCG@10 of both tasks (a fixed subset of the *validation* lists:
nothing here looks at the test split) and the training speed. Results are
appended to benchmarks/results/learning_log.md/.json, one row per setting.

    .venv/bin/python benchmarks/learning_speed.py --run runs/sci --name default
    .venv/bin/python benchmarks/learning_speed.py --run runs/sci --name lr5e-3 --set train.lr=0.005
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from _common import RESULTS, machine

os.environ.setdefault("TQDM_MININTERVAL", "10")

from gensar.families.gensar import gensar_config  # noqa: E402
from gensar.families.gensar.stage import train_gensar  # noqa: E402
from gensar.run import load_run_config  # noqa: E402

LOG_JSON = RESULTS / "learning_log.json"
LOG_MD = RESULTS / "learning_log.md"


def short_training(
    run: Path, dataset: Path, name: str, epochs: float, overrides: list[str], note: str = ""
) -> tuple[dict, Path]:
    """One short training run from ``run``'s identifiers and candidates; its log row and folder.

    The harness settings every row shares: ``epochs`` of the training samples,
    validation NDCG@10 on a fixed subset of 1,000 samples per task, every
    candidate scored exactly. Also used by ``benchmarks/index_methods.py``.
    """
    work = Path("runs/learning") / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for part in ("identifiers", "candidates"):
        shutil.copytree(run / part, work / part)
    if (run / "embeddings").is_dir():  # the vectors of tasks.soft_tokens
        shutil.copytree(run / "embeddings", work / "embeddings")
    settings = [
        f"train.epochs={epochs}",
        "train.eval_samples=1000",
        "train.log_every=100",
        "train.eval_ranking=exact",  # every candidate scored: no beam pruning in the comparison
        *overrides,
    ]
    config = load_run_config(None, settings, dataset=dataset, run_dir=work)
    started = time.perf_counter()
    summary = train_gensar(
        dataset,
        work,
        gensar_config(config),
        candidates_dir=work,
        progress=True,
    )
    seconds = time.perf_counter() - started
    last = summary["validation_history"][-1]
    row = {
        "name": name,
        "settings": overrides,
        "note": note,
        "epochs": epochs,
        "examples_per_second": summary["examples_per_second"],
        "train_minutes": round(summary["train_seconds"] / 60, 1),
        "total_minutes": round(seconds / 60, 1),
        "valid_rec_ndcg10": round(last["recommendation/NDCG@10"], 4),
        "valid_search_ndcg10": round(last["search/NDCG@10"], 4),
        "valid_score_ndcg5": round(last["score"], 4),
        "machine": machine(),
    }
    return row, work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--run", type=Path, required=True, help="A run dir with identifiers/ and candidates/ built."
    )
    parser.add_argument("--dataset", type=Path, default=Path("runs/data/amazon-scientific"))
    parser.add_argument("--name", required=True)
    parser.add_argument("--epochs", type=float, default=0.5)
    parser.add_argument("--note", default="")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()

    row, _ = short_training(
        args.run, args.dataset, args.name, args.epochs, args.overrides, args.note
    )
    log = json.loads(LOG_JSON.read_text()) if LOG_JSON.exists() else []
    log = [r for r in log if r["name"] != args.name] + [row]
    LOG_JSON.write_text(json.dumps(log, indent=2) + "\n")
    lines = [
        "# Learning speed of the generative model (amazon-scientific, validation lists only)",
        "",
        "Written by `benchmarks/learning_speed.py`; each row is one short training run from the same",
        "identifiers; NDCG@10 on a fixed subset of 1,000 validation samples per task (the test split is never used),",
        "every candidate scored exactly (train.eval_ranking=exact).",
        "Examples/s are only comparable between rows measured on an otherwise idle machine.",
        "",
        "| setting | overrides | epochs | ex/s | train min | valid rec NDCG@10 | valid search NDCG@10 | note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in log:
        lines.append(
            f"| {r['name']} | {' '.join(r['settings']) or '(defaults)'} | {r['epochs']} | {r['examples_per_second']:.0f} | "
            f"{r['train_minutes']} | {r['valid_rec_ndcg10']:.4f} | {r['valid_search_ndcg10']:.4f} | {r['note']} |"
        )
    LOG_MD.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
