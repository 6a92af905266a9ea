"""A trained GenSR on the evaluation protocol (:class:`GenSRRanker`) and as a served
model (:class:`GenSRServable`).

GenSR scores (user, candidate) pairs, so it ranks given candidate lists directly
(``score_candidates``: all candidates of a sample share one encoder pass). For the
whole catalogue and for serving it re-ranks the top ``rerank_top_n`` items of a
first stage: SASRec (the run's, copied into the model folder) for recommendation,
BM25 over item text (the evaluation's index settings) for search. Items below
the re-ranked top keep the first stage's order underneath.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from gensar.data import schema
from gensar.data.dataset import Dataset
from gensar.errors import DataError, GensarError
from gensar.evaluation.bm25_index import BM25Index
from gensar.families.gensr import data as D
from gensar.families.gensr.config import GenSRConfig
from gensar.families.gensr.model import GenSR
from gensar.families.gensr.scoring import score_rows
from gensar.families.gensr.train import FORMAT, FORMAT_VERSION, MODEL_DIR, build_network
from gensar.families.protocols import HistoryEntry, Prediction, Unsupported
from gensar.utils import pick_device, torch_threads
from gensar.weights import load_weights, read_weights_folder


class LoadedGenSR:
    """A trained network with its vocabulary, items and first stages."""

    def __init__(self, model: GenSR, tokenizer, info: dict, folder: Path, device: str):
        self.model = model.to(device).eval()
        self.config: GenSRConfig = model.config
        self.tokenizer = tokenizer
        self.item_ids: list[str] = info["item_ids"]
        self.item_index = {item: row for row, item in enumerate(self.item_ids)}
        self.summary: dict = info.get("summary", {})
        self.folder = folder
        self.device = device
        items = pl.read_parquet(folder / "items.parquet")
        if items["item_id"].to_list() != self.item_ids:
            raise GensarError(
                "items.parquet does not match config.json", where=folder, fix="retrain GenSR"
            )
        self.titles = [t or x for t, x in zip(items["title"], items["text"], strict=True)]
        self.texts = items["text"].to_list()
        self.layout = D.Layout(
            tokenizer, self.titles, self.config, D.start_id(tokenizer, model.backbone)
        )
        self._bm25: BM25Index | None = None
        self._sasrec = None

    @property
    def bm25(self) -> BM25Index:
        if self._bm25 is None:
            c = self.config.candidates
            self._bm25 = BM25Index(self.texts, k1=c.bm25_k1, b=c.bm25_b)
        return self._bm25

    @property
    def sasrec(self):
        if self._sasrec is None:
            from gensar.embed.collab import SASRecRecommender

            self._sasrec = SASRecRecommender.load(self.folder / "sasrec", device=self.device)
            if self._sasrec.item_ids != self.item_ids:
                raise GensarError(
                    "the first-stage SASRec has other items", where=self.folder, fix="retrain"
                )
        return self._sasrec

    def score(self, tasks, queries, histories, rows: np.ndarray) -> np.ndarray:
        with torch_threads(self.config.threads):
            return score_rows(
                self.model,
                self.layout,
                tasks,
                queries,
                histories,
                rows,
                batch=self.config.score_batch,
                device=self.device,
            )

    def first_stage(
        self, task: str, rec_histories: Sequence[Sequence[str]], queries: Sequence[str | None]
    ) -> np.ndarray:
        """[n, n_items] first-stage scores: SASRec (recommendation) or BM25 (search)."""
        if task == schema.RECOMMENDATION:
            return self.sasrec.score_all(rec_histories)
        return np.stack([self.bm25.scores(q or "") for q in queries])

    def rerank(self, first: np.ndarray, tasks, queries, histories) -> np.ndarray:
        """[n, n_items] scores: the first stage's top ``rerank_top_n`` re-ranked by GenSR
        (P(Yes) + 2, in [2, 3]), every other item below (in (0, 1], first-stage order)."""
        n, n_items = first.shape
        top_n = min(self.config.rerank_top_n, n_items)
        order = np.argsort(-first, axis=1, kind="stable")
        out = np.empty_like(first, dtype=np.float64)
        ranks = np.arange(n_items, 0, -1, dtype=np.float64) / n_items
        np.put_along_axis(out, order, np.broadcast_to(ranks, (n, n_items)), axis=1)
        top = order[:, :top_n]
        scores = self.score(tasks, queries, histories, top)
        np.put_along_axis(out, top, scores + 2.0, axis=1)
        return out


def load(model_dir: str | Path, device: str = "auto") -> LoadedGenSR:
    """Load ``run_dir/gensr`` as written by :func:`gensar.families.gensr.train.train`."""
    from transformers import AutoTokenizer

    folder = Path(model_dir)
    info, tensors, weights_file = read_weights_folder(
        folder,
        fmt=FORMAT,
        version=FORMAT_VERSION,
        what="GenSR",
        fix_missing="train GenSR first and pass RUN/gensr",
    )
    config = GenSRConfig.model_validate(info["config"])
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    model = build_network(config, tokenizer, tensors["item_table"])
    load_weights(model, tensors, weights_file, "GenSR")
    return LoadedGenSR(model, tokenizer, info, folder, pick_device(device))


class GenSRRanker:
    """GenSR on the shared candidate lists and (re-ranking a first stage) the catalogue."""

    tasks = (schema.RECOMMENDATION, schema.SEARCH)

    def __init__(
        self,
        loaded: LoadedGenSR | None = None,
        *,
        name: str = "GenSR",
        model_dir: str | Path | None = None,
    ):
        self.name = name
        self.loaded = loaded
        self.model_dir = model_dir
        self.dataset: Dataset | None = None

    def fit(self, dataset: Dataset, run_dir: Path | None = None) -> None:
        if self.loaded is None:
            folder = self.model_dir or (Path(run_dir) / MODEL_DIR if run_dir else None)
            if folder is None:
                raise ValueError("GenSR needs model_dir or the run directory it trained in")
            self.loaded = load(folder)
        if self.loaded.item_ids != dataset.item_ids:
            raise DataError(
                "the model's items differ from the dataset's (or their order does)",
                where=dataset.path,
                fix="evaluate GenSR on the dataset it was trained on",
            )
        self.dataset = dataset

    def _inputs(self, samples: pl.DataFrame):
        if self.loaded is None or self.dataset is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(dataset, run_dir) first")
        return (
            samples["task"].to_list(),
            D.sample_queries(samples, self.dataset),
            D.sample_histories(samples, self.dataset),
        )

    def score_candidates(self, samples: pl.DataFrame, candidates: list[list[str]]) -> np.ndarray:
        tasks, queries, histories = self._inputs(samples)
        index = self.dataset.item_index
        try:
            rows = np.array([[index[i] for i in row] for row in candidates], dtype=np.int64)
        except KeyError as err:
            raise DataError(
                f"candidate item {err.args[0]!r} is not in the dataset",
                where=self.dataset.path,
                fix="rebuild the candidates for this dataset",
            ) from None
        return self.loaded.score(tasks, queries, histories, rows)

    def score_all(self, samples: pl.DataFrame) -> np.ndarray:
        """[n, n_items]: the first stage's top-N re-ranked by GenSR, the rest below it."""
        tasks, queries, histories = self._inputs(samples)
        out = np.empty((samples.height, len(self.loaded.item_ids)), dtype=np.float64)
        for task in set(tasks):
            where = np.array([t == task for t in tasks])
            part = samples.filter(pl.Series(where))
            rec = self.dataset.rec_histories(part) if task == schema.RECOMMENDATION else []
            q = [x for x, w in zip(queries, where, strict=True) if w]
            h = [x for x, w in zip(histories, where, strict=True) if w]
            first = self.loaded.first_stage(task, rec, q)
            out[where] = self.loaded.rerank(first, [task] * len(q), q, h)
        return out

    def top_k(self, samples: pl.DataFrame, k: int) -> list[list[str]]:
        scores = self.score_all(samples)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        ids = self.loaded.item_ids
        return [[ids[i] for i in row] for row in top.tolist()]


