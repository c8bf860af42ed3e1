"""The scaled real-text set on tiny data: the labellers' line format, the check-question gate,
the second pass and its adjudication, thread splits, counterfactuals in train only, a
byte-identical rebuild, and the stratified draw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.core.errors import BadInput
from training.real_scale import build, scale_split
from training.real_scale_checks import check_answers, contested, review, write_review_batch
from training.real_scale_draw import draw, render_batches, uncertainty
from training.real_scale_labels import parse_line
from training.text_patch import apply_patch, text_patch

PARENT = "WHERE is my bag, it's late!!"

LINES = {
    "complaint": "mild\t0\t1\t1\tescalate_senior\t-\t",
    "question": "none\t0\t0\t-\tstandard\t-\t",
    "bored": "none\t1\t0\t-\tre_engage\t-\t",
    "polite": "none\t0\t1\t1\tcomplaint_desk\t-\t",
}
GOLD = {
    "complaint": {"frustration": 1, "frustration_level": "mild", "boredom": 0, "complaint": 1},
    "question": {"frustration": 0, "frustration_level": "none", "boredom": 0, "complaint": 0},
    "bored": {"frustration": 0, "frustration_level": "none", "boredom": 1, "complaint": 0},
}


def _write(path: Path, records: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _thread(split: str, start: int = 0) -> str:
    """A thread id whose hash lands in `split`."""
    n = start
    while scale_split(f"t:{n}") != split:
        n += 1
    return f"t:{n}"


@pytest.fixture
def scale(tmp_path: Path) -> tuple[Path, Path]:
    """A drawn set of 8 messages in two first-pass batches (p01 passes its checks, p02 does
    not), one second-pass batch over p01's rows, and a counterfactual batch."""
    gold_dir, root = tmp_path / "real_gold", tmp_path / "real_scale"
    checks = [
        {"id": f"g{k}", "thread_id": f"g:{k}", "split": "dev", **GOLD[kind], "route": "x"}
        for k, kind in enumerate(["complaint", "question", "bored", "question"])
    ]
    for check in checks:
        check["legitimacy"] = 1 if check["complaint"] else None
    _write(gold_dir / "real_gold.jsonl", checks)
    kinds = ["complaint", "question", "bored", "question"]
    threads = [_thread("train", 0), _thread("train", 1000), _thread("dev"), _thread("test")]
    drawn = [
        {
            "id": f"m{i}",
            "source": "twcs_airlines",
            "thread_id": threads[i % 4],
            "stratum": "random",
            "batch": "p01" if i < 4 else "p02",
        }
        for i in range(8)
    ]
    drawn[4]["thread_id"] = _thread("train", 2000)
    _write(root / "drawn.jsonl", drawn)
    key, lines = [], {"p01": [], "p02": [], "s01": []}
    for batch, ids in (("p01", range(4)), ("p02", range(4, 8)), ("s01", range(4))):
        items = [(f"m{i}", False, kinds[i % 4]) for i in ids] + [
            (c["id"], True, ["complaint", "question", "bored", "question"][k])
            for k, c in enumerate(checks)
        ]
        for n, (ident, check, kind) in enumerate(items, 1):
            key.append({"batch": batch, "item": n, "id": ident, "check": check})
            answer = kind
            if batch == "p02" and check and kind == "bored":
                answer = "question"  # misses the only disengaged check: boredom kappa 0
            if batch == "s01" and ident == "m0":
                answer = "polite"  # the second pass calls m0 calm: a disagreement
            lines[batch].append(f"{n}\t{LINES[answer]}")
    _write(root / "key.jsonl", key)
    for batch, rows in lines.items():
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{batch}.tsv").write_text("\n".join(rows) + "\n")
    _write(
        root / "adjudication.jsonl",
        [{"id": "m0", "line": LINES["complaint"], "reason": "'again' told as such: mild"}],
    )
    _write(
        root / "counterfactual_key.jsonl",
        [
            {"batch": "c01", "item": 1, "id": "m0"},
            {"batch": "c01", "item": 2, "id": "m4"},
        ],
    )
    _write(
        root / "counterfactual_edits" / "c01.jsonl",
        [
            {
                "item": 1,
                "edit": "tone_calm",
                "patch": text_patch(PARENT, "Hi, my bag is late."),
                "frustration_level": "none",
                "boredom": 0,
                "complaint": 1,
                "legitimacy": 1,
                "route": "complaint_desk",
                "note": "",
            },
            {
                "item": 2,
                "edit": "typos",
                "patch": text_patch(PARENT, "WHERE is my bag, its late!!"),
                "frustration_level": "mild",
                "boredom": 0,
                "complaint": 1,
                "legitimacy": 1,
                "route": "escalate_senior",
            },
        ],
    )
    return gold_dir, root


