"""A trained SynerGen as a ranking model of the evaluation (the duck-typed protocol of
:mod:`gensar.evaluation.protocol`): ``tasks``, ``fit``, ``score_candidates``,
``score_all`` and ``top_k``.

A sample's input is its user's token stream up to the sample's context
position (:func:`gensar.families.synergen.data.sample_contexts`): for a
recommendation sample every event before the target, for a search sample also
the sample's query token. Given candidate lists are scored by the ranking head
(``candidate_scorer``), the whole catalogue by the retrieval head.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from gensar.data import schema
from gensar.data.dataset import Dataset
from gensar.errors import DataError
from gensar.families.synergen import data as D
from gensar.families.synergen.config import SynerGenConfig
from gensar.families.synergen.model import SynerGen
from gensar.families.synergen.train import FORMAT, FORMAT_VERSION, MODEL_DIR
from gensar.utils import pick_device, torch_threads
from gensar.weights import load_weights, read_weights_folder


class LoadedSynerGen:
    """A trained network with the vocabulary it was trained on."""

    def __init__(self, model: SynerGen, info: dict, device: str):
        self.model = model.to(device).eval()
        self.config: SynerGenConfig = model.config
        self.item_ids: list[str] = info["item_ids"]
        self.query_ids: list[str] = info["query_ids"]
        self.summary: dict = info.get("summary", {})
        self.info = info
        self.device = device


def load_model(model_dir: str | Path, device: str = "auto") -> LoadedSynerGen:
    """Load ``run_dir/synergen`` as written by :func:`gensar.families.synergen.train.train`."""
    info, tensors, weights_file = read_weights_folder(
        model_dir,
        fmt=FORMAT,
        version=FORMAT_VERSION,
        what="SynerGen",
        fix_missing="train SynerGen first and pass RUN/synergen",
    )
    config = SynerGenConfig.model_validate(info["config"])
    model = SynerGen(config, tensors["item_text"], tensors["query_text"])
    load_weights(model, tensors, weights_file, "SynerGen")
    return LoadedSynerGen(model, info, pick_device(device))


class SynerGenRanker:
    """SynerGen on the shared candidate lists (ranking head) and catalogue (retrieval head)."""

    tasks = (schema.RECOMMENDATION, schema.SEARCH)

    def __init__(
        self,
        loaded: LoadedSynerGen | None = None,
        *,
        name: str = "SynerGen",
        candidate_scorer: str | None = None,
        model_dir: str | Path | None = None,
        popularity_correction: dict[str, float] | None = None,
    ):
        self.name = name
        self.loaded = loaded
        self.model_dir = model_dir
        self.candidate_scorer = candidate_scorer
        #: task -> a of ``retrieval - a * log(1 + training targets)`` on candidate lists
        #: (None: the model config's ``*_popularity_correction``)
        self.popularity_correction = popularity_correction
        self.log_popularity: torch.Tensor | None = None
        self.dataset: Dataset | None = None
        self.streams: dict[str, D.UserStream] | None = None

    def fit(self, dataset: Dataset, run_dir: Path | None = None) -> None:
        """Load the trained model (``model_dir``, else ``run_dir/synergen``) and index the
        dataset's user streams (the inputs of its samples)."""
        if self.loaded is None:
            folder = self.model_dir or (Path(run_dir) / MODEL_DIR if run_dir else None)
            if folder is None:
                raise ValueError("SynerGen needs model_dir or the run directory it trained in")
            self.loaded = load_model(folder)
        if self.loaded.item_ids != dataset.item_ids:
            raise DataError(
                "the model's items differ from the dataset's (or their order does)",
                where=dataset.path,
                fix="evaluate SynerGen on the dataset it was trained on",
            )
        if self.loaded.query_ids != dataset.queries["query_id"].to_list():
            raise DataError(
                "the model's queries differ from the dataset's",
                where=dataset.path,
                fix="evaluate SynerGen on the dataset it was trained on",
            )
        self.dataset = dataset
        self.streams = D.build_streams(
            dataset, merge_duplicate_clicks=self.loaded.config.merge_duplicate_clicks
        )
        windows = D.training_windows(
            self.streams, D.heldout_cutoffs(dataset), self.loaded.config.max_len
        )
        counts = D.item_popularity(windows, len(dataset.item_ids))
        self.log_popularity = torch.from_numpy(np.log1p(counts)).float().to(self.loaded.device)

    # ------------------------------------------------------------------ internals
    def _states(self, samples: pl.DataFrame) -> torch.Tensor:
        if self.loaded is None or self.streams is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(dataset, run_dir) first")
        config = self.loaded.config
        contexts = D.sample_contexts(self.streams, samples, config.max_len)
        states = torch.zeros(len(contexts), config.hidden, device=self.loaded.device)
        for rows in D.length_sorted_batches(contexts, config.eval_batch_size):
            batch = D.pad_batch([contexts[i] for i in rows], config.time_unit)
            index = torch.as_tensor(rows, device=self.loaded.device)
            states[index] = self.loaded.model.last_states(batch.to(self.loaded.device))
        return states

    def _rows(self, candidates: list[list[str]]) -> torch.Tensor:
        index = self.dataset.item_index
        try:
            rows = [[index[item] for item in row] for row in candidates]
        except KeyError as err:
            raise DataError(
                f"candidate item {err.args[0]!r} is not in the dataset",
                where=self.dataset.path,
                fix="rebuild the candidates for this dataset",
            ) from None
        return torch.as_tensor(rows, dtype=torch.long, device=self.loaded.device)

    # ------------------------------------------------------------------ protocol
    def score_candidates(self, samples: pl.DataFrame, candidates: list[list[str]]) -> np.ndarray:
        """[n, c] scores of each sample's candidates (higher = better)."""
        scorer = self.candidate_scorer or self.loaded.config.candidate_scorer
        with torch_threads(self.loaded.config.threads), torch.no_grad():
            states = self._states(samples)
            rows = self._rows(candidates)
            model = self.loaded.model
            if scorer == "ranking":
                out = model.ranking_scores(states, rows)
            else:
                retrieval = model.retrieval_scores(states, rows)
                alpha = self._correction(samples)
                if bool((alpha != 0).any()):
                    retrieval = retrieval - alpha[:, None] * self.log_popularity[rows]
                if scorer == "retrieval":
                    out = retrieval
                else:
                    out = _zscore(retrieval) + _zscore(model.ranking_scores(states, rows))
            return out.cpu().numpy().astype(np.float64)

    def _correction(self, samples: pl.DataFrame) -> torch.Tensor:
        """[n] popularity-correction weight of each sample (by its task)."""
        config = self.loaded.config
        weights = self.popularity_correction or {
            schema.RECOMMENDATION: config.rec_popularity_correction,
            schema.SEARCH: config.search_popularity_correction,
        }
        tasks = samples["task"].to_list() if "task" in samples.columns else []
        alpha = [float(weights.get(t, 0.0)) for t in tasks] or [0.0] * samples.height
        return torch.tensor(alpha, dtype=torch.float32, device=self.loaded.device)

    def score_all(self, samples: pl.DataFrame) -> np.ndarray:
        """[n, n_items] retrieval-head scores in the dataset's item order."""
        with torch_threads(self.loaded.config.threads), torch.no_grad():
            return self.loaded.model.retrieval_scores(self._states(samples)).cpu().numpy()

    def top_k(self, samples: pl.DataFrame, k: int) -> list[list[str]]:
        """Exact top-``k`` items per sample: one matrix product over the catalogue + topk."""
        with torch_threads(self.loaded.config.threads), torch.no_grad():
            scores = self.loaded.model.retrieval_scores(self._states(samples))
            top = retrieve_top_k(scores, k)
        ids = self.loaded.item_ids
        return [[ids[i] for i in row] for row in top.tolist()]


def retrieve_top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """[n, k] column indices of the ``k`` highest scores per row, best first (exact)."""
    return scores.topk(min(k, scores.shape[1]), dim=1).indices


def _zscore(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp(min=1e-6)
