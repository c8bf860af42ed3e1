"""The gold set: validation of hand-labelled messages, agreement, adjudication and the split.

`python -m training.gold build` merges the authors' first pass (data/gold/parts/), applies the
adjudicated labels where the independent second pass disagreed, assigns the one-time
seed/dev/test split and writes data/gold/gold.jsonl and data/gold/agreement.json.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from serving.core.contract import FRUSTRATION_LEVELS, HEADS
from serving.core.errors import BadInput
from training.dataset_rules import GOLD_SALT, GOLD_SPLITS, hash_split

__all__ = [
    "LABEL_KEYS",
    "agreement",
    "assign_split",
    "jsonl_records",
    "load_labelled",
    "validate",
    "write_jsonl_records",
]

LABEL_KEYS = (*HEADS, "frustration_level")


def validate(record: dict[str, object], where: str) -> dict[str, object]:
    """Check one labelled message against the labelling guide's rules; return it unchanged."""
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadInput(f"{where}: empty or missing text")
    for head in ("frustration", "boredom", "complaint"):
        if record.get(head) not in (0, 1):
            raise BadInput(f"{where}: {head} must be 0 or 1, got {record.get(head)!r}")
    level = record.get("frustration_level")
    if level not in FRUSTRATION_LEVELS or (level == "none") != (record["frustration"] == 0):
        raise BadInput(f"{where}: frustration_level {level!r} disagrees with frustration")
    legit = record.get("legitimacy")
    if record["complaint"] == 1 and legit not in (0, 1):
        raise BadInput(f"{where}: a complaint needs legitimacy 0 or 1, got {legit!r}")
    if record["complaint"] == 0 and legit is not None:
        raise BadInput(f"{where}: legitimacy must be null when complaint is 0")
    return record


def write_jsonl_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """One JSON object a line, keys sorted and text unescaped, so a rebuild is byte-identical."""
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def jsonl_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for each non-blank line; invalid JSON is a BadInput naming the line."""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{where}: invalid JSON ({exc.msg})") from None
        yield where, record


def load_labelled(paths: Iterable[Path]) -> list[dict[str, object]]:
    """Every record of the given JSONL files, validated, ids unique."""
    records: list[dict[str, object]] = []
    seen: set[object] = set()
    for path in sorted(paths):
        for where, record in jsonl_records(path):
            validate(record, where)
            if record["id"] in seen:
                raise BadInput(f"{where}: duplicate id {record['id']!r}")
            seen.add(record["id"])
            records.append(record)
    return records


def assign_split(message_id: str) -> str:
    """Stable split for a gold id (`dataset_rules.hash_split`)."""
    return hash_split(message_id, GOLD_SALT, GOLD_SPLITS)


def _pairs(
    first: dict[str, dict[str, object]], second: dict[str, dict[str, object]], key: str
) -> tuple[list[object], list[object]]:
    ids = [i for i in second if i in first]
    if key == "legitimacy":
        ids = [i for i in ids if first[i]["complaint"] == 1 and second[i]["complaint"] == 1]
    return [first[i][key] for i in ids], [second[i][key] for i in ids]


def agreement(
    first: dict[str, dict[str, object]], second: dict[str, dict[str, object]]
) -> dict[str, dict[str, float]]:
    """Cohen's kappa and raw agreement per label between two passes over the same ids.

    Legitimacy is compared on messages both passes call a complaint.
    """
    from sklearn.metrics import cohen_kappa_score

    result = {}
    for key in LABEL_KEYS:
        a, b = _pairs(first, second, key)
        result[key] = {
            "n": len(a),
            "kappa": float(cohen_kappa_score(a, b)) if len(set(a) | set(b)) > 1 else 1.0,
            "agreement": sum(x == y for x, y in zip(a, b, strict=True)) / max(len(a), 1),
        }
    return result


def build(gold_dir: Path) -> None:
    first = {str(r["id"]): r for r in load_labelled(gold_dir.glob("parts/*.jsonl"))}
    second = {str(r["id"]): r for r in load_labelled([gold_dir / "second_pass.jsonl"])}
    unknown = set(second) - set(first)
    if unknown:
        raise BadInput(f"second pass has ids not in the first pass: {sorted(unknown)[:5]}")
    adjudicated_path = gold_dir / "adjudication.jsonl"
    adjudicated = (
        {str(r["id"]): r for r in load_labelled([adjudicated_path])}
        if adjudicated_path.exists()
        else {}
    )
    disagreements = [i for i in second if any(first[i][k] != second[i][k] for k in LABEL_KEYS)]
    missing = [i for i in disagreements if i not in adjudicated]
    if missing:
        raise BadInput(f"{len(missing)} disagreements are not adjudicated, e.g. {missing[:5]}")
    report = {
        "first_pass": len(first),
        "second_pass": len(second),
        "disagreements": len(disagreements),
        "changed_by_adjudication": sum(
            any(first[i][k] != adjudicated[i][k] for k in LABEL_KEYS) for i in disagreements
        ),
        "per_label": agreement(first, second),
    }
    with (gold_dir / "gold.jsonl").open("w", encoding="utf-8") as out:
        for message_id, record in first.items():
            final = (
                {**record, **{k: adjudicated[message_id][k] for k in LABEL_KEYS}}
                if (message_id in adjudicated)
                else record
            )
            out.write(
                json.dumps({**final, "split": assign_split(message_id)}, ensure_ascii=False) + "\n"
            )
    (gold_dir / "agreement.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--gold-dir", type=Path, default=Path("data/gold"))
    build(parser.parse_args().gold_dir)
