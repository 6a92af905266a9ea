"""Micro-batching: many concurrent requests, one call of a batch function.

A model call on CPU has a large fixed cost (hundreds of small ops per decoder
step), so 16 users in one ``recommend_batch`` cost far less than 16 calls. A
:class:`MicroBatcher` queues the requests of one kind and runs them in calls of
up to ``max_batch`` in a worker thread, so the event loop keeps accepting
requests meanwhile.

Batches are formed late: batchers that share the model thread share a *lane*
(an ``asyncio.Lock``), and a batcher takes requests from its queue only once it
holds the lane, i.e. when the model is free. Under load everything that queued
while the previous call ran goes into the next call, with no waiting; a request
arriving at an idle model waits at most ``max_wait_ms`` (counted from its
arrival) for company. Waiting batchers get the lane in turn (the lock is
first-come first-served), so recommendations cannot starve searches.

With batching off every request is its own call, still through the same
worker thread: the one-at-a-time baseline of ``benchmarks/serving_load.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, NamedTuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class MicroBatcher(Generic[T, R]):
    """Collects concurrent ``submit`` calls into calls of ``run_batch(list) -> list``."""

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R]],
        executor: Executor,
        *,
        max_batch: int = 16,
        max_wait_ms: float = 5.0,
        enabled: bool = True,
        lane: asyncio.Lock | None = None,
        name: str = "batch",
    ):
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.enabled = enabled
        self.lane = lane
        self.name = name
        # Statistics: calls of run_batch, requests they served, and the recent sizes.
        self.calls = 0
        self.requests = 0
        self.recent_sizes: deque[int] = deque(maxlen=1000)
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self.enabled and self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._collect(), name=f"batcher-{self.name}")

    async def stop(self, error: Exception | None = None) -> None:
        """Stop collecting; requests still queued get ``error`` (default: RuntimeError)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue is not None and not self._queue.empty():
            waiting = self._queue.get_nowait()
            _settle(waiting.future, error=error or RuntimeError(f"{self.name} batcher stopped"))

    async def submit(self, payload: T) -> R:
        """The result for one payload; its exception if the batch function raised for it."""
        if not self.enabled or self._queue is None:
            loop = asyncio.get_running_loop()
            self._count(1)
            results = await loop.run_in_executor(self.executor, self.run_batch, [payload])
            return results[0]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        await self._queue.put(_Waiting(payload, future, loop.time()))
        return await future

    def _count(self, size: int) -> None:
        self.calls += 1
        self.requests += size
        self.recent_sizes.append(size)

    def stats(self) -> dict[str, float]:
        mean = self.requests / self.calls if self.calls else 0.0
        return {"calls": self.calls, "requests": self.requests, "mean_batch": round(mean, 2)}

    async def _collect(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            async with self.lane or contextlib.nullcontext():
                batch = [first]
                deadline = first.arrival + self.max_wait
                while len(batch) < self.max_batch:
                    if not self._queue.empty():
                        batch.append(self._queue.get_nowait())
                        continue
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self._queue.get(), left))
                    except TimeoutError:
                        break
                live = [w for w in batch if not w.future.done()]
                await self._run([w.payload for w in live], [w.future for w in live])

    async def _run(self, payloads: list[T], futures: list[asyncio.Future[R]]) -> None:
        if not payloads:
            return
        loop = asyncio.get_running_loop()
        self._count(len(payloads))
        try:
            results = await loop.run_in_executor(self.executor, self.run_batch, payloads)
        except Exception as err:  # noqa: BLE001 - handed to the caller, not swallowed
            if len(payloads) == 1:
                _settle(futures[0], error=err)
                return
            # One bad input must not fail its neighbours: find it by running each alone.
            log.warning("%s batch of %d failed; retrying one by one", self.name, len(payloads))
            for payload, future in zip(payloads, futures, strict=True):
                await self._run([payload], [future])
            return
        for future, result in zip(futures, results, strict=True):
            _settle(future, result=result)


class _Waiting(NamedTuple):
    payload: Any
    future: asyncio.Future
    arrival: float


def _settle(future: asyncio.Future, *, result=None, error: BaseException | None = None) -> None:
    """Resolve a future unless its request is gone (a client that hung up)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
