"""The SASRec baseline as a family (:class:`gensar.baselines.SASRecBaseline`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from gensar.baselines import SASRecBaseline
from gensar.config import Section
from gensar.families.baselines import no_training, not_served

NAME = "sasrec"
TRAINS = False
STAGES = ("collab",)  # its model is the shared collaborative stage


class Config(Section):
    family: Literal["sasrec"] = "sasrec"


train = no_training
load = not_served("SASRec")


def ranker(run_dir: Path, config: Any, name: str | None = None) -> SASRecBaseline:
    return SASRecBaseline(name=name) if name else SASRecBaseline()
