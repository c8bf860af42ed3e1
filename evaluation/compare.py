"""`evaluate --compare A B`: two report folders side by side, with paired differences.

A and B are folders written by `evaluate`. Their metrics.json figures are shown side by side;
where both predictions.jsonl files hold the same samples, B - A is recomputed on those
samples with paired bootstrap intervals and the ROC curves are overlaid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from evaluation import plots
from evaluation.html_report import ci, how, page, table
from evaluation.samples import PREDICTIONS_FILE
from evaluation.stats import METRICS, bootstrap
from serving.core.contract import HEADS
from serving.core.errors import BadInput

__all__ = ["compare_reports"]


def _load(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    path = folder / "metrics.json"
    if not path.is_file():
        raise BadInput(f"{folder} is not an evaluate report folder (no metrics.json)")
    metrics = json.loads(path.read_text())
    predictions: dict[str, dict[str, Any]] = {}
    source = folder / PREDICTIONS_FILE
    if source.is_file():
        for line in source.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            predictions[record["id"]] = record
    return metrics, predictions


def _paired(
    first: dict[str, dict[str, Any]],
    second: dict[str, dict[str, Any]],
    head: str,
    resamples: int,
    seed: int,
) -> tuple[dict[str, Any], np.ndarray, dict[str, np.ndarray]] | None:
    """B - A on the samples both reports scored with the same label for `head`."""
    ids = sorted(
        i
        for i in set(first) & set(second)
        if first[i]["labels"][head] is not None
        and first[i]["labels"][head] == second[i]["labels"][head]
    )
    if not ids:
        return None
    labels = np.array([first[i]["labels"][head] for i in ids], dtype=float)
    probs = {
        "A": np.array([first[i]["scores"][head] for i in ids]),
        "B": np.array([second[i]["scores"][head] for i in ids]),
    }
    thresholds = {"A": first[ids[0]]["thresholds"][head], "B": second[ids[0]]["thresholds"][head]}
    figures, deltas = bootstrap(labels, probs, thresholds, list(METRICS), resamples, seed, "A")
    return (
        {"n": len(ids), "A": figures["A"], "B": figures["B"], "B - A": deltas["B"]},
        labels,
        probs,
    )


def compare_reports(
    first: Path, second: Path, out: Path, resamples: int = 1000, seed: int = 0
) -> Path:
    """Write compare.json and report.html into `out`; return it."""
    (a, a_rows), (b, b_rows) = _load(first), _load(second)
    result: dict[str, Any] = {"A": str(first), "B": str(second), "heads": {}}
    sections = []
    for head in HEADS:
        if head not in a["heads"] or head not in b["heads"]:
            continue
        rows = []
        for metric in METRICS:
            va = a["heads"][head]["models"]["model"][metric]
            vb = b["heads"][head]["models"]["model"][metric]
            diff = (vb["value"] - va["value"]) if None not in (va["value"], vb["value"]) else None
            rows.append([metric, ci(va), ci(vb), "-" if diff is None else f"{diff:+.3f}"])
        paired = _paired(a_rows, b_rows, head, resamples, seed)
        entry: dict[str, Any] = {"reported": rows}
        section = f"<h2>{head}</h2>" + table(["metric", "A", "B", "B - A"], rows)
        if paired is not None:
            figures, labels, probs = paired
            entry["paired"] = figures
            section += f"<p>Paired on {figures['n']} samples both reports scored:</p>" + table(
                ["metric", "A", "B", "B - A (paired 95% interval)"],
                [
                    [m, ci(figures["A"][m]), ci(figures["B"][m]), ci(figures["B - A"][m], True)]
                    for m in METRICS
                ],
            )
            if len(np.unique(labels >= 0.5)) == 2:
                curves = {"model": ("A", probs["A"]), "fp32": ("B", probs["B"])}
                section += f"<img alt='{head} roc' src='{plots.roc_plot(head, labels, curves)}'>"
        result["heads"][head] = entry
        sections.append(section)
    facts = [
        [
            "A",
            f"{first}: {a['model']['name']} {a['model']['version']}, "
            f"{a['data']['path']} split {a['split']}",
        ],
        [
            "B",
            f"{second}: {b['model']['name']} {b['model']['version']}, "
            f"{b['data']['path']} split {b['split']}",
        ],
    ]
    warning = (
        ""
        if a["data"]["sha256"] == b["data"]["sha256"] and a["split"] == b["split"]
        else (
            "<p><b>The two reports were made on different data or splits: only the paired "
            "figures compare like with like.</b></p>"
        )
    )
    body = (
        table(["", ""], facts, left=2)
        + warning
        + how(
            "first table per head: the figures each report wrote, with their own intervals; second "
            "table: both models on the samples they share, resampled together, so an interval of "
            "B - A that excludes 0 is a real difference."
        )
        + "".join(sections)
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "report.html").write_text(page("Comparison: A vs B", body))
    return out
