"""Answering requests with a :class:`~gensar.families.protocols.Servable`: one code path
for ``gensar serve`` (its micro-batches) and ``gensar predict`` (a file of requests).

A batch is split by ``k``: a family's answer may depend on ``k`` (GenSAR's beam
width follows it), so a request is always answered with its own ``k``, exactly as
if it came alone, whatever else shares its batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gensar.data import schema
from gensar.errors import GensarError
from gensar.families.protocols import HistoryEntry, Prediction, Servable

RECOMMEND, SEARCH, SUGGEST = "recommend", "search", "suggest_queries"
TASKS = (RECOMMEND, SEARCH, SUGGEST)


def as_entries(history: Sequence[HistoryEntry | Mapping[str, Any]]) -> list[HistoryEntry]:
    """Accept HistoryEntry objects or plain dicts (the JSON of the service)."""
    out = []
    for n, entry in enumerate(history):
        if isinstance(entry, HistoryEntry):
            out.append(entry)
            continue
        behaviour = entry.get("behaviour")
        if behaviour not in schema.BEHAVIOURS:
            raise GensarError(
                f"history[{n}]: unknown behaviour {behaviour!r}",
                fix=f"use one of {', '.join(schema.BEHAVIOURS)}",
            )
        if behaviour == schema.SEARCH_QUERY:
            query = entry.get("query")
            if not isinstance(query, str) or not query.strip():
                raise GensarError(f"history[{n}]: a search_query needs a non-empty 'query' text")
            out.append(HistoryEntry(behaviour, None, query))
        else:
            item = entry.get("item_id")
            if not isinstance(item, str) or not item:
                raise GensarError(f"history[{n}]: a {behaviour} needs an 'item_id'")
            out.append(HistoryEntry(behaviour, item, None))
    return out


def by_k(jobs: Sequence[tuple], run: Callable[[list, int], list]) -> list:
    """Run jobs grouped by their k (the last field), results in the jobs' order."""
    groups: dict[int, list[int]] = defaultdict(list)
    for n, job in enumerate(jobs):
        groups[job[-1]].append(n)
    out: list[Any] = [None] * len(jobs)
    for k, rows in groups.items():
        for row, result in zip(rows, run([jobs[r] for r in rows], k), strict=True):
            out[row] = result
    return out


def answer(model: Servable, task: str, jobs: Sequence[tuple]) -> list[list[Prediction]]:
    """Answer ``(history, k)`` jobs (``(history, query, k)`` for search) of one task."""
    if task == RECOMMEND:
        return by_k(jobs, lambda group, k: model.recommend_batch([j[0] for j in group], k))
    if task == SEARCH:
        return by_k(
            jobs,
            lambda group, k: model.search_batch([j[0] for j in group], [j[1] for j in group], k),
        )
    if task == SUGGEST:
        return by_k(jobs, lambda group, k: model.suggest_queries_batch([j[0] for j in group], k))
    raise ValueError(f"unknown task {task!r}")


__all__ = ["TASKS", "HistoryEntry", "answer", "as_entries", "by_k"]
