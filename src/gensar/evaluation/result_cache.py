"""A model's benchmark results kept in its run directory, so a benchmark resumes.

Ranking every candidate list with a generative model is the slow part of a
benchmark on a CPU (GenSAR: ~0.15-0.25 s a list and mode). A benchmark that is
interrupted, or split over processes (``gensar benchmark --only NAME``), should
not rank the same lists with the same model twice. Each model's results (the
metrics and the per-sample vectors behind the paired tests) are written, once
evaluated, to one safetensors file beside its run; a later run reads them back
only when everything they depend on is unchanged:

- the lists (task, split, the rows, their candidates and targets),
- the model (every stage record of its run and of the run it reads shared
  outputs from, with the time each stage finished: a retrained model is new),
- the evaluation settings (tie rule, full-catalogue rows, exact scoring, the
  run config's model and evaluate sections) and gensar's version.

Anything else is a miss and the model is evaluated again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from gensar import __version__
from gensar.evaluation.candidates import CandidateSet
from gensar.evaluation.evaluate import EvaluationResult
from gensar.io import atomic_write_bytes, read_json
from gensar.layout import RunLayout

#: Folder (inside a model's run directory) of its cached benchmark results.
CACHE_DIR = "benchmark-results"


def lists_digest(candidate_sets: dict[str, CandidateSet]) -> str:
    """A hash of the rows, candidates and targets of every task's lists."""
    digest = hashlib.sha256()
    for task in sorted(candidate_sets):
        cands = candidate_sets[task]
        digest.update(f"{task}/{cands.split}/{len(cands)}".encode())
        digest.update(np.ascontiguousarray(cands.sample_ids, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(cands.target_index, dtype=np.int64).tobytes())
        for row in cands.candidates:
            digest.update("\x1f".join(row).encode())
            digest.update(b"\x1e")
    return digest.hexdigest()


def _stage_record(run_dir: Path, stages: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The stage record of ``run_dir`` (only ``stages`` when given)."""
    path = RunLayout(run_dir).stages_file
    record = read_json(path) if path.is_file() else {}
    return record if stages is None else {k: v for k, v in record.items() if k in stages}


def cache_key(
    *,
    model_name: str,
    seed: int,
    run_dir: Path,
    fit_dir: Path,
    reads: tuple[str, ...],
    lists: str,
    settings: dict[str, Any],
) -> str:
    """The key of one model's results: any change in what they depend on changes it.

    ``reads``: the shared stages the model reads from ``fit_dir`` (a baseline without
    training reads another run's embeddings; its key does not follow that run's model).
    """
    parts = {
        "gensar": __version__,
        "model": model_name,
        "seed": seed,
        "lists": lists,
        "stages": [_stage_record(run_dir), _stage_record(fit_dir, tuple(reads))],
        "settings": settings,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cache_file(run_dir: Path, key: str) -> Path:
    return Path(run_dir) / CACHE_DIR / f"{key}.safetensors"


def save_results(path: Path, results: list[EvaluationResult]) -> None:
    """Write ``results`` (metrics and per-sample vectors) to one file, atomically."""
    arrays: dict[str, np.ndarray] = {}
    summary = []
    for i, result in enumerate(results):
        arrays[f"{i}/sample_ids"] = np.ascontiguousarray(result.sample_ids, dtype=np.int64)
        names = sorted(result.per_sample)
        for j, name in enumerate(names):
            arrays[f"{i}/per_sample/{j}"] = np.ascontiguousarray(
                result.per_sample[name], dtype=np.float64
            )
        summary.append(
            {
                "model": result.model,
                "task": result.task,
                "split": result.split,
                "ties": result.ties,
                "metrics": result.metrics,
                "per_sample": names,
            }
        )
    metadata = {"results": json.dumps(summary), "gensar": __version__}
    atomic_write_bytes(path, save(arrays, metadata=metadata))


def load_results(path: Path) -> list[EvaluationResult] | None:
    """The results saved at ``path``; None when there are none (or they are unreadable)."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as handle:
            summary = json.loads(handle.metadata()["results"])
            results = []
            for i, entry in enumerate(summary):
                per_sample = {
                    name: handle.get_tensor(f"{i}/per_sample/{j}")
                    for j, name in enumerate(entry["per_sample"])
                }
                results.append(
                    EvaluationResult(
                        model=entry["model"],
                        task=entry["task"],
                        split=entry["split"],
                        metrics={k: float(v) for k, v in entry["metrics"].items()},
                        sample_ids=handle.get_tensor(f"{i}/sample_ids"),
                        per_sample=per_sample,
                        ties=entry["ties"],
                    )
                )
    except (OSError, KeyError, ValueError, SafetensorError):  # a damaged file: re-run
        return None
    return results
