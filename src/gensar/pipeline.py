"""Running the stages of one run in order, skipping those already built.

Each stage records a fingerprint (a hash of the dataset content, its own
settings and the fingerprints of the stages it reads) in ``run_dir/stages.json``;
a stage whose output exists with the same fingerprint is reused, so rerunning a
config after changing only, say, ``train.lr`` retrains the model but keeps the
embeddings and identifiers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gensar.config import fingerprint_view
from gensar.data import load_dataset, schema
from gensar.io import read_json, sha256_text, write_json
from gensar.layout import RunLayout
from gensar.run import RunConfig

_logger = logging.getLogger(__name__)


class StageRecord:
    """Fingerprints of the stages built in a run directory."""

    def __init__(self, run_dir: Path):
        self.path = RunLayout(run_dir).stages_file
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
    log=None,
) -> bool:
    """Build ``output`` unless it exists with the same fingerprint; returns True if built."""
    log = log or _logger.info
    if output.exists() and record.fingerprint(name) == fingerprint:
        log(f"[{name}] up to date ({output})")
        return False
    log(f"[{name}] building {output} ...")
    started = time.perf_counter()
    build()
    record.done(name, fingerprint, time.perf_counter() - started)
    return True


#: The shared stages, in build order, with their output in the run directory.
SHARED_STAGES = ("semantic", "collab", "index", "candidates")


def stage_fingerprints(config: RunConfig, dataset_hash: str) -> dict[str, str]:
    """The fingerprint of every stage for this config (upstream changes propagate down)."""
    fps: dict[str, str] = {}
    fps["semantic"] = _fp(dataset_hash, fingerprint_view(config.semantic))
    fps["collab"] = _fp(dataset_hash, fingerprint_view(config.collab))
    towers = {
        "joint": ("semantic", "collab"),
        "semantic": ("semantic",),
        "collaborative": ("collab",),
    }[config.index.variant]
    fps["index"] = _fp(fingerprint_view(config.index), *(fps[t] for t in towers))
    fps["candidates"] = _fp(dataset_hash, fingerprint_view(config.candidates))
    family = config.family
    fps["train"] = _fp(
        *(fps[s] for s in family.stages(config)),
        fingerprint_view(config.model),
        config.name,
    )
    return fps


def _main_process_first():
    """accelerate's main-process-first context (a no-op in a single process)."""
    from accelerate import PartialState

    return PartialState().main_process_first()


def build_run(
    config: RunConfig,
    *,
    log=None,
    candidates_dir: Path | None = None,
    only: tuple[str, ...] | None = None,
    resume: bool = False,
) -> dict[str, str]:
    """The shared stages the run's family reads (embeddings, identifiers, candidate
    lists), then the family's model, reusing what is built. ``only``: just those shared
    stages (e.g. ``gensar train`` builds the candidate lists, and nothing else, itself).
    ``resume``: a family's training continues from its latest checkpoint."""
    log = log or _logger.info
    from gensar.embed.collab import train_collaborative
    from gensar.embed.semantic import embed_items
    from gensar.evaluation.candidates import build_candidates
    from gensar.ids.build import build_identifiers

    if candidates_dir is not None:
        config = config.model_copy(update={"candidates_dir": Path(candidates_dir)})
    run_dir = Path(config.run_dir)
    dataset = load_dataset(config.dataset)
    fps = stage_fingerprints(config, dataset.manifest.get("content_hash", ""))
    layout = RunLayout(run_dir, config.candidates_dir)
    candidates_dir = layout.candidates_dir
    family = config.family
    needed = set(family.stages(config))
    builds = {
        "semantic": (
            layout.stage_output("semantic"),
            lambda: embed_items(config.dataset, run_dir, config.semantic),
        ),
        "collab": (
            layout.stage_output("collab"),
            lambda: train_collaborative(config.dataset, run_dir, config.collab, log=log),
        ),
        "index": (
            layout.stage_output("index"),
            lambda: build_identifiers(config.dataset, run_dir, config.index),
        ),
        "candidates": (
            layout.stage_output("candidates"),
            lambda: build_candidates(config.dataset, candidates_dir, config.candidates),
        ),
    }
    # under `accelerate launch` every process runs this: the main one builds the shared
    # stages first, the others then find them up to date (a single process just builds)
    with _main_process_first():
        for stage in SHARED_STAGES:
            if stage in needed and (only is None or stage in only):
                output, build = builds[stage]
                record = StageRecord(run_dir)  # what the main process recorded meanwhile
                run_stage(record, stage, fps[stage], output, build, log)
    if only is not None:
        return fps
    if family.trains:
        run_stage(
            StageRecord(run_dir),
            "train",
            fps["train"],
            layout.root / family.model_dir_name,
            lambda: family.train(config.dataset, run_dir, config, log=log, resume=resume),
            log,
        )
    return fps


def evaluate_run(
    config: RunConfig, *, candidates_dir: Path | None = None, baselines: bool = True, log=None
):
    """Evaluate the run's model (and, optionally, the baseline families of
    ``evaluate.baselines``) on the test lists."""
    log = log or _logger.info
    from gensar.evaluation.candidates import load_candidates
    from gensar.evaluation.report import write_results
    from gensar.evaluation.runner import evaluate_models
    from gensar.families.registry import get_family

    run_dir = Path(config.run_dir)
    candidates_dir = candidates_dir or config.candidates_dir or run_dir
    dataset = load_dataset(config.dataset)
    split = config.evaluate.split
    lists = config.evaluate.candidate_lists
    sets = {
        task: load_candidates(candidates_dir, task, split).subset(lists) for task in schema.TASKS
    }
    models: list[Any] = [config.family.ranker(run_dir, config, config.name)]
    if baselines:
        models += [get_family(name).ranker(run_dir, config) for name in config.evaluate.baselines]
    results = evaluate_models(
        models,
        dataset,
        sets,
        full_samples=config.evaluate.full_catalogue_samples,
        run_dir=run_dir,
        log=log,
        ties=config.evaluate.ties,
    )
    results_dir = RunLayout(run_dir).results
    paths = write_results(results, results_dir)
    log(
        (results_dir / "results.md").read_text()
        if (results_dir / "results.md").exists()
        else str(paths)
    )
    return results


def run_pipeline(config: RunConfig, *, log=None) -> None:
    """`gensar run`: every stage, then the evaluation with the main baselines."""
    log = log or _logger.info
    build_run(config, log=log)
    evaluate_run(config, log=log)
