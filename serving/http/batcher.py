"""Micro-batching: concurrent requests are merged into ONNX batches, fairly and under watch.

Each request is a job of texts. One worker task builds a batch from the waiting jobs, fewest
texts left first and one text per job per round, until `max_batch` texts or `max_tokens`
tokens (padded: count x longest; each text priced by `serving.http.admission`); so a
64-message request is spread over many short batches and a one-message request behind it waits
at most for the batch already running. A job is pinned to the model state of its first batch,
so a hot reload never splits a request across models.

Whether a job may join the queue is admission's call, given the tokens the fair schedule runs
ahead of it (`queued_ahead`). A failed batch fails only its own jobs (`BatchFailed`), whatever
it raised; if the worker itself dies, a watchdog restarts it, and gives up after
`MAX_RESTARTS` within `RESTART_WINDOW` seconds (then `alive` is False and readiness fails).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Generic, Protocol, TypeVar

from serving.core.scorer import Scorer, Scores, Timings
from serving.http.admission import Admission
from serving.http.observability import BatchStats, log

__all__ = ["BatchFailed", "BatcherDown", "HasScorer", "MicroBatcher"]

MAX_RESTARTS = 3
UNLIMITED = Admission()  # every job admitted, one token a text
RESTART_WINDOW = 60.0
FATAL = (asyncio.CancelledError, KeyboardInterrupt, SystemExit)


class HasScorer(Protocol):
    @property
    def scorer(self) -> Scorer: ...


S = TypeVar("S", bound=HasScorer)


class BatchFailed(Exception):
    """The batch holding this request failed; other requests are unaffected."""


class BatcherDown(Exception):
    """The worker died too often and is not restarted."""


@dataclass(eq=False)
class _Job(Generic[S]):
    texts: list[str]
    contexts: list[str]  # each text's thread context ("" for none)
    costs: list[int]
    future: asyncio.Future[tuple[list[Scores], S]]
    enqueued: float = field(default_factory=time.perf_counter)
    prefix: list[int] = field(init=False)
    scores: list[Scores | None] = field(init=False)
    next: int = 0  # the next text to schedule
    pending: int = field(init=False)  # texts not yet scored
    state: S | None = None

    def __post_init__(self) -> None:
        self.prefix = [0, *accumulate(self.costs)]
        self.scores = [None] * len(self.texts)
        self.pending = len(self.texts)

    @property
    def remaining(self) -> int:
        return len(self.texts) - self.next

    def cost_of_next(self, count: int) -> int:
        """Tokens of the next `count` texts still to schedule."""
        return self.prefix[min(len(self.texts), self.next + count)] - self.prefix[self.next]


class MicroBatcher(Generic[S]):
    def __init__(
        self,
        state: Callable[[], S],
        max_batch: int,
        max_wait: float,
        observe: Callable[[BatchStats], None] = lambda stats: None,
        *,
        max_tokens: int = 1 << 30,
        admission: Admission = UNLIMITED,
        on_failure: Callable[[str], None] = lambda what: None,
    ) -> None:
        self._state = state
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._observe = observe
        self._max_tokens = max_tokens
        self._admission = admission
        self._on_failure = on_failure
        self._jobs: list[_Job[S]] = []
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False
        self._restarts: list[float] = []
        self._busy_since: float | None = None  # when the running batch started

    @property
    def alive(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def stuck(self, seconds: float) -> bool:
        """One batch has been running for over `seconds` (a hung model call)."""
        return self._busy_since is not None and time.monotonic() - self._busy_since > seconds

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="micro-batcher")
        self._worker.add_done_callback(self._watchdog)

    async def stop(self) -> None:
        self._stopping = True
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    def queued_ahead(self, costs: list[int]) -> int:
        """Tokens the fair schedule runs before a new job with these costs is done:
        from every waiting job, as many texts as the new job has."""
        return sum(j.cost_of_next(len(costs)) for j in self._jobs if not j.future.done())

    async def submit(
        self, texts: list[str], contexts: list[str] | None = None
    ) -> tuple[list[Scores], S]:
        """Scores for `texts` (each with its thread context, if any) in order, and the model
        state that produced them. Raises QueueFull, BatchFailed or BatcherDown; cancelling
        drops the job's unscheduled texts."""
        if not self.alive:
            raise BatcherDown("the batch worker is not running")
        contexts = contexts if contexts is not None else [""] * len(texts)
        costs = self._admission.price(texts, contexts)
        self._admission.admit(costs, self.queued_ahead(costs))
        job: _Job[S] = _Job(texts, contexts, costs, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._arrived.set()
        return await job.future

    def _pick(self) -> list[tuple[_Job[S], int]]:
        """One batch: rounds of one text per job, fewest texts left first, within budget. The
        scorer pads every text to the batch's longest, so a batch costs count x longest."""
        self._jobs = [j for j in self._jobs if j.remaining and not j.future.done()]
        order = sorted(self._jobs, key=lambda j: (j.remaining, j.enqueued))
        picks: list[tuple[_Job[S], int]] = []
        longest = 0
        while order:
            for job in order:
                cost = max(longest, job.costs[job.next])
                full = len(picks) >= self._max_batch or (len(picks) + 1) * cost > self._max_tokens
                if picks and full:
                    return picks
                picks.append((job, job.next))
                job.next += 1
                longest = cost
            order = [j for j in order if j.remaining]
        return picks

    async def _gather(self) -> list[tuple[_Job[S], int]]:
        """Wait for work, then up to `max_wait` for batch-mates (never past a full batch)."""
        while not any(j.remaining and not j.future.done() for j in self._jobs):
            self._arrived.clear()
            await self._arrived.wait()
        deadline = time.perf_counter() + self._max_wait
        while (remaining := deadline - time.perf_counter()) > 0:
            queued = [j for j in self._jobs if not j.future.done()]
            if sum(j.remaining for j in queued) >= self._max_batch:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return self._pick()

    async def _run(self) -> None:
        while True:
            picks = await self._gather()
            if not picks:
                continue
            self._busy_since = time.monotonic()
            try:
                await self._score(picks)
            except FATAL:  # the worker ends (the watchdog decides); this batch cannot finish
                self._fail(picks, BatcherDown("the batch worker was interrupted"))
                raise
            except BaseException as exc:  # e.g. a tokenizer panic: fail this batch, live on
                log("batch failed", logging.ERROR, error=type(exc).__name__, texts=len(picks))
                self._on_failure("batch")
                self._fail(picks, BatchFailed(type(exc).__name__))
            finally:
                self._busy_since = None
                # finished jobs pin their model: drop them now, not when the next batch forms,
                # so a model retired by a reload is freed on an idle server too
                self._jobs = [j for j in self._jobs if not j.future.done()]
                del picks

    @staticmethod
    def _fail(picks: list[tuple[_Job[S], int]], error: Exception) -> None:
        for job in {job for job, _ in picks}:
            if not job.future.done():
                job.future.set_exception(error)

    async def _score(self, picks: list[tuple[_Job[S], int]]) -> None:
        """Score the picked texts, grouped by the model state each job is pinned to."""
        current = self._state()
        started = time.perf_counter()
        groups: dict[int, list[tuple[_Job[S], int]]] = {}
        waited: dict[int, list[float]] = {}
        for job, index in picks:
            if job.state is None:  # first batch of this job: pin its model, note its wait
                job.state = current
                waited.setdefault(id(current), []).append(started - job.enqueued)
            groups.setdefault(id(job.state), []).append((job, index))
        for key, group in groups.items():
            state = group[0][0].state
            assert state is not None
            timings = Timings()
            texts = [job.texts[index] for job, index in group]
            contexts = [job.contexts[index] for job, index in group]
            scores = await asyncio.to_thread(
                state.scorer.score, texts, self._max_batch, timings, contexts
            )
            self._observe(BatchStats(len(texts), waited.get(key, []), timings))
            for (job, index), result in zip(group, scores, strict=True):
                job.scores[index] = result
                job.pending -= 1
                if not job.pending and not job.future.done():
                    done = [s for s in job.scores if s is not None]
                    job.future.set_result((done, state))

    def _watchdog(self, worker: asyncio.Task[None]) -> None:
        """Restart a worker that died (not one that was stopped); give up if it keeps dying."""
        if self._stopping or worker.cancelled():
            return
        error = worker.exception()
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW] + [now]
        given_up = len(self._restarts) > MAX_RESTARTS
        log(
            "batch worker died",
            logging.ERROR,
            error=type(error).__name__,
            restarting=not given_up,
        )
        self._on_failure("worker")
        if not given_up:
            self.start()
            return
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(BatcherDown("the batch worker stopped"))
