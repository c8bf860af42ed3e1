"""Targeted counterfactual batches (t-batches) gated by their check questions, the id that ties
an edit to its parent, and counterfactual logit pairing in training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serving.core.errors import BadInput
from tests.test_real_scale import LINES, PARENT, _write
from tests.test_real_scale import scale as scale  # the tiny scaled set: a fixture
from training.counterfactual import counterfactual_id, parent_positions
from training.real_scale import build
from training.text_patch import text_patch


def _edit(item: int, edit: str, text: str) -> dict[str, object]:
    return {
        "item": item,
        "edit": edit,
        "patch": text_patch(PARENT, text),
        "frustration_level": "none",
        "boredom": 0,
        "complaint": 1,
        "legitimacy": 1,
        "route": "complaint_desk",
        "note": "",
    }


def _targeted(root: Path, t02_misses: bool) -> None:
    """t01 and t02 each ask for one polite_report of m0 and m1 and carry the fixture's four
    gold checks; t02's labeller calls the disengaged check a question when `t02_misses`."""
    key = [
        json.loads(line) for line in (root / "counterfactual_key.jsonl").read_text().splitlines()
    ]
    checks = []
    for batch, parent in (("t01", "m0"), ("t02", "m1")):
        key.append({"batch": batch, "item": 1, "id": parent, "edit": "polite_report"})
        _write(
            root / "counterfactual_edits" / f"{batch}.jsonl",
            [_edit(1, "polite_report", "Hi, my bag is late, could you help?")],
        )
        answers = ["complaint", "question", "bored", "question"]
        if batch == "t02" and t02_misses:
            answers[2] = "question"
        checks += [{"batch": batch, "item": k, "id": f"g{k - 1}"} for k in range(1, 5)]
        (root / "counterfactual_checks").mkdir(exist_ok=True)
        (root / "counterfactual_checks" / f"{batch}.tsv").write_text(
            "".join(f"{k}\t{LINES[a]}\n" for k, a in enumerate(answers, 1))
        )
    _write(root / "counterfactual_key.jsonl", key)
    _write(root / "counterfactual_checks_key.jsonl", checks)


def test_a_targeted_batch_counts_only_when_its_checks_pass(scale: tuple[Path, Path]) -> None:
    gold_dir, root = scale
    _targeted(root, t02_misses=True)
    build(root, gold_dir)
    cf = [json.loads(line) for line in (root / "counterfactual.jsonl").read_text().splitlines()]
    assert sorted(c["id"] for c in cf) == ["m0#cf-polite_report", "m0#cf-tone_calm"]
    _targeted(root, t02_misses=False)
    build(root, gold_dir)
    cf = [json.loads(line) for line in (root / "counterfactual.jsonl").read_text().splitlines()]
    assert "m1#cf-polite_report" in {c["id"] for c in cf}


def test_an_edit_other_than_the_one_asked_for_is_refused(scale: tuple[Path, Path]) -> None:
    gold_dir, root = scale
    _targeted(root, t02_misses=False)
    _write(
        root / "counterfactual_edits" / "t01.jsonl", [_edit(1, "sarcastic", "Great, a late bag.")]
    )
    with pytest.raises(BadInput, match="asks for the edit 'polite_report'"):
        build(root, gold_dir)


def test_parent_positions_ties_each_edit_to_its_parent() -> None:
    ids = ["a", counterfactual_id("a", "typos"), "b", counterfactual_id("gone", "name")]
    assert parent_positions(ids).tolist() == [-1, 0, -1, -1]


def test_pair_loss_counts_only_the_heads_the_edit_kept() -> None:
    import torch

    from training.train import pair_loss

    child = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    parent = torch.tensor([[1.0, 5.0], [2.0, 0.0]])
    agree = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    loss = pair_loss(child, parent, agree)
    assert loss.item() == pytest.approx((0 + 4 + 0) / 3)  # the disagreeing head is ignored
    loss.backward()
    assert child.grad is not None and child.grad[0, 1] == 0 and child.grad[1, 0] != 0


