"""The interface every ranking model offers the evaluation, and the loop that uses it.

A model (a baseline, SASRec, GenSAR...) is anything with

* ``name`` (shown in tables) and ``tasks`` (the tasks it can rank),
* ``fit(dataset, run_dir)``: load or train what it needs,
* ``score_candidates(samples, candidates) -> [n, n_candidates]``: higher = better,
  in the order of each candidate list,
* optionally ``score_all(samples) -> [n, n_items]`` in the dataset's item order
  (raise ``NotImplementedError`` when the model cannot score the catalogue).

``samples`` is the dataset's ``samples.parquet`` rows of the evaluated samples
(user, time, query, history), in the candidate file's order. The loop below
turns the scores into an :class:`EvaluationResult` without knowing the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl
from tqdm import tqdm

from gensar.data.dataset import Dataset
from gensar.evaluation.candidates import CandidateSet
from gensar.evaluation.evaluate import EvaluationResult, evaluate_scores
from gensar.evaluation.metrics import DEFAULT_TIES, TargetRanks, TieRule, rank_of_target


@runtime_checkable
class RankingModel(Protocol):
    name: str
    tasks: tuple[str, ...]

    def fit(self, dataset: Dataset, run_dir: Path | None = None) -> None: ...

    def score_candidates(
        self, samples: pl.DataFrame, candidates: list[list[str]]
    ) -> np.ndarray: ...

    def score_all(self, samples: pl.DataFrame) -> np.ndarray: ...


def evaluate_model(
    model: RankingModel,
    dataset: Dataset,
    candidates: CandidateSet,
    *,
    full_catalogue: bool = True,
    batch_size: int = 1024,
    ties: TieRule = DEFAULT_TIES,
    progress: bool = True,
) -> EvaluationResult:
    """Score one candidate set with ``model`` (already fitted) and compute its metrics.

    Candidate lists are scored in batches of ``batch_size`` samples; with
    ``full_catalogue`` the whole catalogue is scored batch by batch too and only
    the target ranks are kept, so memory stays at ``batch_size x n_items``.
    A model whose ``score_all`` raises ``NotImplementedError`` simply gets no
    full-catalogue metrics.
    """
    if candidates.task not in model.tasks:
        raise ValueError(f"{model.name} does not rank the {candidates.task} task")
    samples = candidates.samples(dataset)
    lists = candidates.candidates
    n = len(candidates)
    scores = np.empty((n, len(lists[0]) if n else 0), dtype=np.float64)
    full_parts: list[TargetRanks] | None = [] if full_catalogue else None
    targets = np.array([dataset.item_index[t] for t in candidates.target_item_ids], dtype=np.int64)
    desc = f"{model.name} {candidates.task}/{candidates.split}"
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=not progress):
        stop = min(start + batch_size, n)
        chunk = samples.slice(start, stop - start)
        scores[start:stop] = _checked(
            model.score_candidates(chunk, lists[start:stop]), (stop - start, scores.shape[1]), model
        )
        if full_parts is not None:
            try:
                full = model.score_all(chunk)
            except NotImplementedError:
                full_parts = None
                continue
            full = _checked(full, (stop - start, len(dataset.item_ids)), model)
            full_parts.append(rank_of_target(full, targets[start:stop]))
    full_ranks = TargetRanks.concat(full_parts) if full_parts is not None else None
    return evaluate_scores(model.name, candidates, scores, full_ranks=full_ranks, ties=ties)


def _checked(scores: np.ndarray, shape: tuple[int, int], model: RankingModel) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != shape:
        raise ValueError(f"{model.name} returned scores of shape {scores.shape}, expected {shape}")
    return scores
