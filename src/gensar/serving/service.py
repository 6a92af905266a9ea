"""The service behind the routes: checks input, reads histories, batches model calls.

Threads: one worker runs every model call (torch uses ``config.threads`` inside
it), one reads the history store and one writes it, each with its own SQLite
connection, so a history read or an event commit never waits for the model.
"""

from __future__ import annotations

import asyncio
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gensar.answering import RECOMMEND, SEARCH, SUGGEST, answer
from gensar.card import ModelCard
from gensar.families.protocols import HistoryEntry, Prediction, Servable, Unsupported
from gensar.serving import schemas as s
from gensar.serving.batching import MicroBatcher
from gensar.serving.checks import Checks
from gensar.serving.config import ServeConfig
from gensar.serving.errors import ApiError
from gensar.serving.store import Behaviour, HistoryStore, StoredEvent, model_window

log = logging.getLogger(__name__)

# (history, k) or (history, query, k): what one request hands to the model.
RankJob = tuple[list[HistoryEntry], int]
SearchJob = tuple[list[HistoryEntry], str, int]


class Service:
    """Everything a request needs: the model (loaded once), the store and the batchers."""

    def __init__(
        self,
        model: Servable,
        store_path: str | Path,
        config: ServeConfig,
        *,
        window: tuple[int, int] = (5, 5),
    ):
        self.model = model
        self.config = config
        self.store_path = Path(store_path)
        self.window_rec, self.window_sessions = window
        self.descriptions = _descriptions(model)
        self.check = Checks(config, model.item_index)
        self._started = False

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store connections and start the batchers (needs the running loop)."""
        if self._started:
            return
        c = self.config
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="gensar-model")
        self._read_pool = ThreadPoolExecutor(1, thread_name_prefix="gensar-read")
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="gensar-write")
        self.reader = HistoryStore(self.store_path, synchronous=c.synchronous)
        self.writer = HistoryStore(self.store_path, synchronous=c.synchronous)
        common = {
            "max_batch": c.max_batch,
            "max_wait_ms": c.max_wait_ms,
            "enabled": c.batching,
            "lane": asyncio.Lock(),  # one model thread: batches form when it is free
        }
        self.recommender = MicroBatcher(
            self._recommend_batch, self._model_pool, name="recommend", **common
        )
        self.searcher = MicroBatcher(self._search_batch, self._model_pool, name="search", **common)
        self.suggester = MicroBatcher(
            self._suggest_batch, self._model_pool, name="suggest", **common
        )
        # Group commit: appends queued while one transaction commits share the next one.
        self.appender = MicroBatcher(
            self.writer.append_many,
            self._write_pool,
            max_batch=256,
            max_wait_ms=0.0,
            enabled=c.batching,
            name="events",
        )
        for batcher in self.batchers:
            await batcher.start()
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        gone = ApiError(503, "the server is shutting down; retry shortly")
        for batcher in self.batchers:
            await batcher.stop(gone)
        for pool in (self._model_pool, self._read_pool, self._write_pool):
            pool.shutdown(wait=True)
        self.reader.close()
        self.writer.close()
        self._started = False

    @property
    def batchers(self) -> list[MicroBatcher]:
        return [self.recommender, self.searcher, self.suggester, self.appender]

    # -- endpoints -------------------------------------------------------------------------------
    async def recommend(self, req: s.RecommendRequest) -> s.RankingResponse:
        self.check.k(req.k)
        history = await self._history(req)
        found = await self._ask(self.recommender, (history, req.k))
        return s.RankingResponse(
            user_id=req.user_id, k=req.k, history_used=len(history), items=_items(found)
        )

    async def search(self, req: s.SearchRequest) -> s.SearchResponse:
        self.check.k(req.k)
        query = self.check.query(req.query, "body.query")
        history = await self._history(req)
        found = await self._ask(self.searcher, (history, query, req.k))
        return s.SearchResponse(
            user_id=req.user_id,
            k=req.k,
            query=query,
            history_used=len(history),
            items=_items(found),
        )

    async def suggest_queries(self, req: s.SuggestRequest) -> s.SuggestResponse:
        self.check.k(req.k)
        history = await self._history(req)
        found = await self._ask(self.suggester, (history, req.k))
        queries = [s.QueryOut(query=p.query or "", score=p.score) for p in found if _finite(p)]
        return s.SuggestResponse(
            user_id=req.user_id, k=req.k, history_used=len(history), queries=queries
        )

    async def add_events(self, req: s.EventsRequest) -> s.EventsResponse:
        self.check.identifier(req.user_id, "body.user_id")
        entries = self.check.behaviours(req.events, "body.events")
        behaviours = [
            Behaviour(e.behaviour, e.item_id, e.query, event.time)
            for e, event in zip(entries, req.events, strict=True)
        ]
        last = await self.appender.submit((req.user_id, behaviours))
        return s.EventsResponse(user_id=req.user_id, accepted=len(behaviours), last_seq=last)

    def item(self, item_id: str) -> s.ItemResponse:
        if item_id not in self.model.item_index:
            raise ApiError(
                404,
                f"unknown item {item_id!r}: not in this model's catalogue",
                field="path.item_id",
            )
        return s.ItemResponse(
            item_id=item_id,
            title=self.model.title(item_id),
            description=self.descriptions.get(item_id),
        )

    async def user_history(self, user_id: str, limit: int) -> s.HistoryResponse:
        self.check.identifier(user_id, "path.user_id")
        self.check.limit(limit)

        def read() -> tuple[int, list[StoredEvent], list[StoredEvent] | None]:
            newest = self.reader.newest(user_id, limit=limit)
            window = self.reader.window(user_id, self.window_rec, self.window_sessions)
            return self.reader.count(user_id), newest, window

        total, newest, window = await self._read(read)
        if window is None:
            raise ApiError(
                404, f"unknown user {user_id!r}: no behaviours stored", field="path.user_id"
            )
        entries = [
            s.StoredEntryOut(
                seq=e.seq,
                behaviour=e.behaviour,
                item_id=e.item_id,
                title=self.model.title(e.item_id) if e.item_id else None,
                query=e.query,
                time=e.time,
            )
            for e in reversed(newest)
        ]
        return s.HistoryResponse(
            user_id=user_id, total=total, entries=entries, window=[e.seq for e in window]
        )

    async def users(self, prefix: str, limit: int) -> s.UsersResponse:
        self.check.limit(limit)
        if len(prefix) > self.config.max_id_chars:
            raise ApiError(422, "query.prefix is too long", field="query.prefix")
        return s.UsersResponse(users=await self._read(self.reader.users, prefix, limit))

    async def health(self) -> s.HealthResponse:
        return s.HealthResponse(
            status="ok",
            items=len(self.model.item_ids),
            events=await self._read(self.reader.total_events),
            batching=self.config.batching,
            threads=self.config.threads,
            batches={b.name: b.stats() for b in self.batchers},
        )

    # -- histories -------------------------------------------------------------------------------
    async def _history(self, req: s.UserOrHistory) -> list[HistoryEntry]:
        """The window of behaviours the model reads: from the store, or from the request."""
        if req.user_id is not None:
            self.check.identifier(req.user_id, "body.user_id")
            window = await self._read(
                self.reader.window, req.user_id, self.window_rec, self.window_sessions
            )
            if window is None:
                raise ApiError(
                    404,
                    f"unknown user {req.user_id!r}: no behaviours stored; post some to /events "
                    "first, or send a 'history' instead",
                    field="body.user_id",
                )
            return [HistoryEntry(e.behaviour, e.item_id, e.query) for e in window]
        assert req.history is not None
        entries = self.check.behaviours(req.history, "body.history")
        window, _ = model_window(reversed(entries), self.window_rec, self.window_sessions)
        return window

    async def _ask(self, batcher: MicroBatcher, job: tuple) -> list[Prediction]:
        """A model call; an operation the model does not offer is a 501, not a crash."""
        try:
            return await batcher.submit(job)
        except Unsupported as err:
            raise ApiError(501, f"this model does not offer it: {err}") from None

    async def _read(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, fn, *args)

    # -- batch functions (run in the model thread) -------------------------------------------------
    def _recommend_batch(self, jobs: list[RankJob]) -> list[list[Prediction]]:
        return answer(self.model, RECOMMEND, jobs)

    def _search_batch(self, jobs: list[SearchJob]) -> list[list[Prediction]]:
        return answer(self.model, SEARCH, jobs)

    def _suggest_batch(self, jobs: list[RankJob]) -> list[list[Prediction]]:
        return answer(self.model, SUGGEST, jobs)


def _finite(p: Prediction) -> bool:
    return math.isfinite(p.score)


def _items(found: list[Prediction]) -> list[s.ItemOut]:
    return [
        s.ItemOut(item_id=p.item_id or "", title=p.title, score=p.score)
        for p in found
        if _finite(p) and p.item_id
    ]


def _descriptions(model: Servable) -> dict[str, str]:
    """The item texts a model offers (optional ``descriptions()`` of a Servable)."""
    describe = getattr(model, "descriptions", None)
    return dict(describe() or {}) if callable(describe) else {}


def card_of(model: Servable) -> ModelCard:
    """A model's card (optional ``card`` of a Servable): its dataset and history window."""
    card = getattr(model, "card", None)
    return card if isinstance(card, ModelCard) else ModelCard()