def test_build_gates_batches_adjudicates_and_splits_by_thread(scale: tuple[Path, Path]) -> None:
    gold_dir, root = scale
    report = build(root, gold_dir)
    assert report["batches"] == {"p01": "passed", "p02": "relabel", "s01": "passed"}
    rows = [json.loads(line) for line in (root / "labelled.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["m0", "m1", "m2", "m3"]  # p02 failed its checks
    by_id = {r["id"]: r for r in rows}
    assert by_id["m0"]["adjudicated"] and by_id["m0"]["frustration_level"] == "mild"
    assert all(r["split"] == scale_split(r["thread_id"]) for r in rows)
    assert report["second_pass"]["rows"] == 4 and report["second_pass"]["disagreements"] == 1
    assert report["second_pass"]["changed_by_adjudication"] == 0  # the first pass stood
    cf = [json.loads(line) for line in (root / "counterfactual.jsonl").read_text().splitlines()]
    assert [c["parent_id"] for c in cf] == ["m0"]  # m4's batch failed: its edit waits
    assert cf[0]["synthetic"] and cf[0]["split"] == "train" and cf[0]["id"] == "m0#cf-tone_calm"
    assert "text" not in cf[0]  # a near-copy of raw text is never written, only its patch
    assert apply_patch(PARENT, cf[0]["patch"], "cf") == "Hi, my bag is late."


def test_a_patch_refuses_a_changed_parent() -> None:
    patch = text_patch(PARENT, "where is my bag, it's late")
    with pytest.raises(BadInput, match="parent changed"):
        apply_patch(PARENT + " (edited)", patch, "cf:1")


def test_rebuild_is_byte_identical(scale: tuple[Path, Path]) -> None:
    gold_dir, root = scale
    build(root, gold_dir)
    first = {p.name: p.read_bytes() for p in root.glob("*.json*")}
    build(root, gold_dir)
    assert {p.name: p.read_bytes() for p in root.glob("*.json*")} == first


def test_a_disagreement_without_adjudication_is_an_error(scale: tuple[Path, Path]) -> None:
    gold_dir, root = scale
    (root / "adjudication.jsonl").unlink()
    with pytest.raises(BadInput, match="lack adjudication"):
        build(root, gold_dir)


def test_a_counterfactual_of_a_dev_message_is_refused(scale: tuple[Path, Path]) -> None:
    gold_dir, root = scale
    key = root / "counterfactual_key.jsonl"
    key.write_text(key.read_text().replace('"m4"', '"m2"'))  # m2's thread is a dev thread
    with pytest.raises(BadInput, match="not a train message"):
        build(root, gold_dir)


@pytest.mark.parametrize(
    "line, message",
    [
        ("1\tmild\t0\t1\t1\tstandard\t-\t", "give route 'escalate_senior'"),
        ("1\tnone\t0\t1\t-\tcomplaint_desk\t-\t", "legitimacy"),
        ("1\tangry\t0\t0\t-\tstandard\t-\t", "frustration_level"),
        ("1\tnone\t0\t0\t-\tstandard\tsarcastic\t", "unknown tags"),
        ("1\tnone\t0", "7 or 8"),
    ],
)
def test_answer_lines_that_break_the_guide_are_refused(line: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_line(line, "f:1")


def test_the_streak_route_is_allowed_only_when_frustrated() -> None:
    _, labels = parse_line("1\tmild\t0\t0\t-\tescalate_senior\trepeat\tthird turn", "f:1")
    assert labels["route"] == "escalate_senior" and labels["tags"] == ["repeat"]
    with pytest.raises(BadInput):
        parse_line("1\tnone\t0\t0\t-\tescalate_senior\t-\t", "f:1")


def test_draw_takes_one_message_per_thread_in_strata_and_skips_used_threads() -> None:
    rows = []
    for t in range(60):
        for turn, text in enumerate(
            ["great, another delay thanks a lot", "still waiting for my refund", "ok", "hello"]
        ):
            history = json.dumps([{"role": "agent", "text": "anything else?"}] if turn == 2 else [])
            rows.append(
                {
                    "id": f"{t}:{turn}",
                    "source": "twcs_airlines",
                    "thread_id": f"T{t}",
                    "history": history,
                    "text": text,
                }
            )
    pool = pd.DataFrame(rows)

    def score(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.full((len(texts), 4), 0.5), np.full(4, 0.5)

    drawn = draw(pool, {"T0"}, score, seed=1)
    assert drawn["thread_id"].is_unique and "T0" not in set(drawn["thread_id"])
    assert set(drawn["stratum"]) >= {"random"}
    assert len(drawn) == 59  # every other thread, once


def test_uncertainty_counts_near_threshold_heads_and_contradictions() -> None:
    probs = np.array([[0.9, 0.1, 0.1, 0.5], [0.5, 0.1, 0.9, 0.9], [0.1, 0.1, 0.1, 0.1]])
    thresholds = np.array([0.5, 0.5, 0.5, 0.5])
    assert uncertainty(probs, thresholds).tolist() == [2, 1, 0]


def test_the_committed_set_rebuilds_byte_identically(tmp_path: Path) -> None:
    """The committed labelled.jsonl and counterfactual.jsonl are what the committed labels,
    key, adjudication and edits give, and agreement.json holds their sha256."""
    import hashlib
    import shutil

    committed = Path(__file__).parents[1] / "data" / "real_scale"
    root = tmp_path / "real_scale"
    root.mkdir()
    for name in (
        "drawn.jsonl",
        "key.jsonl",
        "adjudication.jsonl",
        "counterfactual_key.jsonl",
        "counterfactual_checks_key.jsonl",
        "check_review.jsonl",
    ):
        shutil.copy(committed / name, root / name)
    for folder in ("labels", "counterfactual_edits", "counterfactual_checks"):
        shutil.copytree(committed / folder, root / folder)
    report = build(root, Path(__file__).parents[1] / "data" / "real_gold")
    for name in ("labelled.jsonl", "counterfactual.jsonl"):
        rebuilt = (root / name).read_bytes()
        assert rebuilt == (committed / name).read_bytes(), name
        assert report["sha256"][name] == hashlib.sha256(rebuilt).hexdigest()
    assert json.loads((committed / "agreement.json").read_text())["sha256"] == report["sha256"]


def _contest_boredom_check(root: Path) -> None:
    """Two rejected attempts of p02 that, like p02, call the disengaged check g2 a question:
    3 of its 5 attempts miss it."""
    rejected = root / "labels" / "rejected"
    rejected.mkdir(parents=True)
    for attempt in ("a1", "a2"):
        (rejected / f"p02.{attempt}.tsv").write_bytes((root / "labels" / "p02.tsv").read_bytes())


def _review(root: Path, gold_dir: Path, verdicts: tuple[str, str]) -> list[dict[str, object]]:
    from training.real_scale import gold_dev

    table = contested(check_answers(root, gold_dev(gold_dir)))
    pool = pd.DataFrame(
        {"id": [f"g{k}" for k in range(4)], "history": ["[]"] * 4, "text": ["ok"] * 4}
    )
    write_review_batch(table, pool, root, seed=0)
    key = [json.loads(line) for line in (root / "review_key.jsonl").read_text().splitlines()]
    other = {"A": "B", "B": "A"}
    (root / "review").mkdir()
    for n, verdict in enumerate(verdicts, 1):
        option = {"gold": key[0]["gold_option"], "other": other[key[0]["gold_option"]]}
        (root / "review" / f"r{n}.tsv").write_text(
            f"1\t{option.get(verdict, verdict)}\tguide: a plain 'ok' is a minimal reply\n"
        )
    return review(root)


def test_a_check_most_attempts_miss_is_contested(scale: tuple[Path, Path]) -> None:
    gold_dir, root = scale
    from training.real_scale import gold_dev

    assert contested(check_answers(root, gold_dev(gold_dir))).empty  # 1 miss in 3
    _contest_boredom_check(root)
    table = contested(check_answers(root, gold_dev(gold_dir)))
    assert table[["id", "head", "gold", "seen", "missed"]].values.tolist() == [
        ["g2", "boredom", 1, 5, 3]
    ]


def test_a_contested_check_is_retired_only_when_no_reviewer_backs_gold(
    scale: tuple[Path, Path],
) -> None:
    gold_dir, root = scale
    _contest_boredom_check(root)
    records = _review(root, gold_dir, ("gold", "undecided"))
    assert records[0]["verdicts"] == ["gold", "undecided"] and not records[0]["retired"]
    assert build(root, gold_dir)["batches"]["p02"] == "relabel"


def test_a_retired_check_leaves_the_gate_and_p02_passes(scale: tuple[Path, Path]) -> None:
    gold_dir, root = scale
    _contest_boredom_check(root)
    records = _review(root, gold_dir, ("other", "undecided"))
    assert records[0]["retired"] and records[0]["reasons"][0].startswith("guide:")
    report = build(root, gold_dir)
    assert report["batches"]["p02"] == "passed" and report["retired_checks"] == 1
    assert (root / "review_key.jsonl").read_text().count("gold_option") == 1
    text = (root / "to_label" / "review.txt").read_text()
    assert "MESSAGE: ok" in text and "gold" not in text  # the reviewer never sees which is gold


def test_an_answered_review_key_is_never_replaced(scale: tuple[Path, Path]) -> None:
    gold_dir, root = scale
    _contest_boredom_check(root)
    _review(root, gold_dir, ("other", "other"))
    before = (root / "review_key.jsonl").read_bytes()
    with pytest.raises(BadInput, match="reviewers answered it"):
        write_review_batch(pd.DataFrame(), pd.DataFrame(), root, seed=0)
    assert (root / "review_key.jsonl").read_bytes() == before


def test_a_review_file_without_reasons_is_refused(scale: tuple[Path, Path]) -> None:
    gold_dir, root = scale
    _contest_boredom_check(root)
    _review(root, gold_dir, ("other", "other"))
    (root / "review" / "r2.tsv").write_text("1\tA\t\n")
    with pytest.raises(BadInput, match="reason"):
        review(root)


def test_batches_render_again_from_the_key(scale: tuple[Path, Path]) -> None:
    _, root = scale
    pool = pd.DataFrame(
        {
            "id": [f"m{i}" for i in range(8)] + [f"g{k}" for k in range(4)],
            "history": ["[]"] * 12,
            "text": [f"text {i}" for i in range(12)],
        }
    )
    (path,) = render_batches(root, pool, ["p02"])
    assert path.read_text().startswith("=== 1 ===\nMESSAGE: text 4\n")
    assert path.read_text().count("=== ") == 8
    with pytest.raises(BadInput, match="no such batch"):
        render_batches(root, pool, ["p99"])