def test_pairing_pulls_an_edit_toward_its_parent(
    tiny_encoder: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    """A tiny run with a counterfactual copy of each train row (one word added, the same
    labels): with pair_weight the edits' logits end closer to their parents' than without."""
    import pandas as pd

    from serving.core.text import load_tokenizer
    from tests.conftest import _tiny_overrides
    from training.config import load_config
    from training.run_folder import load_run
    from training.train import train

    data = pd.read_parquet(tiny_dataset)
    train_rows = data[data["split"] == "train"]
    edits = train_rows.assign(
        id=[counterfactual_id(i, "name") for i in train_rows["id"]],
        text=train_rows["text"] + " angry",
        source="real_counterfactual",
    )
    path = tmp_path / "data.parquet"
    pd.concat([data, edits], ignore_index=True).to_parquet(path, index=False)
    gaps = []
    for weight in (0.0, 5.0):
        overrides = _tiny_overrides(tiny_encoder, path, tmp_path / "runs", f"pair-{weight}")
        run = train(load_config(overrides=[*overrides, "epochs=3", f"pair_weight={weight}"]))
        finished = load_run(run)
        tokenizer = load_tokenizer(finished.tokenizer_file)
        gaps.append(_gap(finished.model(), tokenizer, train_rows["text"].tolist()))
    assert gaps[1] < gaps[0]


def _gap(model: object, tokenizer: object, texts: list[str]) -> float:
    import torch

    from training.predict import encode

    with torch.no_grad():
        a = model(**encode(tokenizer, texts, 16))  # type: ignore[operator]
        b = model(**encode(tokenizer, [t + " angry" for t in texts], 16))  # type: ignore[operator]
    return float(np.abs((a - b).numpy()).mean())


def test_draw_check_and_second_pass_of_targeted_batches(scale: tuple[Path, Path]) -> None:
    """The draw asks each eligible train parent for one edit, with the gold checks in their own
    file; `check_batch` names a wrong edit and an unedited text; the second pass is blind
    (no labels, numbered afresh) and its agreement is measured against the writer's labels."""
    import pandas as pd

    from training.counterfactual_draw import (
        check_batch,
        draw_edit_batches,
        second_pass_agreement,
        write_second_pass,
    )
    from training.real_scale_draw import write_counterfactual_patches

    gold_dir, root = scale
    build(root, gold_dir)
    ids = [f"m{i}" for i in range(8)] + [f"g{k}" for k in range(4)]
    pool = pd.DataFrame({"id": ids, "text": PARENT, "history": "[]"})
    assert draw_edit_batches(root, pool, gold_dir) == ["t01"]
    batch = (root / "to_label" / "t01.txt").read_text()
    assert batch.count("EDIT: ") == 1  # m0 is the one train complaint
    assert (root / "to_label" / "t01.checks.txt").read_text().count("MESSAGE: ") == 4
    key = [json.loads(x) for x in (root / "counterfactual_key.jsonl").read_text().splitlines()]
    (asked,) = [k["edit"] for k in key if k["batch"] == "t01"]
    wrong = {**_edit(1, "typos", PARENT), "text": PARENT}
    _write(root / "counterfactual" / "t01.jsonl", [wrong])
    problems = check_batch(root, pool, "t01")
    assert any("asks for the edit" in p for p in problems)
    assert any("must be the edited message" in p for p in problems)
    assert any("check questions are not answered" in p for p in problems)
    edited = {**_edit(1, asked, "Hi, my bag is late."), "text": "Hi, my bag is late."}
    _write(root / "counterfactual" / "t01.jsonl", [edited])
    write_counterfactual_patches(root, pool)
    (second,) = write_second_pass(root, pool, ["t01"])
    assert "EDIT" not in second.read_text() and "Hi, my bag is late." in second.read_text()
    (root / "counterfactual_second").mkdir()
    (root / "counterfactual_second" / "t01.tsv").write_text(f"1\t{LINES['complaint']}\n")
    report = second_pass_agreement(root)
    # the writer called the edit calm, the second pass mildly frustrated
    assert report["all"]["complaint"]["agreement"] == 1.0
    assert report["all"]["frustration"]["agreement"] == 0.0
    assert report["rounds"] == {"targeted": report["all"]}


def test_paired_round_asks_a_plain_request_of_each_passed_calm_report(
    scale: tuple[Path, Path],
) -> None:
    """The second round draws the twin edit for the parents of passed polite reports only (t02
    failed its checks), in a new batch after the last, never repeating a check question, and
    only once."""
    import pandas as pd

    from training.counterfactual_draw import draw_paired_batches

    gold_dir, root = scale
    _targeted(root, t02_misses=True)
    build(root, gold_dir)
    ids = [f"m{i}" for i in range(8)] + [f"g{k}" for k in range(4)]
    pool = pd.DataFrame({"id": ids, "text": PARENT, "history": "[]"})
    assert draw_paired_batches(root, pool, gold_dir) == ["t03"]
    key = [json.loads(x) for x in (root / "counterfactual_key.jsonl").read_text().splitlines()]
    assert [(k["id"], k["edit"]) for k in key if k["batch"] == "t03"] == [("m0", "plain_request")]
    assert "EDIT: plain_request" in (root / "to_label" / "t03.txt").read_text()
    # the fixture's four gold checks were all asked in t01 and t02
    assert "MESSAGE: " not in (root / "to_label" / "t03.checks.txt").read_text()
    # no sarcastic edit passed, so there is no sincere-thanks twin to ask for either
    with pytest.raises(BadInput, match="left to draw"):
        draw_paired_batches(root, pool, gold_dir)


def test_leave_out_edits_drops_those_edits_from_train(tiny_dataset: Path, tmp_path: Path) -> None:
    import pandas as pd

    from training.config import load_config
    from training.train import load_splits

    data = pd.read_parquet(tiny_dataset)
    train_rows = data[data["split"] == "train"].head(2)
    edits = pd.concat(
        [
            train_rows.assign(id=[counterfactual_id(i, edit) for i in train_rows["id"]])
            for edit in ("sarcastic", "typos")
        ]
    )
    path = tmp_path / "data.parquet"
    pd.concat([data, edits], ignore_index=True).to_parquet(path, index=False)
    kept, _ = load_splits(load_config(overrides=[f"data={path}", "leave_out_edits=sarcastic"]))
    assert not kept["id"].str.endswith("#cf-sarcastic").any()
    assert kept["id"].str.endswith("#cf-typos").sum() == 2
    with pytest.raises(BadInput, match="no such edits"):
        load_splits(load_config(overrides=[f"data={path}", "leave_out_edits=sarcasm"]))
