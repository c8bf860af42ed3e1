"""`helpdesk-scorer evaluate MODEL`: score a split with the serving Scorer and write a report.

The folder holds metrics.json, report.html (self-contained), predictions.jsonl (every sample)
and misclassified.jsonl (wrong or uncertain samples, likeliest wrong label first).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from tqdm import tqdm

from evaluation import label_issues, plots
from evaluation.baseline import DESCRIPTION, fit_baseline
from evaluation.behaviour import behaviour_report
from evaluation.groups import group_figures
from evaluation.html_report import render_report
from evaluation.route_confusion import label_routes, route_confusion
from evaluation.samples import (
    MISCLASSIFIED_FILE,
    PREDICTIONS_FILE,
    Sample,
    build_records,
    misclassified,
    write_jsonl,
)
from evaluation.stats import head_figures
from serving.core.contract import HEADS, SPLITS, mask_column
from serving.core.decision.decide import Decision, DecisionRules, merge_rules, routes_for
from serving.core.decision.phrasing import load_phrases
from serving.core.decision.route_policy import load_policy
from serving.core.errors import BadInput
from serving.core.files import sha256_file
from serving.core.results import ResultBuilder
from serving.core.schemas import Result
from serving.core.scorer import Scorer
from serving.core.text import context_of_history

__all__ = ["Options", "evaluate", "json_safe", "load_split"]

TOP_ISSUES = 25


@dataclass(frozen=True)
class Options:
    model: Path
    data: Path
    split: str
    out: Path
    run: Path | None
    policy: Path
    phrases: Path
    resamples: int = 1000
    seed: int = 0
    batch_size: int = 64


def json_safe(value: Any) -> Any:
    """NaN and numpy scalars -> JSON (NaN becomes null: strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def load_split(data: Path, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(all rows, rows of `split`); a missing file, column or split is a BadInput."""
    if split not in SPLITS:
        raise BadInput(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if not data.is_file():
        raise BadInput(f"dataset not found: {data} (run `helpdesk-scorer prepare` or --data)")
    try:
        frame = pd.read_parquet(data)
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise BadInput(f"cannot read {data}: {exc}") from None
    needed = ["id", "text", "source", "split", *HEADS, *(mask_column(h) for h in HEADS)]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise BadInput(f"{data} lacks columns {missing}")
    rows = frame[frame["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise BadInput(f"{data} has no rows in split {split!r}")
    return frame, rows


def fp32_file(run: Path) -> Path:
    """The run's fp32 ONNX graph (a run folder's layout is training's, read only when given)."""
    from training.run_folder import FP32_ONNX_FILE

    return run / FP32_ONNX_FILE


def fp32_scorer(run: Path, scorer: Scorer) -> Scorer:
    """The run's fp32 ONNX graph behind the release's tokenizer and calibration: the same
    onnxruntime path as int8, so the two columns differ only by quantisation."""
    from training.run_folder import CALIBRATION_FILE

    onnx = fp32_file(run)
    if not onnx.is_file():
        raise BadInput(f"{run} has no {onnx.name} (run `helpdesk-scorer export {run}` first)")
    calibration = run / CALIBRATION_FILE
    if calibration.is_file():
        temps = json.loads(calibration.read_text()).get("temperature", {})
        ours = dict(zip(HEADS, scorer.manifest.temperatures.tolist(), strict=True))
        if any(abs(float(temps.get(h, math.nan)) - ours[h]) > 1e-5 for h in HEADS):
            raise BadInput(f"{run} is not the run this model was exported from (temperatures)")
    options = scorer.session.get_session_options()
    session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    return Scorer(scorer.manifest, session, scorer.tokenizer)


def _score(
    scorer: Scorer,
    texts: list[str],
    batch_size: int,
    desc: str,
    builder: ResultBuilder | None = None,
    contexts: list[str] | None = None,
) -> tuple[np.ndarray, list[tuple[Decision, Result]]]:
    """Probabilities (n, len(HEADS)) and, with a builder, serving's decision and result object
    for each text; `contexts` (one per text) reach a thread-reading model."""
    probs = np.zeros((len(texts), len(HEADS)))
    results: list[tuple[Decision, Result]] = []
    chunk = batch_size * 4
    with tqdm(total=len(texts), unit="msg", desc=desc) as bar:
        for start in range(0, len(texts), chunk):
            part = texts[start : start + chunk]
            context = None if contexts is None else contexts[start : start + chunk]
            scores = scorer.score(part, batch_size, contexts=context)
            probs[start : start + len(part)] = [[s.probabilities[h] for h in HEADS] for s in scores]
            if builder is not None:
                results += [builder.decided(None, t, s) for t, s in zip(part, scores, strict=True)]
            bar.update(len(part))
    return probs, results


def _head_plots(
    head: str,
    labels: np.ndarray,
    curves: dict[str, tuple[str, np.ndarray]],
    figures: dict[str, Any],
) -> dict[str, str]:
    models = figures["models"]
    with_auroc = {
        k: (f"{n} AUROC {models[k]['auroc']['value']:.3f}", p) for k, (n, p) in curves.items()
    }
    with_ap = {
        k: (f"{n} AP {models[k]['average_precision']['value']:.3f}", p)
        for k, (n, p) in curves.items()
    }
    with_ece = {k: (f"{n} ECE {models[k]['ece']['value']:.3f}", p) for k, (n, p) in curves.items()}
    matrices = {
        k: (f"{n} @ {figures['thresholds'][k]:.2f}", figures["confusion"][k])
        for k, (n, _) in curves.items()
    }
    return {
        "roc": plots.roc_plot(f"{head}: ROC", labels, with_auroc),
        "pr": plots.pr_plot(f"{head}: precision-recall", labels, with_ap),
        "reliability": plots.reliability_plot(f"{head}: reliability", labels, with_ece),
        "confusion": plots.confusion_plot(f"{head}: at each model's threshold", matrices),
    }


def evaluate(options: Options) -> Path:
    """Run the whole evaluation; return the report folder."""
    clock = {"started": time.perf_counter()}
    frame, rows = load_split(options.data, options.split)
    scorer = Scorer.load(options.model)
    policy = load_policy(options.policy)
    builder = ResultBuilder.create(
        scorer.manifest, policy, load_phrases(options.phrases, tuple(r.name for r in policy.rules))
    )
    fp32 = fp32_scorer(options.run, scorer) if options.run else None
    texts = rows["text"].astype(str).tolist()
    reads_context = scorer.manifest.context_length > 0
    contexts = (
        [context_of_history(h) for h in rows["history"]]
        if reads_context and "history" in rows
        else None
    )
    quantization = str(scorer.manifest.raw.get("quantization", "onnx"))
    names = {
        "model": f"model ({quantization}{', with context' if contexts else ''})",
        "alone": f"model ({quantization}, message alone)",
        "fp32": "model (fp32 ONNX)",
        "baseline": "TF-IDF + LR baseline",
    }

    probs: dict[str, np.ndarray] = {}
    probs["model"], results = _score(scorer, texts, options.batch_size, "score", builder, contexts)
    if contexts is not None:
        probs["alone"], _ = _score(scorer, texts, options.batch_size, "score alone")
    clock["scored"] = time.perf_counter()
    if fp32 is not None:
        probs["fp32"], _ = _score(fp32, texts, options.batch_size, "score fp32", None, contexts)
    clock["scored_fp32"] = time.perf_counter()
    baseline = fit_baseline(
        frame[frame["split"] == "train"].reset_index(drop=True),
        frame[frame["split"] == "dev"].reset_index(drop=True),
        options.seed,
    )
    probs["baseline"] = baseline.probabilities(texts)
    clock["baseline"] = time.perf_counter()

    cut = dict(builder.rules.thresholds)
    heads: dict[str, Any] = {}
    head_plots: dict[str, dict[str, str]] = {}
    for j, head in enumerate(tqdm(HEADS, desc="bootstrap", unit="head")):
        labelled = rows[mask_column(head)].to_numpy() == 1
        labels = rows.loc[labelled, head].to_numpy(dtype=float)
        if not labelled.any():
            continue
        per_model = {k: p[labelled, j] for k, p in probs.items()}
        thresholds = {k: cut[head] for k in probs} | {"baseline": baseline.thresholds[head]}
        figures = head_figures(
            labels,
            per_model,
            thresholds,
            rows.loc[labelled, "source"].astype(str).to_numpy(),
            options.resamples,
            options.seed,
        )
        heads[head] = figures
        if len(np.unique(labels >= 0.5)) == 2:
            curves = {k: (names[k], p) for k, p in per_model.items()}
            head_plots[head] = _head_plots(head, labels, curves, figures)
    clock["figures"] = time.perf_counter()

    groups = group_figures(
        rows,
        frame[frame["split"] == "dev"].reset_index(drop=True),
        probs,
        {k: cut for k in probs} | {"baseline": baseline.thresholds},
        resamples=options.resamples,
        seed=options.seed,
    )
    clock["groups"] = time.perf_counter()
    baseline_rules = merge_rules(policy, baseline.thresholds, 0.0, 1.0)
    routes = _routes_by_group(rows, results, probs["baseline"], builder.rules, baseline_rules)

    label_matrix = np.nan_to_num(rows[list(HEADS)].to_numpy(dtype=float))
    masks = rows[[mask_column(h) for h in HEADS]].to_numpy(dtype=float)
    quality, worst, issue = label_issues.sample_quality(label_matrix, probs["model"], masks)
    records = build_records(rows, results, cut, quality, issue)
    wrong = misclassified(records)
    options.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(options.out / PREDICTIONS_FILE, records)
    write_jsonl(options.out / MISCLASSIFIED_FILE, wrong)
    clock["done"] = time.perf_counter()

    metrics = {
        "model": {
            "folder": str(options.model),
            "name": scorer.manifest.name,
            "version": scorer.manifest.version,
            "sha256": scorer.manifest.sha256,
            "quantization": quantization,
        },
        "data": {"path": str(options.data), "sha256": sha256_file(options.data)},
        "split": options.split,
        "rows": len(rows),
        "scored_with": "serving Scorer (onnxruntime) and serving decide (routing policy)",
        "fp32": None
        if options.run is None
        else {
            "path": str(fp32_file(options.run)),
            "scored_with": "onnxruntime fp32 through the serving Scorer (not torch)",
            "max_abs_prob_diff": float(np.abs(probs["fp32"] - probs["model"]).max()),
        },
        "baseline": {"description": DESCRIPTION, "thresholds": baseline.thresholds},
        "bootstrap": {"resamples": options.resamples, "seed": options.seed, "level": 0.95},
        "names": {k: names[k] for k in probs},
        "groups": groups,
        "heads": heads,
        "routes": routes,
        "misclassified": {
            "rows": len(wrong),
            "by_kind": _count_errors(wrong),
        },
        "label_issues": _label_issues(records, quality, worst, issue, options.split),
        "behaviour": behaviour_report(scorer),
        "seconds": {
            "load_and_score": round(clock["scored"] - clock["started"], 1),
            "score_fp32": round(clock["scored_fp32"] - clock["scored"], 1),
            "baseline": round(clock["baseline"] - clock["scored_fp32"], 1),
            "figures": round(clock["figures"] - clock["baseline"], 1),
            "groups": round(clock["groups"] - clock["figures"], 1),
            "total": round(clock["done"] - clock["started"], 1),
        },
    }
    metrics = json_safe(metrics)
    (options.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (options.out / "report.html").write_text(render_report(metrics, head_plots, wrong))
    if options.run is not None:
        _track(options.run, options, metrics)
    return options.out


def _track(run: Path, options: Options, metrics: dict[str, Any]) -> None:
    """Log the figures and the report to the MLflow run of the training run evaluated."""
    from training.tracking import log_to_run

    auroc = {
        group: {
            head: figures["models"]["model"]["auroc"]["value"]
            for head, figures in heads.items()
            if "model" in figures["models"]
        }
        for group, heads in metrics["groups"].items()
    }
    log_to_run(
        run,
        prefix=f"evaluate_{options.split}",
        metrics={
            "auroc": auroc,
            "route_agreement": {g: r["agreement"]["model"] for g, r in metrics["routes"].items()},
            "behaviour_pass_rate": metrics["behaviour"]["pass_rate"],
        },
        tags={f"evaluated_{options.split}": str(options.model)},
        artifacts=(options.out / "metrics.json", options.out / "report.html"),
        artifact_dir=f"evaluate_{options.split}",
    )


def _routes_by_group(
    rows: pd.DataFrame,
    results: list[tuple[Decision, Result]],
    baseline_probs: np.ndarray,
    rules: DecisionRules,
    baseline_rules: DecisionRules,
) -> dict[str, dict[str, object]]:
    """Route confusion per labelled group: on real text (the scaled set and the real gold set)
    against the route its labeller gave, on the project-written gold against the route the
    policy gives its labels."""
    route_names = list(dict.fromkeys(r.name for r in rules.policy.rules))
    expected_routes = rows["route"] if "route" in rows else pd.Series([None] * len(rows))
    labelled = expected_routes.notna()
    picks = {
        "real (new)": (rows["source"].eq("real_scale") & labelled).to_numpy(),
        "real": (rows["source"].eq("real_gold") & labelled).to_numpy(),
    }
    expected = {g: expected_routes[p].astype(str).tolist() for g, p in picks.items()}
    gold = (rows["source"] == "gold").to_numpy()
    picks["project-written"] = gold
    expected["project-written"] = label_routes(rows[gold], rules)
    routes = {}
    for group, picked in picks.items():
        if not picked.any():
            continue
        routes[group] = route_confusion(
            expected[group],
            {
                "model": [d.route.name for (d, _), g in zip(results, picked, strict=True) if g],
                "baseline": routes_for(baseline_probs[picked], baseline_rules),
            },
            route_names,
        )
    return routes


def _label_issues(
    records: list[Sample],
    quality: np.ndarray,
    worst: np.ndarray,
    issue: np.ndarray,
    split: str,
) -> dict[str, Any]:
    """The flagged rows, lowest label quality first, each with the head that flagged it."""
    ranked = [i for i in np.argsort(np.nan_to_num(quality, nan=2.0), kind="stable") if issue[i]]
    top = []
    for i in ranked[:TOP_ISSUES]:
        head = HEADS[worst[i]]
        record = records[i]
        top.append(
            {
                "id": record.id,
                "source": record.source,
                "head": head,
                "label": record.labels[head],
                "score": record.scores[head],
                "label_quality": record.label_quality,
                "text": record.text,
            }
        )
    return {
        "method": label_issues.METHOD,
        "out_of_sample": split != "train",
        "flagged": int(issue.sum()),
        "top": top,
    }


def _count_errors(records: list[Sample]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {h: {} for h in HEADS}
    for record in records:
        for error in record.errors:
            kinds = counts[error.head]
            kinds[error.kind] = kinds.get(error.kind, 0) + 1
    return counts
