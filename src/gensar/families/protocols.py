"""What a model family must offer the shared stages: the seam every family plugs into.

A *family* (GenSAR, GenSR, SynerGen, a baseline) is a package that the registry
(:mod:`gensar.families.registry`) names. The shared stages know only these
protocols, never a family's internals:

* evaluation (:mod:`gensar.evaluation`) ranks with a :class:`Ranker`;
* serving and ``gensar predict`` answer with a :class:`Servable`;
* the pipeline and the benchmark train and load through the family module
  (:class:`FamilyModule`).

A capability a model lacks is declared by raising :class:`Unsupported`
(a ``NotImplementedError``), e.g. a generative model that cannot score every
catalogue item (``score_all``) but can return a top-k by beam search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from gensar.data.dataset import Dataset


class Unsupported(NotImplementedError):
    """Raised by a model for an operation it does not offer (the caller skips it)."""


class HistoryEntry(NamedTuple):
    """One behaviour of a user history (GenSAR's Eq. 1): an item click or a query text.

    ``time`` (seconds) is optional: families with time-aware positions
    (SynerGen) use it when given and fall back to the order otherwise.
    """

    behaviour: str
    item_id: str | None = None
    query: str | None = None
    time: int | None = None


@dataclass(frozen=True)
class Prediction:
    """One ranked answer: an item (with its title) or a query text, and its score."""

    item_id: str | None
    score: float
    title: str | None = None
    query: str | None = None


@runtime_checkable
class Ranker(Protocol):
    """A trained model on the evaluation protocol (candidate lists and the catalogue).

    ``samples`` are rows of the dataset's ``samples.parquet`` (user, time, task,
    query, history) in the candidate file's order; scores are higher = better.
    At least one of ``score_all`` / ``top_k`` may raise :class:`Unsupported`.
    """

    name: str
    tasks: tuple[str, ...]

    def fit(self, dataset: Dataset, run_dir: Path | None = None) -> None:
        """Load (or, for untrained baselines, build) what ranking needs."""

    def score_candidates(self, samples: pl.DataFrame, candidates: list[list[str]]) -> np.ndarray:
        """``[n, n_candidates]`` scores in the order of each candidate list."""

    def score_all(self, samples: pl.DataFrame) -> np.ndarray:
        """``[n, n_items]`` scores in the dataset's item order."""

    def top_k(self, samples: pl.DataFrame, k: int) -> list[list[str]]:
        """The ``k`` best item ids per sample, best first."""


@runtime_checkable
class Servable(Protocol):
    """A loaded model that answers users: what ``gensar serve`` and ``gensar predict`` call.

    Each answer must not depend on the other requests of its batch (same ``k``
    semantics as a batch of one). ``suggest_queries_batch`` may raise
    :class:`Unsupported`.
    """

    name: str
    item_ids: list[str]
    item_index: dict[str, int]

    def recommend_batch(
        self, histories: Sequence[Sequence[HistoryEntry]], k: int
    ) -> list[list[Prediction]]: ...

    def search_batch(
        self, histories: Sequence[Sequence[HistoryEntry]], queries: Sequence[str], k: int
    ) -> list[list[Prediction]]: ...

    def suggest_queries_batch(
        self, histories: Sequence[Sequence[HistoryEntry]], k: int
    ) -> list[list[Prediction]]: ...

    def title(self, item_id: str) -> str | None:
        """The item's title (item lookup for answers), None if unknown."""


class FamilyModule(Protocol):
    """The module a registry name maps to (``gensar.families.<name>``).

    * ``NAME``: the registry name (also the ``family:`` value in a run config);
    * ``Config``: the family's pydantic config section (a discriminated-union
      member: it has ``family: Literal[NAME]``);
    * ``train(dataset_dir, run_dir, config)``: build the model under ``run_dir``
      (a no-op for untrained baselines);
    * ``ranker(run_dir, config, name)``: the :class:`Ranker` of a trained run;
    * ``load(model_dir)``: the :class:`Servable` of a model directory.
    """

    NAME: str
    Config: type

    def train(self, dataset_dir: Path, run_dir: Path, config: Any) -> None: ...

    def ranker(self, run_dir: Path, config: Any, name: str) -> Ranker: ...

    def load(self, model_dir: Path) -> Servable: ...
