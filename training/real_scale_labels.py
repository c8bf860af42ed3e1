"""Labellers' answer files for the scaled real-text set: the line format, its checks, the
route each line's labels imply, and agreement with the check questions' gold.

One tab-separated line per batch item (data/LABELLING.md, "Scaled labelling"):
`item  frustration_level  boredom  complaint  legitimacy  route  tags  note`.
`python -m training.real_scale_labels check FILE [--items N]` tells a labeller every line that
breaks the format or whose route does not follow from its labels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from serving.core.contract import FRUSTRATION_LEVELS
from serving.core.errors import BadInput
from training.gold import jsonl_records
from training.real_gold import ROUTES

__all__ = [
    "AGREEMENT_KEYS",
    "CHECK_KAPPA",
    "HEAD_KEYS",
    "TAGS",
    "IncompleteAnswers",
    "agreement",
    "gold_dev",
    "kappa",
    "parse_answers",
    "passes_checks",
    "policy_route",
    "read_key",
]

#: A batch passes when every head's check questions agree with gold at least this well.
CHECK_KAPPA = 0.75
TAGS = ("sarcasm", "repeat", "no_object", "unsure", "non_english")
#: The heads an answer line labels, and every label that agreement is measured on.
HEAD_KEYS = ("frustration", "boredom", "complaint", "legitimacy")
AGREEMENT_KEYS = (*HEAD_KEYS, "frustration_level", "route")


class IncompleteAnswers(BadInput):
    """A batch file that does not answer every item yet (its labeller is still at work)."""


def read_key(root: Path, name: str = "key.jsonl") -> dict[str, list[dict[str, Any]]]:
    """A key file by batch, in item order (never shown to labellers): `key.jsonl` gives each
    item's number, message id and whether it is a hidden check; the counterfactual keys
    (`training.counterfactual`) have the same lines by batch."""
    batches: dict[str, list[dict[str, Any]]] = {}
    for _, record in jsonl_records(root / name):
        batches.setdefault(str(record["batch"]), []).append(record)
    return batches


def policy_route(labels: dict[str, object]) -> str:
    """The route serving/core/decision/policy.toml gives these labels for a lone message (no
    streak)."""
    frustrated, complaint = labels["frustration"] == 1, labels["complaint"] == 1
    if frustrated and complaint:
        return "escalate_senior" if labels["legitimacy"] == 1 else "supervisor_support"
    if complaint and labels["legitimacy"] == 1:
        return "complaint_desk"
    return "re_engage" if labels["boredom"] == 1 else "standard"


def _flag(value: str, name: str, where: str) -> int:
    if value not in ("0", "1"):
        raise BadInput(f"{where}: {name} must be 0 or 1, got {value!r}")
    return int(value)


def parse_line(line: str, where: str) -> tuple[int, dict[str, object]]:
    """(item number, labels) of one answer line; any rule broken is a BadInput naming it."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) < 7:
        raise BadInput(f"{where}: needs 7 or 8 tab-separated fields, got {len(fields)}")
    item, level, boredom, complaint, legitimacy, route, tags = (f.strip() for f in fields[:7])
    note = "\t".join(fields[7:]).strip()
    if not item.isdigit():
        raise BadInput(f"{where}: item must be a number, got {item!r}")
    if level not in FRUSTRATION_LEVELS:
        raise BadInput(f"{where}: frustration_level must be one of {FRUSTRATION_LEVELS}")
    labels: dict[str, object] = {
        "frustration": int(level != "none"),
        "frustration_level": level,
        "boredom": _flag(boredom, "boredom", where),
        "complaint": _flag(complaint, "complaint", where),
    }
    if labels["complaint"] == 1:
        labels["legitimacy"] = _flag(legitimacy, "legitimacy (complaint is 1)", where)
    elif legitimacy != "-":
        raise BadInput(f"{where}: legitimacy must be '-' when complaint is 0")
    else:
        labels["legitimacy"] = None
    if route not in ROUTES:
        raise BadInput(f"{where}: route must be one of {ROUTES}, got {route!r}")
    implied = policy_route(labels)
    streak = route == "escalate_senior" and labels["frustration"] == 1
    if route != implied and not streak:
        raise BadInput(f"{where}: these labels give route {implied!r}, not {route!r}")
    tag_list = [] if tags in ("", "-") else [t.strip() for t in tags.split(",")]
    unknown = [t for t in tag_list if t not in TAGS]
    if unknown:
        raise BadInput(f"{where}: unknown tags {unknown}; known: {TAGS}")
    return int(item), {**labels, "route": route, "tags": tag_list, "note": note}


def parse_answers(path: Path, items: int | None = None) -> dict[int, dict[str, object]]:
    """Every answer of a file by item number: each item once, and all of 1..items when given."""
    answers: dict[int, dict[str, object]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        item, labels = parse_line(line, f"{path}:{n}")
        if item in answers:
            raise BadInput(f"{path}:{n}: item {item} answered twice")
        answers[item] = labels
    if items is not None:
        extra = sorted(set(answers) - set(range(1, items + 1)))
        if extra:
            raise BadInput(f"{path}: items not in the batch: {extra}")
        missing = sorted(set(range(1, items + 1)) - set(answers))
        if missing:
            raise IncompleteAnswers(f"{path}: items missing {missing[:20]}")
    return answers


def kappa(first: list[Any], second: list[Any]) -> float | None:
    """Cohen's kappa of two label lists; None when both raters used a single, equal class."""
    from sklearn.metrics import cohen_kappa_score

    if len(set(first) | set(second)) < 2:
        return None
    return float(cohen_kappa_score(first, second))


def agreement(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    *,
    skip: list[frozenset[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per label: n, kappa and raw agreement over (a, b) label pairs; legitimacy on the pairs
    where both call it a complaint. skip[i] names labels that pair i does not count for (a
    retired check question, `training.real_scale_checks`)."""
    skips = skip if skip is not None else [frozenset()] * len(pairs)
    report = {}
    for key in AGREEMENT_KEYS:
        kept = [(a, b) for (a, b), s in zip(pairs, skips, strict=True) if key not in s]
        rows = [(a[key], b[key]) for a, b in kept]
        if key == "legitimacy":
            rows = [(a[key], b[key]) for a, b in kept if a["complaint"] == b["complaint"] == 1]
        if not rows:
            continue
        first, second = [r[0] for r in rows], [r[1] for r in rows]
        report[key] = {
            "n": len(rows),
            "kappa": kappa(first, second),
            "agreement": sum(x == y for x, y in rows) / len(rows),
        }
    return report


def passes_checks(report: dict[str, dict[str, Any]]) -> bool:
    """A batch passes when each head's check kappa reaches CHECK_KAPPA (or, with one class in
    both, every check matches)."""
    for head in HEAD_KEYS:
        row = report.get(head)
        if row is None:
            continue
        if row["kappa"] is None and row["agreement"] < 1.0:
            return False
        if row["kappa"] is not None and row["kappa"] < CHECK_KAPPA:
            return False
    return True


def gold_dev(real_gold_dir: Path) -> dict[str, dict[str, Any]]:
    return {
        str(r["id"]): r
        for _, r in jsonl_records(real_gold_dir / "real_gold.jsonl")
        if r.get("split") == "dev"
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["check"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--items", type=int, default=None, help="the batch's item count")
    args = parser.parse_args()
    try:
        answers = parse_answers(args.file, args.items)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"ok: {len(answers)} answers in {args.file}")


if __name__ == "__main__":
    main()
