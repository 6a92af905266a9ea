"""Candidate lists of the paper's protocol: 1 target + 99 negatives per sample, built once.

Every model of a run ranks the *same* lists, read from the same Parquet files,
so a difference in their numbers is a difference of the models. The lists are
built once per dataset, task and split, seeded, and reused as long as the
dataset and the settings are unchanged (the manifest records both).

On disk, ``<out_dir>/candidates/``::

    {task}_{split}.parquet  sample_id (int64), user_id (str), target_item_id (str),
                            query_id (str | null; the query of a search sample),
                            candidates (list[str]; the target and the negatives, shuffled),
                            target_index (int32; position of the target in ``candidates``)
    manifest.json           settings, dataset hash, rows and sha256 of each file, seconds

The list is shuffled (the target's position recorded) rather than target-first:
a model that breaks ties by input order, or returns candidates in the order it
got them when unsure, gains nothing; on top of that the metrics count ties by
their exact expectation over random orderings (``metrics``, ``evaluate.ties``).

Negatives (SPEC section 8, the authors' code):

* recommendation: ``n_negatives`` distinct items drawn from the authors'
  "interaction list", i.e. each item with probability proportional to how often
  it occurs in the *recommendation* interactions (``rec_item`` events). Search
  clicks are not counted: in datasets whose searches are built from the
  purchases (amazon-unisrec) every purchase is also a search click, and counting
  both would weigh each purchase twice and give items only ever searched for a
  weight the authors' list does not. Never an item of the user's history (any
  item the user ever interacted with, so never the target either);
* search: BM25 (Lucene, k1=0.9, b=0.4) of the sample's query over item text;
  the top ``bm25_pool`` matching items, the target dropped, the first
  ``n_negatives`` kept; a shortfall (fewer matching items) is filled with
  distinct random items. Search negatives may be in the user's history: they
  are "what the search engine returned", as in the paper.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field
from tqdm import tqdm

from gensar.config import Section
from gensar.data import schema
from gensar.data.dataset import Dataset, load_dataset
from gensar.errors import DataError
from gensar.evaluation.bm25_index import BM25Index
from gensar.io import read_json, sha256_file, write_json, write_parquet

CANDIDATES_DIR = "candidates"
MANIFEST = "manifest.json"
CANDIDATES_SCHEMA = {
    "sample_id": pl.Int64,
    "user_id": pl.String,
    "target_item_id": pl.String,
    "query_id": pl.String,
    "candidates": pl.List(pl.String),
    "target_index": pl.Int32,
}
#: Below this share of the popularity mass left for a user, rejection sampling
#: would need many draws; the exact Gumbel-top-k draw over all items is cheaper.
_REJECTION_MIN_MASS = 0.1


class CandidateConfig(Section):
    """How the evaluation candidate lists are built (defaults: the paper's protocol)."""

    n_negatives: int = Field(99, ge=1, description="negatives per list (list length = this + 1)")
    bm25_k1: float = Field(0.9, gt=0, description="BM25 k1 for search negatives (Lucene default)")
    bm25_b: float = Field(0.4, ge=0, le=1, description="BM25 b for search negatives")
    bm25_pool: int = Field(109, ge=1, description="BM25 results taken before dropping the target")
    seed: int = Field(0, description="seed of the negative sampling and of the shuffles")
    tasks: list[Literal["recommendation", "search"]] = ["recommendation", "search"]
    splits: list[Literal["train", "valid", "test"]] = ["valid", "test"]


@dataclass(frozen=True)
class CandidateSet:
    """The candidate lists of one task and split (rows in ``sample_id`` order)."""

    task: str
    split: str
    frame: pl.DataFrame
    path: Path | None = None

    def __len__(self) -> int:
        return self.frame.height

    def subset(self, n: int | None, seed: int = 0) -> CandidateSet:
        """A fixed seeded subset of ``n`` lists (rows kept in ``sample_id`` order; all of
        them when ``n`` is None or not smaller): every model of a comparison ranks the
        same rows, so paired tests still apply."""
        if n is None or n >= len(self):
            return self
        rows = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return CandidateSet(self.task, self.split, self.frame[rows], self.path)

    @property
    def sample_ids(self) -> np.ndarray:
        return self.frame["sample_id"].to_numpy()

    @property
    def candidates(self) -> list[list[str]]:
        return self.frame["candidates"].to_list()

    @property
    def target_index(self) -> np.ndarray:
        return self.frame["target_index"].to_numpy().astype(np.int64)

    @property
    def target_item_ids(self) -> list[str]:
        return self.frame["target_item_id"].to_list()

    def item_indices(self, item_index: dict[str, int]) -> np.ndarray:
        """``[n, n_candidates]`` rows of each candidate in the dataset's item order."""
        return np.array(
            [[item_index[item] for item in row] for row in self.candidates], dtype=np.int64
        )

    def samples(self, dataset: Dataset) -> pl.DataFrame:
        """The dataset's sample rows (history, query, time...) in this list's row order."""
        order = pl.DataFrame({"sample_id": self.sample_ids}, schema={"sample_id": pl.Int64})
        found = dataset.samples_with_ids(self.sample_ids)  # not the whole table
        rows = order.join(found, on="sample_id", how="left", maintain_order="left")
        if rows["task"].null_count():
            raise DataError(
                f"{rows['task'].null_count()} candidate samples are not in the dataset",
                where=self.path or f"{self.task}_{self.split}",
                fix="rebuild the candidates for this dataset",
            )
        return rows


def candidates_path(out_dir: str | Path, task: str, split: str) -> Path:
    return Path(out_dir) / CANDIDATES_DIR / f"{task}_{split}.parquet"


def build_candidates(
    dataset_dir: str | Path,
    out_dir: str | Path,
    config: CandidateConfig | None = None,
    *,
    force: bool = False,
) -> dict[tuple[str, str], Path]:
    """Write the candidate lists of every configured task and split; return their paths.

    Files already built from the same dataset content with the same settings are
    kept as they are (so every model of a run reads the same bytes) unless
    ``force`` is set.
    """
    config = config or CandidateConfig()
    dataset = load_dataset(dataset_dir)
    folder = Path(out_dir) / CANDIDATES_DIR
    wanted = [(task, split) for task in config.tasks for split in config.splits]
    paths = {(task, split): candidates_path(out_dir, task, split) for task, split in wanted}
    if not force and _up_to_date(folder, dataset, config, paths):
        return paths

    builder = _Builder(dataset, config)
    files: dict[str, dict] = {}
    for task, split in wanted:
        start = time.perf_counter()
        frame = builder.build(task, split)
        write_parquet(frame, paths[task, split])
        files[f"{task}_{split}"] = {
            "path": paths[task, split].name,
            "rows": frame.height,
            "sha256": sha256_file(paths[task, split]),
            "seconds": round(time.perf_counter() - start, 3),
        }
    write_json(
        folder / MANIFEST,
        {
            "config": config.model_dump(mode="json"),
            "dataset": {
                "path": str(dataset.path),
                "content_hash": dataset.manifest.get("content_hash"),
            },
            "files": files,
        },
    )
    return paths


def load_candidates(out_dir: str | Path, task: str, split: str) -> CandidateSet:
    """Read the lists written by :func:`build_candidates` for one task and split."""
    path = candidates_path(out_dir, task, split)
    if not path.is_file():
        raise DataError(
            f"no candidate lists for {task}/{split}",
            where=path,
            fix="build them with `gensar train` or `gensar run` (the candidates stage), or gensar.evaluation.build_candidates",
        )
    _check_listed(path, f"{task}_{split}")
    frame = pl.read_parquet(path)
    for column, dtype in CANDIDATES_SCHEMA.items():
        if frame.schema.get(column) != dtype:
            raise DataError(
                f"column '{column}' is missing or not {dtype}",
                where=path,
                fix="rebuild the candidates with this version of gensar",
            )
    return CandidateSet(task=task, split=split, frame=frame, path=path)


def _check_listed(path: Path, key: str) -> None:
    """The file must be the one the manifest describes (not a leftover of other settings)."""
    manifest_file = path.parent / MANIFEST
    try:
        entry = read_json(manifest_file)["files"][key]
    except (OSError, ValueError, KeyError):
        entry = None
    if entry is None or entry.get("sha256") != sha256_file(path):
        raise DataError(
            f"{path.name} is not the file described by {MANIFEST} (left over from other "
            "settings, or changed since it was built)",
            where=path,
            fix="build the candidates again with gensar.evaluation.build_candidates",
        )


def _up_to_date(
    folder: Path, dataset: Dataset, config: CandidateConfig, paths: dict[tuple[str, str], Path]
) -> bool:
    """Whether the existing manifest covers exactly these files, settings and dataset."""
    manifest_file = folder / MANIFEST
    if not manifest_file.is_file():
        return False
    try:
        manifest = read_json(manifest_file)
    except ValueError:
        return False
    if manifest.get("config") != config.model_dump(mode="json"):
        return False
    content_hash = dataset.manifest.get("content_hash")
    if content_hash is None or manifest.get("dataset", {}).get("content_hash") != content_hash:
        return False
    files = manifest.get("files", {})
    for (task, split), path in paths.items():
        entry = files.get(f"{task}_{split}")
        if entry is None or not path.is_file() or sha256_file(path) != entry.get("sha256"):
            return False
    return True


def rec_negative_weights(dataset: Dataset) -> np.ndarray:
    """Per item (dataset order), how often it occurs in the ``rec_item`` events.

    The sampling weight of recommendation negatives (before excluding the
    user's history); search events are not counted (see the module doc).
    """
    counts = (
        dataset.events.filter(
            (pl.col("behaviour") == schema.REC_ITEM) & pl.col("item_id").is_not_null()
        )
        .group_by("item_id")
        .len()
    )
    weights = np.zeros(len(dataset.item_ids), dtype=np.float64)
    index = dataset.item_index
    for item, count in counts.iter_rows():
        if item in index:
            weights[index[item]] = count
    return weights


class _Builder:
    """Holds what every list of a dataset shares: popularity, histories, the BM25 index."""

    def __init__(self, dataset: Dataset, config: CandidateConfig):
        self.dataset = dataset
        self.config = config
        self.item_ids = dataset.item_ids
        self.n_items = len(self.item_ids)
        if self.n_items < config.n_negatives + 1:
            raise DataError(
                f"the catalogue has {self.n_items} items, too few for 1 target + "
                f"{config.n_negatives} negatives",
                where=dataset.path,
                fix=f"set evaluation n_negatives to at most {self.n_items - 1}",
            )
        self._popularity: np.ndarray | None = None
        self._cdf = np.zeros(0)
        self._histories: dict[str, np.ndarray] | None = None
        self._index: BM25Index | None = None
        self._pools: dict[str, np.ndarray] = {}
        # Fixed random order of items for breaking BM25 ties (the same for every split).
        self._tiebreak = np.random.default_rng([config.seed, 7919]).permutation(self.n_items)

    def build(self, task: str, split: str) -> pl.DataFrame:
        samples = self.dataset.samples_for(task, split).sort("sample_id")
        rng = np.random.default_rng(
            [self.config.seed, schema.TASKS.index(task), 1 + schema.SPLITS.index(split)]
        )
        targets = self._target_rows(samples)
        draw = self._rec_negatives if task == schema.RECOMMENDATION else self._search_negatives
        lists: list[list[str]] = []
        positions: list[int] = []
        rows = samples.select("user_id", "query_id").iter_rows()
        for target, (user, query_id) in tqdm(
            zip(targets, rows, strict=True),
            total=samples.height,
            desc=f"candidates {task}/{split}",
            leave=False,
        ):
            negatives = draw(rng, int(target), user, query_id)
            items = np.concatenate(([target], negatives))
            order = rng.permutation(items.size)
            lists.append([self.item_ids[i] for i in items[order]])
            positions.append(int(np.flatnonzero(order == 0)[0]))
        return pl.DataFrame(
            {
                "sample_id": samples["sample_id"],
                "user_id": samples["user_id"],
                "target_item_id": samples["target_item_id"],
                "query_id": samples["query_id"],
                "candidates": lists,
                "target_index": positions,
            },
            schema=CANDIDATES_SCHEMA,
        )

    def _target_rows(self, samples: pl.DataFrame) -> np.ndarray:
        index = self.dataset.item_index
        missing = [item for item in samples["target_item_id"].to_list() if item not in index]
        if missing:
            raise DataError(
                f"{len(missing)} target items are not in items.parquet (first: {missing[0]!r})",
                where=self.dataset.path,
                fix="prepare the dataset again",
            )
        return np.array(
            [index[item] for item in samples["target_item_id"].to_list()], dtype=np.int64
        )

    # -- recommendation ---------------------------------------------------------------

    @property
    def popularity(self) -> np.ndarray:
        """Probability of each item in the recommendation interactions (``rec_item`` events)."""
        if self._popularity is None:
            weights = rec_negative_weights(self.dataset)
            if weights.sum() <= 0:
                raise DataError(
                    "the dataset has no recommendation interactions to draw negatives from",
                    where=self.dataset.path,
                    fix="evaluate only the search task (candidates.tasks: [search])",
                )
            self._popularity = weights / weights.sum()
            self._cdf = np.cumsum(self._popularity)
            self._cdf[-1] = 1.0
        return self._popularity

    @property
    def histories(self) -> dict[str, np.ndarray]:
        if self._histories is None:
            index = self.dataset.item_index
            self._histories = {
                user: np.array(sorted(index[i] for i in items if i in index), dtype=np.int64)
                for user, items in self.dataset.user_items().items()
            }
        return self._histories

    def _rec_negatives(
        self, rng: np.random.Generator, target: int, user: str, _query
    ) -> np.ndarray:
        """Distinct items, popularity-proportional, none from the user's history.

        Successive draws proportional to popularity, skipping items already drawn
        or excluded, is sampling without replacement proportional to weight (each
        next item has probability weight / remaining eligible weight). When the
        user's history holds most of the popularity mass, the equivalent exact
        Gumbel-top-k draw over the eligible items is used instead.
        """
        n = self.config.n_negatives
        p = self.popularity
        excluded = np.union1d(self.histories.get(user, np.zeros(0, dtype=np.int64)), [target])
        eligible = p.copy()
        eligible[excluded] = 0.0
        available = int(np.count_nonzero(eligible))
        if available < n:
            raise DataError(
                f"user {user!r}: only {available} items with interactions lie outside their "
                f"history, fewer than {n} negatives",
                where=self.dataset.path,
                fix="lower evaluation n_negatives",
            )
        mass = float(eligible.sum())
        if mass < _REJECTION_MIN_MASS:
            keys = np.full(self.n_items, -np.inf)
            positive = eligible > 0
            keys[positive] = np.log(eligible[positive]) + rng.gumbel(size=int(positive.sum()))
            top = np.argpartition(-keys, n - 1)[:n]
            return top[np.argsort(-keys[top], kind="stable")]
        chosen: list[int] = []
        taken = set(excluded.tolist())
        batch = int(math.ceil(1.5 * n / mass)) + 16
        while len(chosen) < n:
            draws = np.searchsorted(self._cdf, rng.random(batch), side="right")
            for item in draws.tolist():
                if item not in taken:
                    taken.add(item)
                    chosen.append(item)
                    if len(chosen) == n:
                        break
        return np.array(chosen, dtype=np.int64)

    # -- search -----------------------------------------------------------------------

    @property
    def index(self) -> BM25Index:
        if self._index is None:
            self._index = BM25Index(
                self.dataset.items["text"].to_list(), k1=self.config.bm25_k1, b=self.config.bm25_b
            )
        return self._index

    def _search_negatives(
        self, rng: np.random.Generator, target: int, _user: str, query_id: str | None
    ) -> np.ndarray:
        """The BM25 top of the query without the target, filled at random if short."""
        if query_id is None or query_id not in self.dataset.query_text:
            raise DataError(
                f"a search sample has query_id {query_id!r}, which is not in queries.parquet",
                where=self.dataset.path,
                fix="prepare the dataset again",
            )
        text = self.dataset.query_text[query_id]
        pool = self._pools.get(text)
        if pool is None:  # queries repeat a lot: rank the catalogue once per distinct text
            pool = self.index.top(text, self.config.bm25_pool, self._tiebreak)
            self._pools[text] = pool
        n = self.config.n_negatives
        negatives = pool[pool != target][:n].tolist()
        if len(negatives) < n:
            taken = set(negatives) | {target}
            while len(negatives) < n:
                for item in rng.integers(0, self.n_items, size=2 * n + 8).tolist():
                    if item not in taken:
                        taken.add(item)
                        negatives.append(item)
                        if len(negatives) == n:
                            break
        return np.array(negatives, dtype=np.int64)
