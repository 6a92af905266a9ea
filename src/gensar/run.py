"""One YAML file per run: every stage's settings in one validated model.

    dataset: runs/data/amazon-scientific   # a prepared dataset directory
    run_dir: runs/amazon-scientific        # where the stages write
    semantic: {...}    collab: {...}    index: {...}
    candidates: {...}  tasks: {...}     model: {...}    train: {...}

Any field can be overridden on the command line with ``--set train.lr=0.001``.
Defaults reproduce the paper's settings where this machine allows; each
departure is named in the field's description (``gensar config`` prints them all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from gensar.config import Section, apply_overrides, dump_yaml, read_yaml, validate
from gensar.embed.sasrec import SASRecConfig
from gensar.embed.semantic import SemanticConfig
from gensar.evaluation.candidates import CandidateConfig
from gensar.evaluation.metrics import DEFAULT_TIES, TieRule
from gensar.ids.config import IndexConfig
from gensar.io import check_output_dir, os_error, remove_stale_temporaries
from gensar.model.backbone import ModelConfig
from gensar.model.stage import GenSARConfig
from gensar.model.train import TrainConfig
from gensar.tasks.config import TaskConfig


class EvaluateConfig(Section):
    split: str = Field(
        "test", pattern="^(valid|test)$", description="Which held-out split to report."
    )
    full_catalogue_samples: int | None = Field(
        2000,
        ge=1,
        description="Samples per task for full-catalogue Recall/NDCG@10/20 (beam search is the costly part on CPU); null = all.",
    )
    num_beams: int = Field(
        30,
        ge=1,
        description="Beam width of restricted candidate ranking and of full-catalogue "
        "generation (the authors' code: 30).",
    )
    candidate_ranking: Literal["beam", "exact"] = Field(
        "beam",
        description="How GenSAR ranks a candidate list: beam = beam search restricted to the candidates (the paper's protocol, num_beams wide); exact = the log-likelihood of every candidate (~4x slower on CPU, never prunes).",
    )
    batch_size: int = Field(64, ge=1)
    ties: TieRule = Field(
        DEFAULT_TIES,
        description="How a target tied with other items is ranked: expected = the exact "
        "expectation of each metric over a random order of the ties (fair to coarse scorers); "
        "pessimistic = below all of them; optimistic = above all of them.",
    )


class RunConfig(Section):
    dataset: Path | None = Field(None, description="Prepared dataset directory (`gensar prepare`).")
    run_dir: Path | None = Field(
        None, description="Where the stages of this run write their outputs."
    )
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)
    collab: SASRecConfig = Field(default_factory=SASRecConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    candidates: CandidateConfig = Field(default_factory=CandidateConfig)
    tasks: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    name: str = Field("GenSAR", description="Model name in result tables.")

    def gensar(self) -> GenSARConfig:
        return GenSARConfig(tasks=self.tasks, model=self.model, train=self.train, name=self.name)


def load_run_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    dataset: Path | None = None,
    run_dir: Path | None = None,
) -> RunConfig:
    """The run's config from YAML (optional), CLI overrides and positional paths."""
    data = read_yaml(path) if path else {}
    data = apply_overrides(data, overrides)
    if dataset is not None:
        data["dataset"] = str(dataset)
    if run_dir is not None:
        data["run_dir"] = str(run_dir)
    return validate(RunConfig, data, source=path or "--set")


def save_run_config(config: RunConfig, *, overwrite: bool = False) -> None:
    """Record the resolved settings (all defaults spelled out) in ``run_dir/config.yaml``.

    The run directory must be new, empty or an earlier run (its ``stages.json`` or
    ``config.yaml``): a stage never writes into a folder of other things unless
    ``overwrite``. Leftovers of a killed earlier stage are removed here.
    """
    if config.run_dir is None:
        return
    run_dir = Path(config.run_dir)
    check_output_dir(run_dir, "run", overwrite=overwrite)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_error(err) from None
    remove_run_leftovers(run_dir)
    dump_yaml(config, run_dir / "config.yaml")


def remove_run_leftovers(run_dir: Path) -> list[Path]:
    """Temporary folders and files of killed stages anywhere in the run's own folders."""
    removed = []
    for folder in (run_dir, *RUN_FOLDERS):
        removed += remove_stale_temporaries(run_dir / folder)
    return removed


#: The folders of a run where stages build outputs under temporary names.
RUN_FOLDERS = ("embeddings", "training", "training/checkpoints", "candidates", "results")
