"""The baselines as families: each module registers one ranker of :mod:`gensar.baselines`.

They train nothing of their own (``TRAINS = False``): SASRec is the shared
``collab`` stage, BM25 and popularity are fitted when ranking, and the dense
baseline reads the shared semantic embeddings when a run built them. None is
served (``load`` raises :class:`~gensar.families.protocols.Unsupported`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gensar.families.protocols import Unsupported


def no_training(dataset_dir: Path, run_dir: Path, config: Any) -> None:
    """Baselines build nothing beyond the shared stages."""


def not_served(name: str):
    def load(model_dir: Path):
        raise Unsupported(f"the {name} baseline is evaluated only, not served")

    return load
