"""Micro-batching: concurrent requests are merged into one ONNX batch.

One worker task takes the first waiting job, then gathers more until `max_batch` texts or
`max_wait` seconds, and runs the whole batch in a thread (the scorer sorts it by length).
The state (model) is read once per batch, so a hot reload never splits a batch across models.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from serving.scorer import Scorer, Scores, Timings

__all__ = ["BatchStats", "HasScorer", "MicroBatcher"]


class HasScorer(Protocol):
    @property
    def scorer(self) -> Scorer: ...


S = TypeVar("S", bound=HasScorer)


@dataclass(frozen=True)
class BatchStats:
    size: int
    queue_seconds: list[float]
    timings: Timings


@dataclass
class _Job(Generic[S]):
    texts: list[str]
    future: asyncio.Future[tuple[list[Scores], S]]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[S]):
    def __init__(
        self,
        state: Callable[[], S],
        max_batch: int,
        max_wait: float,
        observe: Callable[[BatchStats], None] = lambda stats: None,
    ) -> None:
        self._state = state
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._observe = observe
        self._queue: asyncio.Queue[_Job[S]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def submit(self, texts: list[str]) -> tuple[list[Scores], S]:
        """Scores for `texts` in order, and the model state that produced them."""
        job: _Job[S] = _Job(texts, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.future

    async def _gather(self) -> list[_Job[S]]:
        jobs = [await self._queue.get()]
        size = len(jobs[0].texts)
        deadline = time.perf_counter() + self._max_wait
        while size < self._max_batch:
            try:
                remaining = deadline - time.perf_counter()
                job = (
                    self._queue.get_nowait()
                    if remaining <= 0
                    else await asyncio.wait_for(self._queue.get(), remaining)
                )
            except (asyncio.QueueEmpty, TimeoutError):
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs

    async def _run(self) -> None:
        while True:
            jobs = await self._gather()
            state = self._state()
            texts = [text for job in jobs for text in job.texts]
            timings = Timings()
            started = time.perf_counter()
            try:
                scores = await asyncio.to_thread(
                    state.scorer.score, texts, self._max_batch, timings
                )
            except Exception as exc:  # the requests get the error, the worker lives on
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self._observe(BatchStats(len(texts), [started - j.enqueued for j in jobs], timings))
            offset = 0
            for job in jobs:
                if not job.future.done():  # a cancelled request (client gone) is skipped
                    job.future.set_result((scores[offset : offset + len(job.texts)], state))
                offset += len(job.texts)
