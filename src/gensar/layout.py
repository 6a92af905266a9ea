"""The layout of a run directory, in one place: every stage asks :class:`RunLayout` for
its paths instead of spelling them.

    RUN/
      config.yaml  stages.json                 the settings and the stages' fingerprints
      embeddings/semantic.safetensors          gensar embed text
      embeddings/collab.safetensors, sasrec/   gensar embed collab (SASRec)
      identifiers/                             gensar index
      candidates/                              the evaluation's lists (a benchmark shares one)
      training/ (checkpoints/, best/, tokenizer/, metrics.jsonl)   a family's training work
      model/                                   the trained model (gensar serve / predict)
      results/                                 gensar evaluate
      serving/history.sqlite3                  gensar serve's history store
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EMBEDDINGS = "embeddings"
SEMANTIC_FILE = "semantic.safetensors"
COLLAB_FILE = "collab.safetensors"
SASREC = "sasrec"
IDENTIFIERS = "identifiers"
IDENTIFIERS_TABLE = "identifiers.parquet"
CANDIDATES = "candidates"
TRAINING = "training"
CHECKPOINTS = "checkpoints"
MODEL = "model"
RESULTS = "results"
SERVING = "serving"
STORE_FILE = "history.sqlite3"
STAGES_FILE = "stages.json"
CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory (``candidates_root``: where its candidate lists
    live when they are shared, e.g. a benchmark's output folder)."""

    root: Path
    candidates_root: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if self.candidates_root is not None:
            object.__setattr__(self, "candidates_root", Path(self.candidates_root))

    # -- the shared stages -----------------------------------------------------------------------
    @property
    def embeddings(self) -> Path:
        return self.root / EMBEDDINGS

    @property
    def semantic_embeddings(self) -> Path:
        return self.embeddings / SEMANTIC_FILE

    @property
    def collab_embeddings(self) -> Path:
        return self.embeddings / COLLAB_FILE

    @property
    def sasrec(self) -> Path:
        return self.embeddings / SASREC

    @property
    def identifiers(self) -> Path:
        return self.root / IDENTIFIERS

    @property
    def identifiers_table(self) -> Path:
        return self.identifiers / IDENTIFIERS_TABLE

    @property
    def candidates_dir(self) -> Path:
        """The folder holding ``candidates/`` (what the candidate functions take)."""
        return self.candidates_root or self.root

    @property
    def candidates(self) -> Path:
        return self.candidates_dir / CANDIDATES

    # -- training, model, evaluation, serving ------------------------------------------------------
    @property
    def training(self) -> Path:
        return self.root / TRAINING

    @property
    def checkpoints(self) -> Path:
        return self.training / CHECKPOINTS

    @property
    def model(self) -> Path:
        return self.root / MODEL

    @property
    def results(self) -> Path:
        return self.root / RESULTS

    @property
    def stages_file(self) -> Path:
        return self.root / STAGES_FILE

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @classmethod
    def of_model(cls, model_dir: str | Path) -> RunLayout:
        """The run a model directory belongs to (its parent)."""
        return cls(Path(model_dir).resolve().parent)

    @property
    def store(self) -> Path:
        return self.root / SERVING / STORE_FILE

    # -- stage outputs -------------------------------------------------------------------------------
    def stage_output(self, stage: str) -> Path:
        """What a shared stage builds (its existence + fingerprint mean "up to date")."""
        return {
            "semantic": self.semantic_embeddings,
            "collab": self.collab_embeddings,
            "index": self.identifiers_table,
            "candidates": self.candidates,
        }[stage]

    def adoptable(self, stage: str) -> Path | None:
        """What a benchmark copies from an earlier run with the same stage fingerprint."""
        return {
            "semantic": self.semantic_embeddings,
            "collab": self.embeddings,
            "index": self.identifiers,
        }.get(stage)

    #: Folders where stages build outputs under temporary names (relative to the run).
    FOLDERS = (
        EMBEDDINGS,
        TRAINING,
        f"{TRAINING}/{CHECKPOINTS}",
        CANDIDATES,
        RESULTS,
    )