class GenSRServable:
    """GenSR answering users (``gensar serve`` / ``gensar predict``)."""

    def __init__(self, loaded: LoadedGenSR, name: str = "GenSR"):
        self.loaded = loaded
        self.name = name
        self.item_ids = loaded.item_ids
        self.item_index = loaded.item_index

    def _entries(self, history: Sequence[HistoryEntry]) -> list[D.Entry]:
        index = self.item_index
        return [
            (h.behaviour, index.get(h.item_id, -1) if h.item_id else -1, h.query) for h in history
        ]

    def _answer(self, task, histories, queries, k) -> list[list[Prediction]]:
        if not histories:
            return []
        rec = [
            [h.item_id for h in hist if h.behaviour == schema.REC_ITEM and h.item_id]
            for hist in histories
        ]
        entries = [self._entries(h) for h in histories]
        first = self.loaded.first_stage(task, rec, queries)
        scores = self.loaded.rerank(first, [task] * len(entries), queries, entries)
        out = []
        for row in scores:
            top = np.argsort(-row, kind="stable")[:k]
            out.append(
                [
                    Prediction(self.item_ids[i], float(row[i]), title=self.loaded.titles[i])
                    for i in top
                ]
            )
        return out

    def recommend_batch(
        self, histories: Sequence[Sequence[HistoryEntry]], k: int
    ) -> list[list[Prediction]]:
        return self._answer(schema.RECOMMENDATION, histories, [None] * len(histories), k)

    def search_batch(
        self, histories: Sequence[Sequence[HistoryEntry]], queries: Sequence[str], k: int
    ) -> list[list[Prediction]]:
        if len(queries) != len(histories):
            raise GensarError(
                f"{len(histories)} histories but {len(queries)} queries",
                fix="pass one query per history",
            )
        return self._answer(schema.SEARCH, histories, list(queries), k)

    def suggest_queries_batch(
        self, histories: Sequence[Sequence[HistoryEntry]], k: int
    ) -> list[list[Prediction]]:
        raise Unsupported("GenSR judges items; it does not generate queries")

    def title(self, item_id: str) -> str | None:
        row = self.item_index.get(item_id)
        return None if row is None else self.loaded.titles[row]


def load_servable(model_dir: str | Path, device: str = "auto") -> GenSRServable:
    return GenSRServable(load(model_dir, device))
