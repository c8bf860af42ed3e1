"""Self-contained HTML for an evaluation (plots inline as data URIs, no external assets)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from evaluation.samples import ERROR_KINDS, Sample
from serving.core.contract import HEADS

__all__ = ["Raw", "ci", "how", "page", "render_report", "table"]

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:top}
td{white-space:nowrap}td.l{white-space:normal}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.how{color:#555;font-style:italic;margin:.3em 0 .8em}
.plots img{margin:4px;border:1px solid #eee;vertical-align:top}
.row{display:flex;gap:2em;flex-wrap:wrap}
"""
TOP_ROWS = 30


class Raw(str):
    """HTML that `table` puts in a cell as it is; every other value is escaped."""


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """An HTML table; the first `left` columns are left-aligned; values are escaped unless Raw."""

    def cell(tag: str, i: int, value: object) -> str:
        text = value if isinstance(value, Raw) else escape(str(value))
        return f"<{tag}{' class=l' if i < left else ''}>{text}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers)) if any(headers) else ""
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    header = f"<tr>{head}</tr>" if head else ""
    return f"<table>{header}{body}</table>"


def how(text: str) -> str:
    return f"<p class=how>How to read this: {escape(text)}</p>"


def ci(interval: dict[str, Any] | None, signed: bool = False) -> str:
    """'0.912 [0.890, 0.931]' or '-' when the figure is undefined (one class only)."""
    if not interval or interval.get("value") is None:
        return "-"
    sign = "+" if signed else ""
    text = f"{interval['value']:{sign}.3f}"
    if interval.get("low") is not None:
        text += f" [{interval['low']:{sign}.3f}, {interval['high']:{sign}.3f}]"
    return text


def _summary(metrics: dict[str, Any]) -> str:
    rows = []
    for head, figures in metrics["heads"].items():
        for key, values in figures["models"].items():
            delta = figures["delta_vs_baseline"].get(key, {}).get("auroc")
            rows.append(
                [
                    head,
                    metrics["names"][key],
                    figures["n"],
                    figures["positives"],
                    ci(values["auroc"]),
                    ci(delta, signed=True) if delta else "",
                    ci(values["average_precision"]),
                    ci(values["f1"]),
                    ci(values["ece"]),
                    f"{figures['thresholds'][key]:.3f}",
                ]
            )
    return (
        "<h2>Summary</h2>"
        + how(
            "one row per head and model over every labelled row of the split; brackets are "
            "bootstrap 95% intervals; the delta column is the model's AUROC minus the baseline's "
            "on the same resamples (an interval above 0 means the model is better beyond noise)."
        )
        + table(
            [
                "head",
                "model",
                "n",
                "positives",
                "AUROC",
                "AUROC - baseline",
                "average precision",
                "F1 at threshold",
                "ECE",
                "threshold",
            ],
            rows,
            left=2,
        )
    )


def _threshold_tables(metrics: dict[str, Any], figures: dict[str, Any]) -> str:
    parts = []
    for key, rows in figures["threshold_table"].items():
        chosen = figures["thresholds"][key]
        body = [
            [
                Raw(f"<b>{r['threshold']:.3f}</b>")
                if abs(r["threshold"] - round(chosen, 4)) < 1e-9
                else f"{r['threshold']:.3f}",
                f"{r['precision']:.3f}",
                f"{r['recall']:.3f}",
                f"{r['f1']:.3f}",
                f"{r['flagged']:.1%}",
            ]
            for r in rows
        ]
        parts.append(
            f"<div><b>{escape(metrics['names'][key])}</b>"
            + table(["threshold", "precision", "recall", "F1", "flagged"], body, left=0)
            + "</div>"
        )
    return "<div class=row>" + "".join(parts) + "</div>"


