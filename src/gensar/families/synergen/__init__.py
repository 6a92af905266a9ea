"""SynerGen (Gao et al., 2025): one decoder-only Transformer over users' mixed behaviour
sequences for personalised search and recommendation, retrieval and ranking.

The family module of the registry (:class:`gensar.families.protocols.FamilyModule`):

* ``NAME`` = ``"synergen"`` and ``Config`` (:class:`SynerGenConfig`, the ``synergen``
  family section);
* ``train(dataset_dir, run_dir, config)`` writes ``run_dir/synergen``;
* ``ranker(run_dir, config, name)`` is the evaluation's :class:`SynerGenRanker`
  of that run (ranking head on candidate lists, retrieval head on the catalogue);
* ``load(model_dir)`` is the :class:`SynerGenServable` that ``gensar serve`` and
  ``gensar predict`` call.
"""

from __future__ import annotations

from pathlib import Path

from gensar.families.synergen.config import SynerGenConfig
from gensar.families.synergen.ranker import LoadedSynerGen, SynerGenRanker, load_model
from gensar.families.synergen.serve import SynerGenServable, load
from gensar.families.synergen.train import MODEL_DIR, train

NAME = "synergen"
Config = SynerGenConfig


def ranker(run_dir: str | Path, config: SynerGenConfig | None = None, name: str = "SynerGen"):
    """The :class:`SynerGenRanker` of a trained run (``run_dir/synergen``)."""
    config = config or SynerGenConfig()
    return SynerGenRanker(
        name=name,
        model_dir=Path(run_dir) / MODEL_DIR,
        candidate_scorer=config.candidate_scorer,
        popularity_correction={
            "recommendation": config.rec_popularity_correction,
            "search": config.search_popularity_correction,
        },
    )


__all__ = [
    "MODEL_DIR",
    "NAME",
    "Config",
    "LoadedSynerGen",
    "SynerGenConfig",
    "SynerGenRanker",
    "SynerGenServable",
    "load",
    "load_model",
    "ranker",
    "train",
]
