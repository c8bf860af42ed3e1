"""The thread-reading model: context as a second segment, a lone message unchanged, and the
same scores for one message and thread in the scorer, the API, the file engine and Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serving.core.contract import HEADS
from serving.core.scorer import Scorer
from serving.core.text import context_of_history, context_text, encode, load_tokenizer
from serving.core.threads import flatten_threads, split_threads

HISTORY = [
    "my parcel never arrived",
    {"role": "agent", "text": "can you help with the order number"},
    "order number 12 still waiting",
]
TEXT = "ok"
TOLERANCE = 1e-4  # the API rounds scores to 4 decimals


def test_context_is_most_recent_first_with_roles() -> None:
    turns = [("customer", "first"), ("agent", "second"), ("customer", "third")]
    assert context_text(turns) == "customer: third | agent: second | customer: first"
    assert context_text([]) == ""
    stored = json.dumps([{"role": r, "text": t} for r, t in turns])
    assert context_of_history(stored) == context_text(turns)
    assert context_of_history("[]") == context_of_history(None) == ""


def test_a_lone_message_encodes_as_before_and_context_is_segment_one(
    tiny_release: Path,
) -> None:
    tokenizer = load_tokenizer(tiny_release / "tokenizer.json")
    alone = encode(tokenizer, ["my order never arrived"], 16)
    empty = encode(tokenizer, ["my order never arrived"], 16, [""], 16)
    assert np.array_equal(alone.input_ids, empty.input_ids)
    assert not empty.inputs(["token_type_ids"])["token_type_ids"].any()
    turns = [("agent", "please change the address " * 6)]
    paired = encode(tokenizer, ["ok"], 16, [context_text(turns)], 8)
    assert paired.input_ids.shape[1] == 3 + 8  # [CLS] ok [SEP] + 7 context tokens + [SEP]
    assert paired.token_type_ids is not None
    assert paired.token_type_ids[0].tolist() == [0] * 3 + [1] * 8
    assert paired.tone.tolist() == alone.tone[:1].tolist() or paired.tone.shape == (1, 8)


def test_threads_flatten_each_customer_turn_with_its_own_context() -> None:
    turns = [("customer", "a"), ("agent", "b"), ("customer", "c")]
    texts, contexts = flatten_threads([(turns, "d"), ([], "e")])
    assert texts == ["a", "c", "d", "e"]
    assert contexts == [
        "",
        context_text(turns[:2]),
        context_text(turns),
        "",
    ]
    assert split_threads([1, 2, 3, 4], [(turns, "d"), ([], "e")]) == [([1, 2], 3), ([], 4)]


def test_context_release_declares_and_reads_context(tiny_context_release: Path) -> None:
    scorer = Scorer.load(tiny_context_release, threads=1)
    assert scorer.manifest.context_length == 16
    assert "token_type_ids" in scorer.input_names
    context = context_of_history(
        json.dumps([{"role": "agent", "text": "can you help with the order number"}])
    )
    alone, threaded = scorer.probabilities([TEXT, TEXT], contexts=["", context])
    assert np.abs(alone - threaded).max() > 1e-4
    assert np.allclose(scorer.probabilities([TEXT])[0], alone, atol=1e-6)


def test_a_message_only_model_ignores_context(tiny_release: Path) -> None:
    scorer = Scorer.load(tiny_release, threads=1)
    plain = scorer.probabilities(["ok"])
    assert np.array_equal(plain, scorer.probabilities(["ok"], contexts=["agent: hi"]))


@pytest.mark.parametrize("release_name", ["tiny_release", "tiny_context_release"])
def test_api_and_file_engine_give_a_thread_the_same_scores(
    release_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from tests.test_score_cli import run_cli
    from tests.test_server import make_client

    release: Path = request.getfixturevalue(release_name)
    scorer = Scorer.load(release, threads=1)
    turns = [("customer", HISTORY[0]), ("agent", HISTORY[1]["text"]), ("customer", HISTORY[2])]  # type: ignore[index]
    direct = scorer.probabilities([TEXT], contexts=[context_text(turns)])[0]
    with make_client(release) as client:
        body = {"messages": [{"text": TEXT, "history": HISTORY}]}
        api = client.post("/v1/score", json=body).json()["results"][0]
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": TEXT, "history": HISTORY}) + "\n")
    out = tmp_path / "out.jsonl"
    result = run_cli("score", str(source), "-o", str(out), "--model", str(release))
    assert result.returncode == 0, result.stderr
    engine = json.loads(out.read_text())
    for got in (api, engine):
        assert np.abs(np.array([got["scores"][h] for h in HEADS]) - direct).max() <= TOLERANCE
        assert got["thread"] == api["thread"]


def test_the_context_cost_benchmark_runs_on_both_tiny_models(
    tiny_release: Path, tiny_context_release: Path
) -> None:
    from evaluation.bench.context_cost import measure

    for release in (tiny_release, tiny_context_release):
        ms = measure(Scorer.load(release, threads=1), repeats=2)
        assert set(ms) == {"alone", "with 3-turn history", "admission count, history"}
        assert all(v > 0 for v in ms.values())
