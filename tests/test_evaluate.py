"""`helpdesk-scorer evaluate` on the tiny release: metrics against sklearn, report, samples."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from evaluation.evaluate import Options, evaluate
from serving.core.contract import HEADS, mask_column
from serving.core.decision.phrasing import DEFAULT_PHRASES, load_phrases
from serving.core.decision.route_policy import DEFAULT_POLICY, load_policy
from serving.core.results import ResultBuilder
from serving.core.scorer import Scorer
from tests.test_score_cli import run_cli

RECORD_KEYS = {
    "id",
    "text",
    "source",
    "split",
    "labels",
    "scores",
    "thresholds",
    "predicted",
    "route",
    "errors",
    "label_quality",
    "label_issue",
}


@pytest.fixture(scope="module")
def report(
    tiny_release: Path, tiny_dataset: Path, tiny_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("report") / "tiny-test"
    return evaluate(
        Options(
            tiny_release,
            tiny_dataset,
            "test",
            out,
            tiny_run,
            DEFAULT_POLICY,
            DEFAULT_PHRASES,
            resamples=60,
            seed=1,
        )
    )


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _test_rows(dataset: Path) -> pd.DataFrame:
    frame = pd.read_parquet(dataset)
    return frame[frame["split"] == "test"].reset_index(drop=True)


def test_metrics_match_sklearn(report: Path, tiny_release: Path, tiny_dataset: Path) -> None:
    metrics = json.loads((report / "metrics.json").read_text())
    rows = _test_rows(tiny_dataset)
    scorer = Scorer.load(tiny_release)
    probs = scorer.probabilities(rows["text"].tolist())
    assert metrics["rows"] == len(rows) and metrics["split"] == "test"
    assert set(metrics["heads"]) == set(HEADS)
    for j, head in enumerate(HEADS):
        labelled = rows[mask_column(head)].to_numpy() == 1
        y = (rows.loc[labelled, head].to_numpy(dtype=float) >= 0.5).astype(int)
        p = probs[labelled, j]
        figures = metrics["heads"][head]
        assert figures["n"] == labelled.sum() and figures["positives"] == y.sum()
        model = figures["models"]["model"]
        assert model["auroc"]["value"] == pytest.approx(roc_auc_score(y, p))
        assert model["average_precision"]["value"] == pytest.approx(average_precision_score(y, p))
        threshold = scorer.manifest.thresholds[head]
        assert model["f1"]["value"] == pytest.approx(f1_score(y, p >= threshold))
        assert figures["confusion"]["model"][1][1] == int(((p >= threshold) & (y == 1)).sum())
        for key in ("model", "fp32", "baseline"):
            for metric, interval in figures["models"][key].items():
                if interval["low"] is not None:
                    assert interval["low"] <= interval["value"] + 1e-9, (head, key, metric)
                    assert interval["value"] <= interval["high"] + 1e-9, (head, key, metric)
        # the fp32 graph through the same path differs from int8 only by quantisation
        assert figures["models"]["fp32"]["auroc"]["value"] == pytest.approx(
            model["auroc"]["value"], abs=0.1
        )
        assert set(figures["sources"]) == set(rows.loc[labelled, "source"])
        delta = figures["delta_vs_baseline"]["model"]["auroc"]["value"]
        baseline = figures["models"]["baseline"]["auroc"]["value"]
        assert delta == pytest.approx(model["auroc"]["value"] - baseline)
    assert metrics["fp32"]["max_abs_prob_diff"] < 0.2
    assert metrics["routes"]["project-written"]["n"] == int((rows["source"] == "gold").sum())
    assert metrics["routes"]["real"]["n"] == int((rows["source"] == "real_gold").sum())
    assert list(metrics["groups"]) == ["real", "project-written", "public"]
    for group, heads in metrics["groups"].items():
        for head, figures in heads.items():
            models = figures["models"]
            assert set(models) == {"model", "fp32", "baseline", "length"}
            delta = figures["model_minus_length"]["auroc"]["value"]
            assert delta == pytest.approx(
                models["model"]["auroc"]["value"] - models["length"]["auroc"]["value"]
            ), (group, head)


def test_report_is_self_contained_with_every_plot(report: Path) -> None:
    html = (report / "report.html").read_text()
    for head in HEADS:
        for plot in ("roc", "pr", "reliability", "confusion"):
            assert f"<img alt='{head} {plot}' src='data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html
    assert "TF-IDF" in html and "out-of-sample" in html


def test_misclassified_holds_exactly_the_wrong_and_uncertain_rows(
    report: Path, tiny_release: Path, tiny_dataset: Path
) -> None:
    rows = _test_rows(tiny_dataset)
    scorer = Scorer.load(tiny_release)
    policy = load_policy(DEFAULT_POLICY)
    builder = ResultBuilder.create(scorer.manifest, policy, load_phrases(DEFAULT_PHRASES))
    expected: dict[str, set[tuple[str, str]]] = {}
    for row, scores in zip(
        rows.to_dict("records"), scorer.score(rows["text"].tolist()), strict=True
    ):
        uncertain = builder.result(None, row["text"], scores).uncertain
        errors = set()
        for head in HEADS:
            predicted = scores.probabilities[head] >= scorer.manifest.thresholds[head]
            if row[mask_column(head)] == 1 and predicted != (row[head] >= 0.5):
                errors.add((head, "false_positive" if predicted else "false_negative"))
            elif head in uncertain:
                errors.add((head, "uncertain"))
        if errors:
            expected[row["id"]] = errors

    predictions = _read(report / "predictions.jsonl")
    wrong = _read(report / "misclassified.jsonl")
    assert len(predictions) == len(rows)
    assert expected, "the tiny model should get something wrong or uncertain"
    assert {r["id"]: {(e["head"], e["kind"]) for e in r["errors"]} for r in wrong} == expected
    for record in predictions:
        assert set(record) == RECORD_KEYS
        assert set(record["labels"]) == set(record["scores"]) == set(HEADS)
        assert set(record["route"]) == {"name", "priority", "reason"}
        # the default policy overrides no threshold: serving decided score >= the manifest's
        # (rounded scores can sit on the threshold, so compare away from it)
        for head in HEADS:
            score, cut = record["scores"][head], record["thresholds"][head]
            if abs(score - cut) > 1e-3:
                assert record["predicted"][head] == (score >= cut)
    for record in wrong:
        assert record["labels"]["legitimacy"] is None or isinstance(
            record["labels"]["legitimacy"], float
        )
    qualities = [r["label_quality"] for r in wrong]
    assert qualities == sorted(qualities)


def test_compare_reports_side_by_side(report: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(report, other)
    records = _read(other / "predictions.jsonl")
    for record in records:  # a model that knows nothing about frustration
        record["scores"]["frustration"] = 0.5
    (other / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "cmp"
    result = run_cli("evaluate", "--compare", str(report), str(other), "--out", str(out))
    assert result.returncode == 0, result.stderr
    compared = json.loads((out / "compare.json").read_text())
    paired = compared["heads"]["frustration"]["paired"]
    assert paired["B"]["auroc"]["value"] == pytest.approx(0.5)
    assert paired["B - A"]["auroc"]["value"] == pytest.approx(0.5 - paired["A"]["auroc"]["value"])
    assert compared["heads"]["boredom"]["paired"]["B - A"]["auroc"]["value"] == 0.0
    assert "<img alt='frustration roc'" in (out / "report.html").read_text()


def _one_error(result: Any, text: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], lines


def test_bad_input_is_one_clear_error(
    tiny_release: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    base = ["evaluate", "--data", str(tiny_dataset), "--out", str(tmp_path / "o")]
    _one_error(run_cli(*base, str(tmp_path / "missing")), "does not exist")
    _one_error(run_cli(*base, str(tiny_release), "--split", "nope"), "unknown split")
    _one_error(
        run_cli("evaluate", str(tiny_release), "--data", str(tmp_path / "x.parquet")),
        "dataset not found",
    )
    no_test = tmp_path / "no-test.parquet"
    frame = pd.read_parquet(tiny_dataset)
    frame[frame["split"] != "test"].to_parquet(no_test)
    _one_error(
        run_cli("evaluate", str(tiny_release), "--data", str(no_test)), "no rows in split 'test'"
    )
    _one_error(run_cli("evaluate"), "give a MODEL folder")
    _one_error(
        run_cli("evaluate", "--compare", str(tmp_path), str(tmp_path)),
        "not an evaluate report folder",
    )


def test_json_is_strict(report: Path) -> None:
    text = (report / "metrics.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert not math.isnan(json.loads(text)["heads"]["complaint"]["models"]["model"]["ece"]["value"])
    assert np.isfinite(json.loads(text)["seconds"]["total"])


def test_missing_eval_extra_prints_the_install_hint(tiny_release: Path, tiny_dataset: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['cleanlab'] = None; from serving.cli import app; "
        f"app(['evaluate', {str(tiny_release)!r}, '--data', {str(tiny_dataset)!r}])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    assert result.returncode == 2
    assert "pip install 'helpdesk-scorer[eval]'" in result.stderr
    assert "Traceback" not in result.stderr
