"""Running the stages of one run in order, skipping those already built.

Each stage records a fingerprint (a hash of the dataset content, its own
settings and the fingerprints of the stages it reads) in ``run_dir/stages.json``;
a stage whose output exists with the same fingerprint is reused, so rerunning a
config after changing only, say, ``train.lr`` retrains the model but keeps the
embeddings and identifiers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gensar.data import load_dataset, schema
from gensar.io import read_json, sha256_text, write_json
from gensar.run import RunConfig

STAGES_FILE = "stages.json"


class StageRecord:
    """Fingerprints of the stages built in a run directory."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / STAGES_FILE
        self.data: dict[str, Any] = read_json(self.path) if self.path.is_file() else {}

    def fingerprint(self, stage: str) -> str | None:
        return self.data.get(stage, {}).get("fingerprint")

    def done(self, stage: str, fingerprint: str, seconds: float) -> None:
        self.data[stage] = {
            "fingerprint": fingerprint,
            "seconds": round(seconds, 2),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        write_json(self.path, self.data)


def _fp(*parts: Any) -> str:
    return sha256_text(*(json.dumps(p, sort_keys=True, default=str) for p in parts))[:16]


def run_stage(
    record: StageRecord,
    name: str,
    fingerprint: str,
    output: Path,
    build: Callable[[], Any],
    log=print,
) -> bool:
    """Build ``output`` unless it exists with the same fingerprint; returns True if built."""
    if output.exists() and record.fingerprint(name) == fingerprint:
        log(f"[{name}] up to date ({output})")
        return False
    log(f"[{name}] building {output} ...")
    started = time.perf_counter()
    build()
    record.done(name, fingerprint, time.perf_counter() - started)
    return True


def stage_fingerprints(config: RunConfig, dataset_hash: str) -> dict[str, str]:
    """The fingerprint of every stage for this config (upstream changes propagate down)."""
    fps: dict[str, str] = {}
    fps["semantic"] = _fp(dataset_hash, config.semantic.model_dump(mode="json"))
    fps["collab"] = _fp(dataset_hash, config.collab.model_dump(mode="json"))
    towers = {
        "joint": ("semantic", "collab"),
        "semantic": ("semantic",),
        "collaborative": ("collab",),
    }[config.index.variant]
    fps["index"] = _fp(config.index.model_dump(mode="json"), *(fps[t] for t in towers))
    fps["candidates"] = _fp(dataset_hash, config.candidates.model_dump(mode="json"))
    fps["train"] = _fp(fps["index"], fps["candidates"], config.gensar().model_dump(mode="json"))
    return fps


def build_run(
    config: RunConfig, *, log=print, candidates_dir: Path | None = None
) -> dict[str, str]:
    """Embeddings -> identifiers -> candidate lists -> trained model, reusing what is built."""
    from gensar.embed.collab import train_collaborative
    from gensar.embed.semantic import embed_items
    from gensar.evaluation.candidates import build_candidates
    from gensar.ids.build import build_identifiers
    from gensar.model.stage import train_gensar

    run_dir = Path(config.run_dir)
    dataset = load_dataset(config.dataset)
    fps = stage_fingerprints(config, dataset.manifest.get("content_hash", ""))
    record = StageRecord(run_dir)
    candidates_dir = candidates_dir or run_dir
    variant = config.index.variant
    if variant in ("joint", "semantic"):
        run_stage(
            record,
            "semantic",
            fps["semantic"],
            run_dir / "embeddings" / "semantic.safetensors",
            lambda: embed_items(config.dataset, run_dir, config.semantic),
            log,
        )
    if variant in ("joint", "collaborative"):
        run_stage(
            record,
            "collab",
            fps["collab"],
            run_dir / "embeddings" / "collab.safetensors",
            lambda: train_collaborative(config.dataset, run_dir, config.collab, log=log),
            log,
        )
    run_stage(
        record,
        "index",
        fps["index"],
        run_dir / "identifiers" / "identifiers.parquet",
        lambda: build_identifiers(config.dataset, run_dir, config.index),
        log,
    )
    run_stage(
        record,
        "candidates",
        fps["candidates"],
        Path(candidates_dir) / "candidates",
        lambda: build_candidates(config.dataset, candidates_dir, config.candidates),
        log,
    )
    run_stage(
        record,
        "train",
        fps["train"],
        run_dir / "model" / "gensar.json",
        lambda: train_gensar(
            config.dataset,
            run_dir,
            config.gensar(),
            candidates_dir=candidates_dir,
            candidates_config=config.candidates,
            log=log,
        ),
        log,
    )
    return fps


def evaluate_run(
    config: RunConfig, *, candidates_dir: Path | None = None, baselines: bool = True, log=print
):
    """Evaluate the run's GenSAR model (and, optionally, the baselines) on the test lists."""
    from gensar.baselines import BM25Search, DenseRetrieval, SASRecBaseline
    from gensar.evaluation.candidates import load_candidates
    from gensar.evaluation.gensar_ranker import GenSARRanker
    from gensar.evaluation.report import write_results
    from gensar.evaluation.runner import evaluate_models

    run_dir = Path(config.run_dir)
    candidates_dir = candidates_dir or run_dir
    dataset = load_dataset(config.dataset)
    split = config.evaluate.split
    sets = {task: load_candidates(candidates_dir, task, split) for task in schema.TASKS}
    models: list[Any] = [GenSARRanker.for_run(run_dir / "model", config.evaluate, name=config.name)]
    if baselines:
        models += [SASRecBaseline(), BM25Search(), DenseRetrieval()]
    results = evaluate_models(
        models,
        dataset,
        sets,
        full_samples=config.evaluate.full_catalogue_samples,
        run_dir=run_dir,
        log=log,
        ties=config.evaluate.ties,
    )
    paths = write_results(results, run_dir / "results")
    log(
        (run_dir / "results" / "results.md").read_text()
        if (run_dir / "results" / "results.md").exists()
        else str(paths)
    )
    return results


def run_pipeline(config: RunConfig, *, log=print) -> None:
    """`gensar run`: every stage, then the evaluation with the main baselines."""
    build_run(config, log=log)
    evaluate_run(config, log=log)
