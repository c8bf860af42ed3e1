"""The score cache: a bounded LRU by digest of what the model reads, used by the scorer so a
live thread's earlier turns are scored once, and counted on the server's /metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from serving.core.score_cache import ScoreCache
from serving.core.scorer import Scorer, Scores, Timings
from tests.test_server import make_client

LIVE = [
    "my parcel never arrived",
    {"role": "agent", "text": "can you help with the order number"},
    "order number 12 still waiting",
]


def test_the_lru_keeps_the_most_recent_entries() -> None:
    cache: ScoreCache[Scores] = ScoreCache(2)
    a, b, c = (ScoreCache.key(t, "") for t in "abc")
    one = Scores({"frustration": 0.1}, False)
    cache.put(a, one)
    cache.put(b, one)
    assert cache.get(a) is one  # a is now the most recent
    cache.put(c, one)
    assert cache.get(b) is None and cache.get(a) is one and len(cache) == 2
    assert ScoreCache.key("x", "") != ScoreCache.key("x", "agent: hi")
    assert ScoreCache.key("a|b", "") != ScoreCache.key("b", "a|")
    with pytest.raises(ValueError):
        ScoreCache[Scores](0)


def test_a_cached_scorer_answers_a_seen_text_and_context_from_the_cache(
    tiny_context_release: Path,
) -> None:
    plain = Scorer.load(tiny_context_release)
    cached = Scorer.load(tiny_context_release, cache_size=8)
    texts, contexts = ["ok", "my order never arrived"], ["agent: all sorted?", ""]
    first = Timings()
    assert cached.score(texts, timings=first, contexts=contexts) == plain.score(
        texts, contexts=contexts
    )
    again = Timings()
    assert cached.score(texts, timings=again, contexts=contexts) == plain.score(
        texts, contexts=contexts
    )
    assert (first.cached, again.cached, again.inference) == (0, 2, 0.0)
    other = Timings()
    cached.score(["ok"], timings=other, contexts=["customer: where is it"])
    assert other.cached == 0  # the same text in another thread is another input


def test_the_server_scores_a_live_threads_earlier_turns_once(tiny_context_release: Path) -> None:
    def counted(metrics: str, outcome: str) -> float:
        pattern = rf'helpdesk_score_cache_texts_total{{outcome="{outcome}"}} (\S+)'
        found = re.search(pattern, metrics)
        return float(found.group(1)) if found else 0.0

    with make_client(tiny_context_release) as client:
        before = client.get("/metrics").text
        first = {"messages": [{"text": "hello?", "history": LIVE}]}
        assert client.post("/v1/score", json=first).status_code == 200
        # the next message of the same thread: its history now ends with "hello?"
        second = {"messages": [{"text": "anyone there", "history": [*LIVE, "hello?"]}]}
        assert client.post("/v1/score", json=second).status_code == 200
        after = client.get("/metrics").text
    assert counted(after, "hit") - counted(before, "hit") == 3  # 2 earlier turns and "hello?"
    assert counted(after, "miss") - counted(before, "miss") == 4  # 3 first, then "anyone there"


def test_a_cache_size_of_zero_turns_it_off(tiny_release: Path) -> None:
    with make_client(tiny_release, score_cache_size=0) as client:
        body = {"messages": [{"text": "hello?"}]}
        client.post("/v1/score", json=body)
        client.post("/v1/score", json=body)
        metrics = client.get("/metrics").text
    assert 'helpdesk_score_cache_texts_total{outcome="hit"} 0.0' in metrics
