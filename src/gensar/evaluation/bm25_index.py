"""One BM25 index over item text, shared by the search negatives and the BM25 baseline.

Built on ``bm25s`` with Lucene's scoring (``method="lucene"``) and the Lucene
defaults the authors' code uses (k1=0.9, b=0.4; SPEC section 8). Text is
lower-cased and split on word characters, English stop words removed, no
stemming (Pyserini's default analyser also stems with Porter; PyStemmer is not a
dependency here, so this index is slightly stricter about word forms).

Using the same index for the hard negatives and for the BM25 baseline is on
purpose: the candidate lists are then exactly "what BM25 found", as in the
paper, and the baseline's weakness on them is visible rather than hidden.
"""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np

LUCENE_K1 = 0.9
LUCENE_B = 0.4


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-case word tokens (2+ characters) without English stop words."""
    return bm25s.tokenize(
        list(texts), lower=True, stopwords="en", return_ids=False, show_progress=False
    )


class BM25Index:
    """BM25 scores of every document (item) for a query text."""

    def __init__(self, texts: Sequence[str], *, k1: float = LUCENE_K1, b: float = LUCENE_B):
        self.n_docs = len(texts)
        self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        self._bm25.index(tokenize(texts), show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """float32 ``[n_docs]``; all zeros when no query word is in the index."""
        tokens = tokenize([query])[0]
        ids = self._bm25.get_tokens_ids(tokens)
        if not ids:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float32)

    def top(self, query: str, k: int, tiebreak: np.ndarray) -> np.ndarray:
        """Indices of the ``k`` best documents with a positive score, best first.

        Lucene returns only documents that match a query word, so zero-score
        documents are never part of the pool. Equal scores are ordered by
        ``tiebreak`` (a fixed random key per document) rather than by document
        order, so the cut at ``k`` does not favour items listed early.
        """
        scores = self.scores(query)
        matching = np.flatnonzero(scores > 0)
        order = np.lexsort((tiebreak[matching], -scores[matching]))
        return matching[order[:k]]
