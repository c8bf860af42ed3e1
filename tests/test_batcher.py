"""Micro-batching merges concurrent requests into one batch and keeps each request's order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from serving.core.scorer import Scores, Timings
from serving.http.batcher import BatchFailed, MicroBatcher
from serving.http.observability import BatchStats


@dataclass
class FakeScorer:
    batches: list[list[str]] = field(default_factory=list)
    contexts: list[list[str]] = field(default_factory=list)
    fail: bool = False

    def score(
        self, texts: list[str], batch_size: int, timings: Timings, contexts: list[str]
    ) -> list[Scores]:
        if self.fail:
            raise RuntimeError("boom")
        self.batches.append(list(texts))
        self.contexts.append(list(contexts))
        return [Scores({"frustration": float(len(t))}, False) for t in texts]


@dataclass
class State:
    scorer: FakeScorer


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_concurrent_requests_share_one_batch() -> None:
    state = State(FakeScorer())
    seen: list[BatchStats] = []

    async def main() -> list[list[float]]:
        batcher = MicroBatcher(lambda: state, max_batch=64, max_wait=0.05, observe=seen.append)
        batcher.start()
        requests = [["a" * i, "b" * (i + 10)] for i in range(1, 6)]
        answers = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        return [[s.probabilities["frustration"] for s in scores] for scores, _ in answers]

    results = run(main())
    assert results == [[float(i), float(i + 10)] for i in range(1, 6)]
    assert len(state.scorer.batches) == 1 and len(state.scorer.batches[0]) == 10
    assert seen[0].size == 10 and len(seen[0].queue_seconds) == 5


def test_each_text_reaches_the_scorer_with_its_own_context() -> None:
    state = State(FakeScorer())

    async def main() -> None:
        batcher = MicroBatcher(lambda: state, max_batch=64, max_wait=0.05)
        batcher.start()
        await asyncio.gather(
            batcher.submit(["x", "yy"], ["agent: hi", ""]), batcher.submit(["zzz"])
        )
        await batcher.stop()

    run(main())
    pairs = {
        t: c
        for texts, contexts in zip(state.scorer.batches, state.scorer.contexts, strict=True)
        for t, c in zip(texts, contexts, strict=True)
    }
    assert pairs == {"x": "agent: hi", "yy": "", "zzz": ""}


def test_batch_size_bounds_the_merge() -> None:
    state = State(FakeScorer())

    async def main() -> None:
        batcher = MicroBatcher(lambda: state, max_batch=4, max_wait=0.05)
        batcher.start()
        await asyncio.gather(*(batcher.submit(["x", "y"]) for _ in range(4)))
        await batcher.stop()

    run(main())
    assert [len(b) for b in state.scorer.batches] == [4, 4]


def test_a_failing_batch_fails_its_requests_and_the_worker_lives_on() -> None:
    state = State(FakeScorer(fail=True))

    async def main() -> str:
        batcher = MicroBatcher(lambda: state, max_batch=8, max_wait=0.0)
        batcher.start()
        try:
            await batcher.submit(["x"])
        except BatchFailed as exc:
            message = str(exc)
        state.scorer.fail = False
        scores, _ = await batcher.submit(["abc"])
        await batcher.stop()
        return f"{message}:{scores[0].probabilities['frustration']}"

    assert run(main()) == "RuntimeError:3.0"
