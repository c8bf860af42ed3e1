"""Session fixtures: a tiny tokenizer + random BERT, a tiny multi-task dataset, a trained run.

Nothing here loads the real encoder or the real data; everything is built in seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from serving.core.contract import HEADS, mask_column
from tests.feedback_db import feedback_url, postgres_url  # noqa: F401  (shared fixtures)

WORDS = [
    "refund",
    "broken",
    "charged",
    "twice",
    "late",
    "order",
    "parcel",
    "never",
    "arrived",
    "angry",
    "terrible",
    "awful",
    "worst",
    "ok",
    "k",
    "fine",
    "whatever",
    "thanks",
    "great",
    "love",
    "hello",
    "please",
    "help",
    "account",
    "password",
    "change",
    "address",
    "delivery",
    "card",
    "app",
    "login",
    "crashed",
    "again",
    "still",
    "waiting",
    "why",
    "hours",
    "days",
    "week",
    "month",
    "number",
    "i",
    "you",
    "my",
    "your",
    "the",
    "a",
    "is",
    "was",
    "it",
    "not",
    "no",
    "yes",
    "can",
    "could",
    "would",
    "this",
    "that",
]

# (text, frustration, boredom, complaint, legitimacy) - keyword-driven so a tiny model learns it.
TINY_ROWS = [
    ("my order never arrived and i am angry", 1, 0, 1, 1),
    ("charged twice this is terrible", 1, 0, 1, 1),
    ("worst app ever it crashed again", 1, 0, 1, 0),
    ("awful you are the worst", 1, 0, 1, 0),
    ("parcel broken still waiting angry", 1, 0, 1, 1),
    ("ok", 0, 1, 0, None),
    ("k", 0, 1, 0, None),
    ("fine whatever", 0, 1, 0, None),
    ("whatever ok", 0, 1, 0, None),
    ("how can i change my password please", 0, 0, 0, None),
    ("thanks great help love it", 0, 0, 0, None),
    ("please change my address", 0, 0, 0, None),
    ("hello can you help with my account", 0, 0, 0, None),
    ("my card was charged twice for order number", 0, 0, 1, 1),
    ("the parcel was late by a week", 0, 0, 1, 1),
    ("refund my order from years ago", 0, 0, 1, 0),
]


#: Earlier turns given to the tiny rows in turn (a thread-reading model reads them).
THREADS: list[list[dict[str, str]]] = [
    [],
    [{"role": "agent", "text": "can you help with the order number"}],
    [
        {"role": "customer", "text": "my parcel never arrived"},
        {"role": "agent", "text": "please change the address"},
    ],
    [],
]


def _expected_route(frus: int, bored: int, compl: int, legit: int | None) -> str:
    """The route a labeller gives these labels under the default policy."""
    if frus and compl:
        return "escalate_senior" if legit else "supervisor_support"
    if compl and legit:
        return "complaint_desk"
    return "re_engage" if bored else "standard"


def _rows(n_copies: int) -> list[dict[str, object]]:
    rows = []
    for copy in range(n_copies):
        for i, (text, frus, bored, compl, legit) in enumerate(TINY_ROWS):
            split = ("train", "train", "dev", "test")[copy % 4]
            suffix = "" if copy == 0 else " " + " ".join(["please"] * (copy % 3) + [str(copy)])
            row: dict[str, object] = {
                "id": f"t{copy}-{i}",
                "text": text + suffix,
                "source": "real_gold" if i % 4 == 0 else ("gold" if i % 2 else "complaints"),
                "split": split,
                "frustration": float(frus),
                "boredom": float(bored),
                "complaint": float(compl),
                "legitimacy": None if legit is None else float(legit),
                "frustration_level": "strong"
                if frus and "angry" in text
                else ("mild" if frus else "none"),
            }
            for head in HEADS:
                row[mask_column(head)] = 0.0 if row[head] is None else 1.0
            row["route"] = _expected_route(frus, bored, compl, legit) if i % 4 == 0 else None
            row["history"] = json.dumps(THREADS[i % len(THREADS)])
            rows.append(row)
    return rows


@pytest.fixture(scope="session", autouse=True)
def feedback_store_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Servers started by tests write feedback to a temporary SQLite file, never the work tree."""
    folder = tmp_path_factory.mktemp("feedback")
    os.environ.setdefault("HELPDESK_FEEDBACK_URL", f"sqlite:///{folder / 'feedback.db'}")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, width-32 random BERT and a word-level tokenizer, saved like a HF model."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-encoder")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate([*specials, *WORDS, *map(str, range(40))])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    ).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)  # the same tiny encoder every session: a deterministic suite
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import pandas as pd

    path = tmp_path_factory.mktemp("tiny-data") / "dataset.parquet"
    pd.DataFrame(_rows(12)).to_parquet(path, index=False)
    return path


def _tiny_overrides(encoder: Path, dataset: Path, runs: Path, name: str) -> list[str]:
    """The training config of every tiny run: 16 tokens, 8 epochs, fast learning rates."""
    return [
        f"data={dataset}",
        f"encoder={encoder}",
        f"runs_dir={runs}",
        f"run_name={name}",
        "epochs=8",
        "batch_size=16",
        "max_length=16",
        "lr=3e-3",
        "head_lr=1e-2",
        "patience=8",
        "warmup_ratio=0",
        "threads=1",
        "dropout=0",
    ]


@pytest.fixture(scope="session")
def tiny_run(
    tiny_encoder: Path, tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from training.config import load_config
    from training.train import train

    runs = tmp_path_factory.mktemp("runs")
    config = load_config(overrides=_tiny_overrides(tiny_encoder, tiny_dataset, runs, "tiny"))
    return train(config)


@pytest.fixture(scope="session")
def tiny_release(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.export import export

    # a tiny random model is held to every gate but the behaviour suite's (written for text)
    return export(tiny_run, tmp_path_factory.mktemp("release") / "model", min_behaviour=0.0)


@pytest.fixture(scope="session")
def tiny_context_run(
    tiny_encoder: Path, tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A tiny thread-reading model's training run (16 tokens of message, 16 of context)."""
    from training.config import load_config
    from training.train import train

    runs = tmp_path_factory.mktemp("context-runs")
    overrides = _tiny_overrides(tiny_encoder, tiny_dataset, runs, "tiny-context")
    return train(load_config(overrides=[*overrides, "context_length=16"]))


@pytest.fixture(scope="session")
def tiny_context_release(tiny_context_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny thread-reading model, exported like the release."""
    from training.export import export

    folder = tmp_path_factory.mktemp("context-release") / "model"
    return export(tiny_context_run, folder, min_behaviour=0.0)


@pytest.fixture
def jsonl(tmp_path: Path):
    def write(rows: list[object], name: str = "in.jsonl") -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    return write


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which tests did not run here and why (CI sets HELPDESK_REQUIRE_BROWSER and
    HELPDESK_REQUIRE_POSTGRES, so there they fail instead of skipping)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("tests not run on this machine (CI requires them)")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            terminalreporter.write_line(f"{count} skipped: {reason}")
