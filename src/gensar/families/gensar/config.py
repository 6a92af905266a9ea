"""GenSAR's section of a run config (``model:`` with ``family: gensar``).

    model:
      family: gensar
      tasks: {...}        # the five instruction tasks (counts, vocabulary, templates)
      backbone: {...}     # the encoder-decoder (preset, sizes)
      train: {...}        # optimisation and validation-based model selection
      num_beams: 30       # decoding knobs of the evaluation
      candidate_ranking: beam

Configs written before the family seam spelled these as top-level ``tasks:``,
``model:`` (the backbone) and ``train:``, with ``evaluate.num_beams`` and
``evaluate.candidate_ranking``; :func:`upgrade_config` moves them here, so old
YAML files and ``--set train.epochs=1`` style overrides keep working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gensar.config import Section
from gensar.families.gensar.tasks.config import TaskConfig
from gensar.families.gensar.training import TrainConfig
from gensar.model.backbone import ModelConfig

NAME = "gensar"


class GenSARSection(Section):
    """Everything GenSAR adds to the shared stages (embeddings, identifiers, candidates)."""

    family: Literal["gensar"] = "gensar"
    tasks: TaskConfig = Field(default_factory=TaskConfig)
    backbone: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    num_beams: int = Field(
        30,
        ge=1,
        description="Beam width of restricted candidate ranking and of full-catalogue "
        "generation (the authors' code: 30).",
    )
    candidate_ranking: Literal["beam", "exact"] = Field(
        "beam",
        description="How GenSAR ranks a candidate list: beam = beam search restricted to the "
        "candidates (the paper's protocol, num_beams wide); exact = the log-likelihood of every "
        "candidate (~4x slower on CPU, never prunes).",
    )


#: Top-level run-config keys of the pre-seam layout that belong to GenSAR's section.
LEGACY_SECTIONS = ("tasks", "train")
#: ``evaluate:`` keys of the pre-seam layout that are GenSAR's decoding knobs.
LEGACY_DECODING = ("num_beams", "candidate_ranking")


def _merge(base: Any, update: Any) -> Any:
    if isinstance(base, dict) and isinstance(update, dict):
        out = dict(base)
        for key, value in update.items():
            out[key] = _merge(out.get(key), value)
        return out
    return update


def upgrade_config(data: dict[str, Any]) -> dict[str, Any]:
    """Move the pre-seam spelling of GenSAR's settings into its ``model:`` section.

    A ``model:`` mapping without ``family`` was the backbone section; its keys go to
    ``model.backbone`` (also when a new-style section gets a ``--set model.preset=...``).
    Only applies when the run's family is GenSAR (or not named).
    """
    model = data.get("model")
    if model is not None and not isinstance(model, dict):
        return data
    section = dict(model or {})
    if section.get("family", NAME) != NAME:
        return data
    data = dict(data)
    moved: dict[str, Any] = {}
    for key in list(section):
        if key in ModelConfig.model_fields and key not in GenSARSection.model_fields:
            moved[key] = section.pop(key)
    if moved:
        section["backbone"] = _merge(section.get("backbone") or {}, moved)
    for key in LEGACY_SECTIONS:
        if key in data:
            section[key] = _merge(section.get(key) or {}, data.pop(key))
    evaluate = data.get("evaluate")
    if isinstance(evaluate, dict) and any(k in evaluate for k in LEGACY_DECODING):
        evaluate = dict(evaluate)
        for key in LEGACY_DECODING:
            if key in evaluate:
                section[key] = evaluate.pop(key)
        data["evaluate"] = evaluate
    if section or model is not None:
        section.setdefault("family", NAME)
        data["model"] = section
    return data
