"""SynerGen (Gao et al., 2025): one decoder-only Transformer over users' mixed behaviour
sequences for personalised search and recommendation, retrieval and ranking.

The parts a model-family registry needs: the config section
(:class:`SynerGenConfig`), ``train(dataset_dir, run_dir, config)``,
``load(model_dir)``, and the ranking model of the evaluation
(:class:`SynerGenRanker`).
"""

from gensar.families.synergen.config import SynerGenConfig
from gensar.families.synergen.ranker import LoadedSynerGen, SynerGenRanker, load
from gensar.families.synergen.train import MODEL_DIR, train

NAME = "synergen"

__all__ = [
    "MODEL_DIR",
    "NAME",
    "LoadedSynerGen",
    "SynerGenConfig",
    "SynerGenRanker",
    "load",
    "train",
]