def _sources(metrics: dict[str, Any], figures: dict[str, Any]) -> str:
    keys = list(figures["models"])
    rows = []
    for source, item in figures["sources"].items():
        models = item["models"]
        rows.append(
            [
                source,
                item["n"],
                item["positives"],
                *(ci(models[k]["auroc"]) for k in keys),
                *(ci(models[k]["average_precision"]) for k in keys),
                *(ci(models[k]["f1"]) for k in keys),
                ci(models["model"]["ece"]),
            ]
        )
    names = [metrics["names"][k] for k in keys]
    return table(
        [
            "source",
            "n",
            "positives",
            *(f"AUROC {n}" for n in names),
            *(f"AP {n}" for n in names),
            *(f"F1 {n}" for n in names),
            "ECE model",
        ],
        rows,
    )


def _head(metrics: dict[str, Any], head: str, plots: dict[str, str]) -> str:
    figures = metrics["heads"][head]
    images = "".join(f"<img alt='{escape(head)} {k}' src='{v}'>" for k, v in plots.items())
    return (
        f"<h2 id='{escape(head)}'>{escape(head)}</h2>"
        + how(
            "ROC and precision-recall: higher and further right is better, the grey line is "
            "chance; reliability: points on the diagonal are calibrated, ECE is the weighted "
            "gap; confusion: counts at each model's own threshold."
        )
        + f"<div class=plots>{images}</div>"
        + "<h3>Thresholds</h3>"
        + how(
            "precision, recall and F1 if the threshold were moved; the bold row is the "
            "threshold in force (chosen on dev)."
        )
        + _threshold_tables(metrics, figures)
        + "<h3>Per source</h3>"
        + how(
            "the same figures for each data source; small sources have wide intervals; "
            "'-' means only one class is present."
        )
        + _sources(metrics, figures)
    )


def _routes(metrics: dict[str, Any]) -> str:
    parts = []
    for group, routes in metrics["routes"].items():
        if not routes["n"]:
            continue
        names = routes["names"]
        matrix = routes["confusion"]["model"]
        rows = [[name, *row] for name, row in zip(names, matrix, strict=True)]
        agreement = ", ".join(
            f"{metrics['names'][k]} {v:.1%}"
            for k, v in routes["agreement"].items()
            if v is not None
        )
        parts.append(
            f"<h3>{escape(group)} text</h3><p>{routes['n']} rows; route accuracy: "
            f"{escape(agreement)}.</p>" + table(["expected \\ model", *names], rows)
        )
    return (
        "<h2>Routes</h2>"
        + how(
            "rows: the expected route (on real text the route its labeller gave; on the "
            "project-written gold the route the policy gives its labels); columns: the route "
            "the model's scores get (what the server returns); the diagonal agrees."
        )
        + ("".join(parts) or "<p>No gold rows in this split.</p>")
    )


def _groups(metrics: dict[str, Any]) -> str:
    rows = []
    for group, heads in metrics.get("groups", {}).items():
        for head, figures in heads.items():
            models = figures["models"]
            rows.append(
                [
                    group,
                    head,
                    figures["n"],
                    figures["positives"],
                    ci(models["model"]["auroc"]),
                    ci(models["baseline"]["auroc"]),
                    ci(models["length"]["auroc"]) + f" ({figures['length_direction']})",
                    ci(figures["model_minus_baseline"].get("auroc"), signed=True),
                    ci(figures["model_minus_length"].get("auroc"), signed=True),
                    ci(models["model"]["f1"]),
                    ci(models["model"]["ece"]),
                ]
            )
    return (
        "<h2>By kind of text: real customers first</h2>"
        + how(
            "real: real customer messages labelled by the guide (the yardstick); "
            "project-written: the project's own gold messages; public: the public sets' test "
            "rows. Length: message length alone as a score, in the direction better on the "
            "group's dev rows. Deltas are paired bootstrap differences (above 0 beyond noise "
            "when the whole interval is)."
        )
        + table(
            [
                "group",
                "head",
                "n",
                "positives",
                "AUROC model",
                "AUROC baseline",
                "AUROC length",
                "model - baseline",
                "model - length",
                "F1",
                "ECE",
            ],
            rows,
            left=2,
        )
    )


