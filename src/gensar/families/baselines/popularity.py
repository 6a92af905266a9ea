"""The Popularity baseline as a family (:class:`gensar.baselines.Popularity`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from gensar.baselines import Popularity
from gensar.config import Section
from gensar.families.baselines import no_training, not_served

NAME = "popularity"
TRAINS = False


class Config(Section):
    family: Literal["popularity"] = "popularity"


train = no_training
load = not_served("Popularity")


def ranker(run_dir: Path, config: Any, name: str | None = None) -> Popularity:
    return Popularity(name=name) if name else Popularity()
