"""One message, one score: alone, in one request with others, under concurrent load (the
server's micro-batcher mixes requests), and through the `score` file engine (tiny model)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from serving.core.contract import HEADS
from serving.core.schemas import Result
from serving.core.scorer import Scorer
from tests.test_score_cli import run_cli
from tests.test_server import make_client

MESSAGES = [
    "ok",
    "my order never arrived and i am angry",
    "THIS IS THE THIRD TIME I ASK!!! where is my refund",
    " ".join(["please", "refund", "my", "order"] * 12),
    "thanks great help love it",
    "the parcel was late by a week",
]
TOLERANCE = 1e-4  # the API rounds scores to 4 decimals: half of that is rounding


def scores_of(result: dict[str, object]) -> list[float]:
    scores = result["scores"]
    assert isinstance(scores, dict)
    return [float(scores[h]) for h in HEADS]


def test_every_path_gives_a_message_the_same_scores(tiny_release: Path, tmp_path: Path) -> None:
    alone = np.vstack([Scorer.load(tiny_release, threads=1).probabilities([m]) for m in MESSAGES])
    with make_client(tiny_release) as client:
        together = client.post("/v1/score", json={"messages": [{"text": m} for m in MESSAGES]})
        batched = np.array([scores_of(r) for r in together.json()["results"]])

        def one(text: str) -> list[float]:
            body = client.post("/v1/score", json={"messages": [{"text": text}]}).json()
            return scores_of(body["results"][0])

        with ThreadPoolExecutor(8) as pool:
            concurrent = np.array(list(pool.map(one, MESSAGES * 4))).reshape(4, len(MESSAGES), -1)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": m}) + "\n" for m in MESSAGES))
    out = tmp_path / "out.jsonl"
    result = run_cli("score", str(source), "-o", str(out), "--model", str(tiny_release))
    assert result.returncode == 0, result.stderr
    engine = np.array([scores_of(json.loads(line)) for line in out.read_text().splitlines()])
    # one result model: the file engine writes the very records the API answers with
    file_records = [json.loads(line) for line in out.read_text().splitlines()]
    api_records = together.json()["results"]
    assert file_records == api_records
    for record in file_records:
        assert Result.model_validate(record).record() == record
    for name, got in [
        ("one request", batched),
        ("file engine", engine),
        *((f"concurrent round {k}", concurrent[k]) for k in range(4)),
    ]:
        assert np.abs(got - alone).max() <= TOLERANCE, name
