"""Decoding: prefix tries of identifiers, constrained beam search, candidate scoring.

* :class:`IdentifierCatalogue` holds the identifiers of one kind (semantic
  for search, collaborative for recommendation) and their trie.
* :func:`beam_search` generates the best items from the whole catalogue (or a
  restricted trie); :func:`restricted_beam_search` limits it to each input's
  candidates (the paper's protocol); :func:`score_candidates` gives the exact
  log-likelihood of each candidate.
* :func:`suggest_queries` generates next-query suggestions (NSQP).

Under these, :func:`~gensar.decoding.seq2seq.inference` picks the model
backend: a lean T5 path (:mod:`gensar.decoding.lean_t5`) for float32 T5
models, transformers' own forward with a shared cross-attention cache
(:mod:`gensar.decoding.shared_attention`) for any other encoder-decoder.
"""

from gensar.decoding.beam import RankedItems, beam_search
from gensar.decoding.scoring import CandidateScores, restricted_beam_search, score_candidates
from gensar.decoding.seq2seq import SpecialTokens
from gensar.decoding.text import Suggestion, suggest_queries
from gensar.decoding.trie import IdentifierCatalogue, IdentifierTrie, build_trie

__all__ = [
    "CandidateScores",
    "IdentifierCatalogue",
    "IdentifierTrie",
    "RankedItems",
    "SpecialTokens",
    "Suggestion",
    "beam_search",
    "build_trie",
    "restricted_beam_search",
    "score_candidates",
    "suggest_queries",
]
