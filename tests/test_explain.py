"""`"explain": true` on POST /v1/score: the tiny model with planted words, through the batcher."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.core.contract import HEADS
from serving.core.explain import MAX_UNITS, TOP_WORDS
from serving.core.scorer import Scores
from serving.http.app import create_app
from serving.http.settings import Settings

RAISER, LOWERER = "zebra", "calm"  # [UNK] to the tiny tokenizer: their effect is only planted


SEEN: list[str] = []  # every text the batcher had scored, for the test that reads it


def planted(score):  # type: ignore[no-untyped-def]
    """The tiny model's scores, then frustration pulled halfway to 1 by RAISER and halved by
    LOWERER, so the two words drive that head whatever the random encoder learned."""

    def scored(texts: Sequence[str], *args, **kwargs) -> list[Scores]:  # type: ignore[no-untyped-def]
        SEEN.extend(texts)
        out = []
        for text, scores in zip(texts, score(texts, *args, **kwargs), strict=True):
            words, frustration = text.split(), scores.probabilities["frustration"]
            frustration = (1 + frustration) / 2 if RAISER in words else frustration
            frustration = frustration / 2 if LOWERER in words else frustration
            out.append(
                replace(scores, probabilities={**scores.probabilities, "frustration": frustration})
            )
        return out

    return scored


@pytest.fixture
def client(tiny_release: Path) -> Iterator[TestClient]:
    settings = Settings(model_dir=tiny_release, threads=1, max_explain_messages=3)
    with TestClient(create_app(settings)) as c:
        scorer = c.app.state.runtime.model.scorer  # type: ignore[attr-defined]
        object.__setattr__(scorer, "score", planted(scorer.score))
        yield c


def explained(client: TestClient, *texts: str) -> list[dict]:  # type: ignore[type-arg]
    body = {"messages": [{"text": t} for t in texts], "explain": True}
    response = client.post("/v1/score", json=body)
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "text",
    [
        "zebra please change my address",
        "hello can you help with my zebra account",
        "how can i change my password please zebra",
    ],
)
def test_the_planted_word_is_the_top_raiser(client: TestClient, text: str) -> None:
    (result,) = explained(client, text)
    explanation = result["explanation"]
    assert set(explanation) == {*HEADS, "grouped"} and explanation["grouped"] is False
    top = explanation["frustration"]["raising"][0]
    start = text.index(RAISER)
    assert top["text"] == RAISER and top["span"] == [start, start + len(RAISER)]
    assert top["change"] > 0.1
    for head in HEADS:
        raising, lowering = explanation[head]["raising"], explanation[head]["lowering"]
        assert len(raising) <= TOP_WORDS and len(lowering) <= TOP_WORDS
        assert all(w["change"] > 0 for w in raising) and all(w["change"] < 0 for w in lowering)
        assert [w["change"] for w in raising] == sorted(
            (w["change"] for w in raising), reverse=True
        )


def test_the_planted_lowering_word_is_the_top_lowerer(client: TestClient) -> None:
    batcher = client.app.state.runtime.batcher  # type: ignore[attr-defined]
    submit, submitted = batcher.submit, []

    async def recorded(texts: list[str], contexts: list[str] | None = None):  # type: ignore[no-untyped-def]
        submitted.append(len(texts))
        return await submit(texts, contexts)

    batcher.submit = recorded
    SEEN.clear()
    (result,) = explained(client, "hello calm can you help zebra")
    assert submitted == [7]  # one batcher job: the message and its 6 variants
    assert (
        len(SEEN) == 7 and "hello  can you help zebra" in SEEN
    )  # the variants went via the batcher
    frustration = result["explanation"]["frustration"]
    assert frustration["raising"][0]["text"] == RAISER
    assert frustration["lowering"][0]["text"] == LOWERER
    assert frustration["lowering"][0]["span"] == [6, 10]


def test_a_long_message_is_explained_in_word_groups(client: TestClient) -> None:
    words = ["please"] * (2 * MAX_UNITS)
    words[61] = RAISER
    (result,) = explained(client, " ".join(words))
    explanation = result["explanation"]
    assert explanation["grouped"] is True
    top = explanation["frustration"]["raising"][0]
    assert top["text"] == "please zebra" and top["span"] == [420, 432]


def test_explained_scores_equal_unexplained_ones(client: TestClient) -> None:
    texts = ["my order never arrived and i am angry", "ok", "zebra please help"]
    plain = client.post("/v1/score", json={"messages": [{"text": t} for t in texts]}).json()
    results = explained(client, *texts)
    for before, after in zip(plain["results"], results, strict=True):
        assert "explanation" not in before
        assert after.pop("explanation")
        assert after == before


def test_explain_is_off_by_default(client: TestClient) -> None:
    body = {"messages": [{"text": "zebra please"}], "explain": False}
    (result,) = client.post("/v1/score", json=body).json()["results"]
    assert "explanation" not in result


def test_more_messages_than_the_explain_cap_is_the_over_limit_error(client: TestClient) -> None:
    messages = [{"text": "hello"}] * 4
    response = client.post("/v1/score", json={"messages": messages, "explain": True})
    assert response.status_code == 413
    assert response.json()["error"] == {
        "type": "too_large",
        "message": "4 messages with explain; at most 3",
    }
    assert client.post("/v1/score", json={"messages": messages}).status_code == 200


@pytest.mark.parametrize("value", ["maybe", "true", 0, 1, None])
def test_explain_must_be_a_json_boolean(client: TestClient, value: object) -> None:
    body = {"messages": [{"text": "hello"}], "explain": value}
    response = client.post("/v1/score", json=body)
    assert response.status_code == 422 and response.json()["error"]["type"] == "invalid_input"


def test_explain_shows_in_openapi(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "explain" in schemas["ScoreRequest"]["properties"]
    assert set(schemas["Explanation"]["properties"]) == {*HEADS, "grouped"}


def test_the_cost_benchmark_runs_on_the_tiny_model(tiny_release: Path) -> None:
    from evaluation.bench.explain import measure, messages
    from serving.core.scorer import Scorer

    scorer = Scorer.load(tiny_release, threads=1)
    texts = messages(scorer, 12, 2)
    assert len(set(texts)) == 2
    assert all(len(scorer.tokenizer.encode(t).ids) == 12 for t in texts)
    (row,) = measure(scorer, count=2, repeats=1, batch_size=8, lengths=(12,))
    assert row["tokens"] == 12 and row["texts_per_message"] == 11  # 10 words + the message
    assert row["plain_ms"] > 0 and row["ratio"] == row["explained_ms"] / row["plain_ms"]
