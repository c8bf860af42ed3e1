"""The language guard: English passes, clear German/Spanish/French/Portuguese is flagged, short
text is not judged; every engine's results carry `language`; /metrics counts flagged messages;
the measurement's corpus readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from evaluation.bench.language import _fortune_entries, _slices, main
from serving.bulk.file_engine import score_file
from serving.bulk.ray_engine import flatten
from serving.core.decision.phrasing import load_phrases
from serving.core.decision.route_policy import load_policy
from serving.core.language import language_of
from serving.core.results import ResultBuilder
from serving.core.scorer import Scorer
from serving.http.app import create_app
from serving.http.settings import Settings

# Test fixtures, written for these tests (not measurement data: see evaluation/bench/language).
ENGLISH = [
    "My order 4471 arrived with a cracked screen and I would like a replacement please.",
    "Third time I am asking: where is my refund? Nobody answers my emails!!",
    "How do I change the email address on my account? The settings page shows an error.",
    "@AmazonHelp the parcel was left outside in the rain, everything inside is ruined",
    "I was charged twice for the same booking, can someone look into this today?",
]
FOREIGN = {
    "de": [
        "Meine Bestellung ist immer noch nicht angekommen, obwohl sie verschickt wurde.",
        "Ich habe schon dreimal angerufen und niemand kann mir sagen, wo mein Paket ist.",
    ],
    "es": [
        "Mi pedido todavía no ha llegado y nadie responde a mis correos desde hace una semana.",
        "Quiero que me devuelvan el dinero, el producto llegó roto y no funciona.",
    ],
    "fr": [
        "Ma commande n'est toujours pas arrivée et personne ne répond à mes messages depuis lundi.",
        "Je voudrais être remboursé, le produit est arrivé cassé et ne fonctionne pas du tout.",
    ],
    "pt": [
        "Meu pedido ainda não chegou e ninguém responde aos meus e-mails há uma semana.",
        "Quero o meu dinheiro de volta, o produto chegou quebrado e não funciona.",
    ],
}


@pytest.mark.parametrize("text", ENGLISH)
def test_english_is_supported(text: str) -> None:
    assert language_of(text) == {"supported": True, "detected": "en"}


@pytest.mark.parametrize(("code", "text"), [(c, t) for c, ts in FOREIGN.items() for t in ts])
def test_clear_other_languages_are_flagged(code: str, text: str) -> None:
    assert language_of(text) == {"supported": False, "detected": code}


def test_short_text_is_not_judged_and_other_scripts_are_flagged() -> None:
    for short in ("ok", "danke", "gracias!!", "merci beaucoup", "@AmazonHelp https://t.co/x ok"):
        assert language_of(short) == {"supported": True, "detected": None}, short
    assert not language_of("Где мой заказ?")["supported"]  # too short for n-grams: the script


def test_api_results_and_metrics_carry_the_language(tiny_release: Path) -> None:
    settings = Settings(model_dir=tiny_release, threads=1, drift_window=10)
    with TestClient(create_app(settings)) as client:
        texts = [ENGLISH[0], FOREIGN["de"][0], "ok", FOREIGN["es"][0]]
        body = {"messages": [{"text": t} for t in texts]}
        results = client.post("/v1/score", json=body).json()["results"]
        assert [r["language"]["supported"] for r in results] == [True, False, True, False]
        assert results[1]["language"]["detected"] == "de"
        samples = {
            s.name: s.value
            for family in text_string_to_metric_families(client.get("/metrics").text)
            for s in family.samples
        }
    assert samples["helpdesk_non_english_messages_total"] == 2
    assert samples["helpdesk_non_english_share"] == 0.5


def test_file_engine_and_ray_rows_carry_the_language(tiny_release: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in (ENGLISH[1], FOREIGN["fr"][0]))
    )
    scorer = Scorer.load(tiny_release)
    policy = load_policy(Settings().policy_file)
    phrases = load_phrases(Settings().phrases_file, tuple(r.name for r in policy.rules))
    score_file(
        source,
        tmp_path / "out.jsonl",
        scorer,
        ResultBuilder.create(scorer.manifest, policy, phrases),
    )
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["language"] for r in lines] == [
        {"supported": True, "detected": "en"},
        {"supported": False, "detected": "fr"},
    ]
    row = flatten(lines[1])
    assert (row["language_supported"], row["language_detected"]) == (False, "fr")


def test_fortune_entries_and_slices(tmp_path: Path) -> None:
    fortunes = tmp_path / "fortunes"
    entries = ["Ein kurzer Satz.", "Wer anderen eine Grube gräbt,\nfällt selbst hinein.", "x" * 5]
    fortunes.write_text("\n%\n".join([entries[0], entries[1] + "\n\t-- Sprichwort", entries[2]]))
    read = list(_fortune_entries([fortunes]))
    assert read == [entries[0], "Wer anderen eine Grube gräbt, fällt selbst hinein.", "xxxxx"]
    prose = ["Dies ist ein ganz normaler Satz mit genug Buchstaben darin.", "/\\_/\\ ( o.o ) " * 4]
    assert _slices(iter(prose * 3), 1) == ([prose[0]], [prose[0]])  # ASCII art is skipped


def test_measurement_without_dataset_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"^error: no dataset at"):
        main(["--dataset", str(tmp_path / "none.parquet")])
