"""A trained SynerGen answering users: the family's :class:`~gensar.families.protocols.Servable`.

A request history (:class:`~gensar.families.protocols.HistoryEntry` items, or the
service's plain dicts) becomes the same token stream training used
(:mod:`gensar.families.synergen.data`): ``rec_item`` -> REC item token,
``search_query`` -> QUERY token, ``search_item`` -> SEARCH item token. Items the
model does not know are skipped (as GenSAR skips them). A query text the model
was trained with uses its stored MiniLM vector; a new text is encoded once with
the MiniLM settings of training and cached (without the semantic embedding a new
query has no vector and its token is the query type embedding alone).

Times: when every entry of a history has a ``time`` they drive the time-aware
rotary positions; otherwise the entries' order does (the rule of datasets
without timestamps). With ``merge_duplicate_clicks`` a ``rec_item`` whose
(time, item) a ``search_item`` of the history repeats is dropped, as in training.

* ``recommend_batch``: the state after the last token, scored by the retrieval
  head over the whole catalogue, exact top-k (one matrix product + topk);
* ``search_batch``: the same after appending the request's query token;
* ``suggest_queries_batch``: :class:`Unsupported` (SynerGen has no query head).

Each history is run through the network on its own (no padding, no batch
neighbours), so an answer never depends on the other requests of its batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gensar.data import schema
from gensar.errors import GensarError
from gensar.families.protocols import HistoryEntry, Prediction, Unsupported
from gensar.families.synergen import data as D
from gensar.families.synergen.ranker import LoadedSynerGen, load_model
from gensar.utils import torch_threads


def _entries(history: Sequence[HistoryEntry | Mapping[str, Any]]) -> list[HistoryEntry]:
    """HistoryEntry objects or the service's dicts -> HistoryEntry (one-line errors)."""
    out = []
    for n, entry in enumerate(history):
        if isinstance(entry, tuple) and hasattr(entry, "behaviour"):
            fields = entry._asdict()
        elif isinstance(entry, Mapping):
            fields = dict(entry)
        else:
            raise GensarError(f"history[{n}]: expected a history entry, got {type(entry).__name__}")
        behaviour = fields.get("behaviour")
        if behaviour not in schema.BEHAVIOURS:
            raise GensarError(
                f"history[{n}]: unknown behaviour {behaviour!r}",
                fix=f"use one of {', '.join(schema.BEHAVIOURS)}",
            )
        time = fields.get("time")
        if time is not None and (isinstance(time, bool) or not isinstance(time, int)):
            raise GensarError(f"history[{n}]: 'time' must be whole seconds")
        if behaviour == schema.SEARCH_QUERY:
            query = fields.get("query")
            if not isinstance(query, str) or not query.strip():
                raise GensarError(f"history[{n}]: a search_query needs a non-empty 'query' text")
            out.append(HistoryEntry(behaviour, None, query, time))
        else:
            item = fields.get("item_id")
            if not isinstance(item, str) or not item:
                raise GensarError(f"history[{n}]: a {behaviour} needs an 'item_id'")
            out.append(HistoryEntry(behaviour, item, None, time))
    return out


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise GensarError(f"k must be a whole number >= 1, got {k!r}")
    return k


