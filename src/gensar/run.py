"""One YAML file per run: every stage's settings in one validated model.

    dataset: runs/data/amazon-scientific   # a prepared dataset directory
    run_dir: runs/amazon-scientific        # where the stages write
    semantic: {...}    collab: {...}    index: {...}    candidates: {...}
    model: {family: gensar, ...}   # the model family and its own settings
    evaluate: {...}

``model:`` is a discriminated union over the registered families
(:mod:`gensar.families.registry`): its ``family`` key picks the section
(GenSAR's: ``tasks``, ``backbone``, ``train`` and its decoding knobs). The
layout before the family seam (top-level ``tasks:``/``train:``, ``model:`` as
GenSAR's backbone, ``evaluate.num_beams``) is still read.

Any field can be overridden on the command line with ``--set train.lr=0.001``.
Defaults reproduce the paper's settings where this machine allows; each
departure is named in the field's description (``gensar config`` prints them all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from gensar.config import Section, apply_overrides, dump_yaml, read_yaml, validate
from gensar.embed.sasrec import SASRecConfig
from gensar.embed.semantic import SemanticConfig
from gensar.evaluation.candidates import CandidateConfig
from gensar.evaluation.metrics import DEFAULT_TIES, TieRule
from gensar.families import registry
from gensar.ids.config import IndexConfig
from gensar.io import check_output_dir, os_error, remove_stale_temporaries
from gensar.layout import RunLayout


class EvaluateConfig(Section):
    split: str = Field(
        "test", pattern="^(valid|test)$", description="Which held-out split to report."
    )
    full_catalogue_samples: int | None = Field(
        2000,
        ge=1,
        description="Samples per task for full-catalogue Recall/NDCG@10/20 (beam search is the costly part on CPU); null = all.",
    )
    candidate_lists: int | None = Field(
        None,
        ge=1,
        description="Rank a fixed seeded subset of this many candidate lists per task (the "
        "same rows for every model; null = every list): a CPU budget for slow rankers.",
    )
    batch_size: int = Field(
        64,
        ge=1,
        description="Samples per model call when a family ranks (GenSAR: one beam-search "
        "batch); larger is faster on a GPU.",
    )
    ties: TieRule = Field(
        DEFAULT_TIES,
        description="How a target tied with other items is ranked: expected = the exact "
        "expectation of each metric over a random order of the ties (fair to coarse scorers); "
        "pessimistic = below all of them; optimistic = above all of them.",
    )
    baselines: list[str] = Field(
        default_factory=lambda: ["sasrec", "bm25", "dense"],
        description="Families evaluated beside the run's model by `gensar run` / "
        "`gensar evaluate` (with --baselines).",
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
    candidates_dir: Path | None = Field(
        None,
        description="Where the candidate lists live (default: run_dir); a benchmark shares "
        "one set across its models.",
    )
    model: SerializeAsAny[Section] = Field(
        default_factory=lambda: registry.section_of({}),
        description="The model family (`family: NAME`, see gensar.families.registry) and "
        "its own settings.",
    )
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    name: str = Field("GenSAR", description="Model name in result tables.")

    @model_validator(mode="before")
    @classmethod
    def _older_layouts(cls, data: Any) -> Any:
        return registry.upgrade_config(data) if isinstance(data, dict) else data

    @field_validator("model", mode="before")
    @classmethod
    def _family_section(cls, value: Any) -> Any:
        return registry.section_of(value)

    @property
    def family(self) -> registry.Family:
        """The registry entry of this run's model family."""
        return registry.get_family(self.model.family)


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
    dump_yaml(config, RunLayout(run_dir).config_file)


def remove_run_leftovers(run_dir: Path) -> list[Path]:
    """Temporary folders and files of killed stages anywhere in the run's own folders."""
    removed = []
    for folder in (run_dir, *RUN_FOLDERS):
        removed += remove_stale_temporaries(run_dir / folder)
    return removed


#: The folders of a run where stages build outputs under temporary names.
RUN_FOLDERS = RunLayout.FOLDERS
