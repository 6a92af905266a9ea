"""Baselines, each a ranking model of the interface in :mod:`gensar.evaluation.protocol`.

* :class:`BM25Search` (search): lexical BM25 over item text.
* :class:`DenseRetrieval` (search): cosine of sentence-encoder embeddings.
* :class:`Popularity` (both tasks): most-clicked items, a sanity floor.
* :class:`SASRecBaseline` (recommendation): adapter for ``gensar.embed.collab``.
"""

from gensar.baselines.bm25 import BM25Search
from gensar.baselines.dense import DenseRetrieval
from gensar.baselines.popularity import Popularity
from gensar.baselines.sasrec import SASRecBaseline

__all__ = ["BM25Search", "DenseRetrieval", "Popularity", "SASRecBaseline"]