class SynerGenServable:
    """What ``gensar serve`` / ``gensar predict`` call for a SynerGen model directory."""

    name = "SynerGen"

    def __init__(self, loaded: LoadedSynerGen, titles: dict[str, str] | None = None):
        self.loaded = loaded
        self.model = loaded.model
        self.config = loaded.config
        self.item_ids: list[str] = list(loaded.item_ids)
        self.item_index = {item: n for n, item in enumerate(self.item_ids)}
        self.titles = titles or {}
        texts = loaded.info.get("query_texts") or []
        self._query_row = {_norm(t): row for row, t in enumerate(texts)}
        self._new_queries: dict[str, torch.Tensor] = {}  # normalised text -> token vector

    # ------------------------------------------------------------------ tokens
    def _query_vector(self, text: str) -> torch.Tensor:
        """The [hidden] input vector of a query token (type embedding excluded)."""
        key = _norm(text)
        model = self.model
        row = self._query_row.get(key)
        if row is not None:
            return model.query_vectors(torch.tensor([row], device=self.loaded.device))[0]
        if key not in self._new_queries:
            if self.config.semantic:
                from gensar.embed.semantic import SemanticConfig, encode_texts

                semantic = SemanticConfig.model_validate(self.loaded.info.get("semantic") or {})
                vector = torch.from_numpy(encode_texts([key], semantic, progress=False))
                self._new_queries[key] = model.text_projection(vector.to(self.loaded.device))[0]
            else:
                self._new_queries[key] = torch.zeros(self.config.hidden, device=self.loaded.device)
        return self._new_queries[key]

    def _tokens(
        self, history: list[HistoryEntry], query: str | None, query_time: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """(kinds [n], item-or-query input vectors [n, hidden], times [n]) of one request."""
        timed = bool(history) and all(e.time is not None for e in history)
        searched = (
            {(e.time, e.item_id) for e in history if e.behaviour == schema.SEARCH_ITEM}
            if timed and self.config.merge_duplicate_clicks
            else set()
        )
        kinds: list[int] = []
        vectors: list[torch.Tensor] = []
        times: list[int] = []
        items = self.model.item_vectors()
        for order, entry in enumerate(history):
            time = entry.time if timed else order
            if entry.behaviour == schema.SEARCH_QUERY:
                kinds.append(D.QUERY)
                vectors.append(self._query_vector(entry.query))
            else:
                row = self.item_index.get(entry.item_id)
                if row is None:
                    continue  # an item the model does not know
                if entry.behaviour == schema.REC_ITEM and (entry.time, entry.item_id) in searched:
                    continue  # the rec half of a purchase logged as both behaviours
                kinds.append(D.REC if entry.behaviour == schema.REC_ITEM else D.SEARCH)
                vectors.append(items[row])
            times.append(time)
        if query is not None:
            kinds.append(D.QUERY)
            vectors.append(self._query_vector(query))
            # the request's query is the newest event: at ``query_time`` when given, else
            # at the last event's time (timed history) or the next order (untimed)
            if timed:
                times.append(query_time if query_time is not None else times[-1] if times else 0)
            else:
                times.append(len(history))
        keep = self.config.max_len
        kinds, vectors, times = kinds[-keep:], vectors[-keep:], times[-keep:]
        device = self.loaded.device
        if not kinds:
            return (
                torch.zeros(0, dtype=torch.long, device=device),
                torch.zeros(0, self.config.hidden, device=device),
                np.zeros(0, np.int64),
            )
        return (
            torch.tensor(kinds, dtype=torch.long, device=device),
            torch.stack(vectors),
            np.asarray(times, dtype=np.int64),
        )

    @torch.no_grad()
    def _state(
        self, history: list[HistoryEntry], query: str | None, query_time: int | None = None
    ) -> torch.Tensor:
        """[hidden] user state after the last token (zeros for an empty input)."""
        kinds, vectors, times = self._tokens(history, query, query_time)
        if len(kinds) == 0:
            return torch.zeros(self.config.hidden, device=self.loaded.device)
        tau = torch.from_numpy(D.log_time(times, self.config.time_unit)).to(kinds.device)
        return self.model.state_from_vectors(kinds, vectors, tau)

    def _answer(self, states: list[torch.Tensor], k: int) -> list[list[Prediction]]:
        out = []
        for state in states:  # one user at a time: no batch neighbour changes an answer
            scores = self.model.retrieval_scores(state[None])[0]
            top = scores.topk(min(k, scores.shape[0]))
            out.append(
                [
                    Prediction(self.item_ids[i], float(s), self.titles.get(self.item_ids[i]))
                    for s, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
                ]
            )
        return out

    # ------------------------------------------------------------------ Servable
    def recommend_batch(
        self, histories: Sequence[Sequence[HistoryEntry | Mapping]], k: int = 10
    ) -> list[list[Prediction]]:
        k = _check_k(k)
        entries = [_entries(h) for h in histories]
        with torch_threads(self.config.threads), torch.no_grad():
            return self._answer([self._state(h, None) for h in entries], k)

    def search_batch(
        self,
        histories: Sequence[Sequence[HistoryEntry | Mapping]],
        queries: Sequence[str],
        k: int = 10,
        *,
        query_times: Sequence[int | None] | None = None,
    ) -> list[list[Prediction]]:
        """``query_times`` (optional, beyond the protocol): each query's time in seconds,
        for time-aware positions of a timed history (default: the last event's time)."""
        k = _check_k(k)
        if len(histories) != len(queries):
            raise GensarError(f"{len(histories)} histories but {len(queries)} queries")
        for query in queries:
            if not isinstance(query, str) or not query.strip():
                raise GensarError("the query is empty", fix="pass the text the user searched for")
        entries = [_entries(h) for h in histories]
        with torch_threads(self.config.threads), torch.no_grad():
            times = query_times if query_times is not None else [None] * len(queries)
            states = [self._state(h, q, t) for h, q, t in zip(entries, queries, times, strict=True)]
            return self._answer(states, k)

    def suggest_queries_batch(
        self, histories: Sequence[Sequence[HistoryEntry | Mapping]], k: int = 5
    ) -> list[list[Prediction]]:
        raise Unsupported("SynerGen does not generate queries (it has no query head)")

    def title(self, item_id: str) -> str | None:
        return self.titles.get(item_id)

    # single-user conveniences (as GenSAR's API)
    def recommend(self, history: Sequence[HistoryEntry | Mapping], k: int = 10) -> list[Prediction]:
        return self.recommend_batch([history], k)[0]

    def search(
        self,
        history: Sequence[HistoryEntry | Mapping],
        query: str,
        k: int = 10,
        *,
        query_time: int | None = None,
    ) -> list[Prediction]:
        return self.search_batch([history], [query], k, query_times=[query_time])[0]


def _norm(text: str) -> str:
    return " ".join(text.strip().lower().split())


def load(model_dir: str | Path, device: str = "auto") -> SynerGenServable:
    """The :class:`SynerGenServable` of ``run_dir/synergen`` (the family's ``load``)."""
    loaded = load_model(model_dir, device)
    ids = loaded.item_ids
    stored = loaded.info.get("item_titles")
    titles = dict(zip(ids, stored, strict=True)) if stored and len(stored) == len(ids) else {}
    return SynerGenServable(loaded, titles)
