"""`prepare` on a tiny mirror written in the test: checksums, masks, splits, card, CLI errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from serving.core.contract import HEADS, mask_column
from serving.core.errors import BadInput

GO_LABELS = (
    "admiration amusement anger annoyance approval caring confusion curiosity desire "
    "disappointment disapproval disgust embarrassment excitement fear gratitude grief joy "
    "love nervousness optimism pride realization relief remorse sadness surprise neutral"
)

FILES = {
    "goemotions/labels.txt": GO_LABELS.replace(" ", "\n") + "\n",
    "goemotions/train.tsv": "".join(
        f"{text} number {i}\t{ids}\tid{i}\n"
        for i, (text, ids) in enumerate(
            [
                ("this is so annoying", "3"),
                ("I am furious", "2"),
                ("nice weather today", "27"),
                ("so sad", "25"),
                ("thanks a lot!", "15"),
                ("whatever", "27"),
            ]
            * 4
        )
    ),
    "goemotions/dev.tsv": "what a letdown\t9\tidd\n",
    "complaints/complaints-data.csv": "".join(
        f'{i},"{text} {i}",{label},{dom}\n'
        for i, (text, label, dom) in enumerate(
            [
                ("@Shop my order never arrived, order #12345", 1, "retail"),
                ("@Shop love the new store", 0, "retail"),
                ("@Air you idiots lost my bag", 1, "air"),
            ]
            * 4
        )
    ),
    "banking77/train.csv": "text,category\n"
    + "".join(f"how do I top up my card {i}?,top_up\n" for i in range(8)),
    "banking77/test.csv": "text,category\nwhere is my card,card_arrival\n",
    "emobank/emobank.csv": "id,split,V,A,D,text\n"
    + "".join(
        f"e{i},train,{v},{a},3.0,{text} {i}\n"
        for i, (v, a, text) in enumerate(
            [(2.2, 2.1, "I could not care less"), (4.0, 4.2, "We won the cup!")] * 4
        )
    ),
    "cfpb_sample/complaints.csv": "Consumer complaint narrative,Company response to consumer\n"
    + "".join(
        f'"They charged me $40.00 twice on my account {i}",{resp}\n'
        for i, resp in enumerate(
            ["Closed with monetary relief", "Closed with explanation", "In progress"] * 3
        )
    )
    + ',"Closed with explanation"\n',
}
SOURCES = {
    "goemotions": ["goemotions/train.tsv", "goemotions/dev.tsv", "goemotions/labels.txt"],
    "complaints": ["complaints/complaints-data.csv"],
    "banking77": ["banking77/train.csv", "banking77/test.csv"],
    "emobank": ["emobank/emobank.csv"],
    "cfpb": ["cfpb_sample/complaints.csv"],
}


def gold_record(i: int, split: str) -> dict[str, object]:
    kinds = [
        ("ok", 0, "none", 1, 0, None),
        ("Order 55120 arrived broken, please replace it", 0, "none", 0, 1, 1),
        ("I want a refund for the sofa from 2019, I just don't like it", 1, "mild", 0, 1, 0),
        ("THIS IS THE THIRD TIME I ASK!!! where is my refund", 1, "strong", 0, 1, 1),
        ("How do I change my password?", 0, "none", 0, 0, None),
    ]
    text, frus, level, bored, compl, legit = kinds[i % len(kinds)]
    return {
        "id": f"g{i}",
        "text": f"{text} ({split} {i})",
        "frustration": frus,
        "frustration_level": level,
        "boredom": bored,
        "complaint": compl,
        "legitimacy": legit,
        "split": split,
    }


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    mirror = tmp_path / "mirror"
    for rel, content in FILES.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_text(content)
    lines = []
    for name, paths in SOURCES.items():
        lines.append(f"[sources.{name}]\nfiles = [")
        for rel in paths:
            digest = hashlib.sha256((mirror / rel).read_bytes()).hexdigest()
            lines.append(
                f'  {{ path = "{rel}", url = "{(mirror / rel).as_uri()}", sha256 = "{digest}" }},'
            )
        lines.append("]\n")
    sources = tmp_path / "sources.toml"
    sources.write_text("\n".join(lines))
    gold = tmp_path / "gold"
    gold.mkdir()
    records = [gold_record(i, ("train", "dev", "test")[i % 3]) for i in range(30)]
    (gold / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return {"mirror": mirror, "sources": sources, "gold": gold, "root": tmp_path}


def run_prepare(project: dict[str, Path], mirror: Path | None) -> Path:
    from training.prepare import PrepareConfig, prepare

    return prepare(
        PrepareConfig(
            mirror=mirror,
            out=project["root"] / "out",
            sources=project["sources"],
            gold_dir=project["gold"],
            handwritten_dir=project["root"] / "none",
            real_gold_dir=project["root"] / "no-real-gold",
            real_scale_dir=project["root"] / "no-real-scale",
            cache=project["root"] / "cache",
        )
    ).folder


def test_prepare_builds_masked_multitask_dataset(project: dict[str, Path]) -> None:
    out = run_prepare(project, project["mirror"])
    data = pd.read_parquet(out / "dataset.parquet")
    for column in (
        "text",
        "source",
        *HEADS,
        "frustration_level",
        "split",
        *(mask_column(h) for h in HEADS),
    ):
        assert column in data.columns
    for head in HEADS:
        labelled = data[mask_column(head)] == 1
        assert data.loc[labelled, head].notna().all()
        assert data.loc[~labelled, head].isna().all()
    # banking77 says nothing about legitimacy: masked, not 0
    assert (data.loc[data["source"] == "banking77", mask_column("legitimacy")] == 0).all()
    # a how-to query is a complaint negative; a failure report ("where is my card") is unknown
    banking = data[data["source"] == "banking77"]
    how_to = banking["text"].str.startswith("how do I top up")
    assert how_to.any() and (banking.loc[how_to, mask_column("complaint")] == 1).all()
    assert (banking.loc[banking["text"] == "where is my card", mask_column("complaint")] == 0).all()
    assert (banking["text"] == "where is my card").sum() == 1
    # legitimacy only where complaint is 1
    assert (data.loc[data[mask_column("legitimacy")] == 1, "complaint"] == 1).all()
    # no text in two splits
    assert data.groupby("text")["split"].nunique().max() == 1
    assert set(data.loc[data["source"] == "gold", "split"]) == {"train", "dev", "test"}
    card = (out / "DATASET_CARD.md").read_text()
    for head in HEADS:
        assert f"| {head} | test |" in card
    assert "Length-only baseline" in card and "Weak supervision: legitimacy" in card
    from training.card import lf_summary_lines
    from training.labelling import BOREDOM_LFS, LEGITIMACY_LFS

    summary = "\n".join(lf_summary_lines(json.loads((out / "stats.json").read_text())))
    for lf in (*BOREDOM_LFS, *LEGITIMACY_LFS):
        assert f"| {lf.name} |" in summary and f"| {lf.name} |" in card


def test_prepare_is_deterministic(project: dict[str, Path]) -> None:
    first = pd.read_parquet(run_prepare(project, project["mirror"]) / "dataset.parquet")
    second = pd.read_parquet(run_prepare(project, project["mirror"]) / "dataset.parquet")
    pd.testing.assert_frame_equal(first, second)


def test_download_path_verifies_into_cache(project: dict[str, Path]) -> None:
    run_prepare(project, None)  # urls are file:// urls of the tiny mirror
    assert (project["root"] / "cache" / "emobank" / "emobank.csv").is_file()


def test_wrong_checksum_names_the_file(project: dict[str, Path]) -> None:
    target = project["mirror"] / "emobank" / "emobank.csv"
    target.write_text(target.read_text() + "e9,train,3,3,3,tampered\n")
    with pytest.raises(BadInput, match=r"checksum mismatch .*emobank\.csv"):
        run_prepare(project, project["mirror"])


def test_missing_file_names_the_file(project: dict[str, Path]) -> None:
    (project["mirror"] / "banking77" / "test.csv").unlink()
    with pytest.raises(BadInput, match=r"missing file .*banking77/test\.csv"):
        run_prepare(project, project["mirror"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mirror", "/nonexistent/mirror"], "mirror folder not found"),
    ],
)
def test_cli_bad_input_is_one_clear_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "serving.cli", "prepare", *args, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