def _misclassified(metrics: dict[str, Any], wrong: Sequence[Sample]) -> str:
    counts = metrics["misclassified"]["by_kind"]
    rows = [[h, *(counts.get(h, {}).get(k, 0) for k in ERROR_KINDS)] for h in HEADS]
    top = [
        [
            r.id,
            r.source,
            ", ".join(f"{e.head} {e.kind}" for e in r.errors),
            "-" if r.label_quality is None else f"{r.label_quality:.3f}",
            r.text[:160],
        ]
        for r in wrong[:TOP_ROWS]
    ]
    return (
        "<h2>Misclassified and uncertain samples</h2>"
        + how(
            "a sample is wrong on a head when its label (>= 0.5 is positive) and the score "
            "at the threshold in force disagree; uncertain when serving marks the head "
            "uncertain (a deciding score within the policy margin of its threshold)."
        )
        + f"<p>{metrics['misclassified']['rows']} of {metrics['rows']} rows, all in "
        "misclassified.jsonl (likeliest wrong label first); every row in predictions.jsonl."
        "</p>"
        + table(["head", *ERROR_KINDS], rows)
        + table(["id", "source", "errors", "label quality", "text"], top, left=5)
    )


def _label_issues(metrics: dict[str, Any]) -> str:
    issues = metrics["label_issues"]
    sample = (
        "The probabilities are out-of-sample: the model was not trained on this split."
        if issues["out_of_sample"]
        else "Warning: the model was trained on this split, so its probabilities are "
        "in-sample and hide wrong labels it memorised."
    )
    rows = [
        [
            t["id"],
            t["source"],
            t["head"],
            t["label"],
            t["score"],
            t["label_quality"],
            t["text"][:160],
        ]
        for t in issues["top"]
    ]
    return (
        "<h2>Likely label issues</h2>"
        + how(
            "rows whose dataset label the model contradicts most confidently, lowest label "
            "quality first; review the label before blaming the model."
        )
        + f"<p>Method: {escape(issues['method'])}. {escape(sample)} "
        f"{issues['flagged']} rows flagged.</p>"
        + table(["id", "source", "head", "label", "score", "label quality", "text"], rows, left=3)
    )


def render_report(
    metrics: dict[str, Any], plots: dict[str, dict[str, str]], wrong: Sequence[Sample]
) -> str:
    """The evaluation page: header, summary, one section per head, routes, samples."""
    model = metrics["model"]
    fp32 = metrics.get("fp32")
    facts = [
        [
            "model",
            f"{model['name']} {model['version']} ({model['quantization']}), "
            f"{model['folder']}, sha256 {model['sha256'][:12]}",
        ],
        ["data", f"{metrics['data']['path']} split {metrics['split']}, {metrics['rows']} rows"],
        ["scored with", metrics["scored_with"]],
        [
            "fp32",
            f"{fp32['scored_with']}; max |int8 - fp32| probability {fp32['max_abs_prob_diff']:.4f}"
            if fp32
            else "not given (--run RUN)",
        ],
        ["baseline", metrics["baseline"]["description"]],
        [
            "intervals",
            f"{metrics['bootstrap']['resamples']} bootstrap resamples, "
            f"seed {metrics['bootstrap']['seed']}, percentile 95%",
        ],
        ["time", f"{metrics['seconds']['total']} s"],
    ]
    links = " | ".join(f"<a href='#{h}'>{h}</a>" for h in metrics["heads"])
    body = (
        table(["", ""], facts, left=2)
        + f"<p>{links}</p>"
        + _groups(metrics)
        + _summary(metrics)
        + "".join(_head(metrics, h, plots[h]) for h in metrics["heads"] if h in plots)
        + _routes(metrics)
        + _misclassified(metrics, wrong)
        + _label_issues(metrics)
    )
    title = f"Evaluation: {model['name']} {model['version']} on {metrics['split']}"
    return page(title, body)
