"""The scaled real-text set: labellers' answers joined to the draw, gated, agreed and split.

`python -m training.real_scale build` reads `data/real_scale/` (drawn.jsonl, key.jsonl, the
labellers' `labels/*.tsv`, `adjudication.jsonl`, `counterfactual_edits/*.jsonl`) and writes
`labelled.jsonl` (ids and labels, no text), `counterfactual.jsonl` and `agreement.json`.
It is deterministic: the same files give the same bytes, so `prepare` can trust the committed
output and a test can rebuild it.

- A first-pass batch counts only when every item is answered and its hidden check questions
  agree with the adjudicated real gold dev labels at Cohen's kappa >= CHECK_KAPPA on every head
  (a head whose checks are all one class counts as agreeing when every check matches); a batch
  that fails is listed for relabelling and none of its rows is used.
- The second pass gives kappa per head; every disagreement needs an adjudication line with
  its reason, and the adjudicated labels replace the first pass.
- Splits are by thread (`scale_split`), so no thread sits in two splits.
- Counterfactual rows are synthetic: marked so, keyed by their real parent, train only.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.core.errors import BadInput
from serving.core.files import sha256_file
from training.counterfactual import counterfactual_rows, edit_batch_gates
from training.dataset_rules import REAL_SCALE_SALT, REAL_SCALE_SPLITS, hash_split
from training.gold import LABEL_KEYS, jsonl_records, write_jsonl_records
from training.real_gold import REAL_GOLD_DIR, ROUTES
from training.real_scale_labels import (
    AGREEMENT_KEYS,
    CHECK_KAPPA,
    HEAD_KEYS,
    TAGS,
    IncompleteAnswers,
    agreement,
    gold_dev,
    parse_answers,
    parse_line,
    passes_checks,
    policy_route,
    read_key,
)

__all__ = [
    "CHECK_KAPPA",
    "REVIEW_FILE",
    "SCALE_DIR",
    "build",
    "held_back_threads",
    "retired_checks",
    "scale_split",
]

SCALE_DIR = Path("data/real_scale")
#: The contested-check review's verdicts (training/real_scale_checks.py writes it).
REVIEW_FILE = "check_review.jsonl"


def scale_split(thread_id: str) -> str:
    """train, dev or test for a thread of the scaled set (a salted hash of the thread id)."""
    return hash_split(thread_id, REAL_SCALE_SALT, REAL_SCALE_SPLITS)


def held_back_threads(real_gold_dir: Path = REAL_GOLD_DIR, root: Path = SCALE_DIR) -> set[str]:
    """Threads of every labelled dev or test message, old real gold and scaled set: text that
    no training step (fine-tuning, domain adaptation, distillation) may read."""
    threads = set()
    for _, record in jsonl_records(real_gold_dir / "real_gold.jsonl"):
        threads.add(str(record["thread_id"]))
    drawn = root / "drawn.jsonl"
    if drawn.is_file():
        for _, record in jsonl_records(drawn):
            if scale_split(str(record["thread_id"])) != "train":
                threads.add(str(record["thread_id"]))
    return threads


def retired_checks(root: Path) -> set[tuple[str, str]]:
    """(check id, head) pairs the review retired from the gate; empty before any review."""
    path = root / REVIEW_FILE
    if not path.is_file():
        return set()
    return {(str(r["id"]), str(r["head"])) for _, r in jsonl_records(path) if r["retired"]}


def _answered(root: Path, batch: str, key: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The batch's answers when its file answers every item; {} while it is not complete."""
    path = root / "labels" / f"{batch}.tsv"
    if not path.is_file():
        return {}
    try:
        return parse_answers(path, len(key))
    except IncompleteAnswers:
        return {}


def _adjudications(root: Path, first: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Adjudicated labels by id: a JSON line {id, line, reason}, `line` in the labellers'
    format without the item number."""
    path = root / "adjudication.jsonl"
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return out
    for where, record in jsonl_records(path):
        if str(record.get("id")) not in first:
            raise BadInput(f"{where}: id {record.get('id')!r} has no first-pass label")
        if not str(record.get("reason", "")).strip():
            raise BadInput(f"{where}: an adjudication needs its written reason")
        _, labels = parse_line(f"0\t{record['line']}", where)
        out[str(record["id"])] = {**labels, "note": f"adjudicated: {record['reason']}"}
    return out


@dataclass(frozen=True)
class Gated:
    """Answers of the batches that passed their check questions, by id, and each batch's gate."""

    first: dict[str, dict[str, Any]]
    second: dict[str, dict[str, Any]]
    gates: dict[str, dict[str, Any]]
    check_pairs: list[tuple[dict[str, Any], dict[str, Any]]]
    check_skips: list[frozenset[str]]


def gate(root: Path = SCALE_DIR, real_gold_dir: Path = REAL_GOLD_DIR) -> Gated:
    """Every complete batch checked against its hidden gold dev questions."""
    gold = gold_dev(real_gold_dir)
    retired = retired_checks(root)
    gated = Gated({}, {}, {}, [], [])
    for batch, key in sorted(read_key(root).items()):
        answers = _answered(root, batch, key)
        if not answers:
            gated.gates[batch] = {"status": "pending"}
            continue
        checks = [k for k in key if k["check"]]
        pairs = [(answers[k["item"]], gold[k["id"]]) for k in checks]
        skip = [frozenset(h for h in HEAD_KEYS if (k["id"], h) in retired) for k in checks]
        report = agreement(pairs, skip=skip)
        passed = passes_checks(report)
        gated.gates[batch] = {"status": "passed" if passed else "relabel", "checks": report}
        if not passed:
            continue
        gated.check_pairs.extend(pairs)
        gated.check_skips.extend(skip)
        target = gated.second if batch.startswith("s") else gated.first
        for k in key:
            if not k["check"]:
                target[str(k["id"])] = answers[k["item"]]
    return gated


def disagreements(gated: Gated) -> list[str]:
    """Ids whose first and second pass differ on any label (heads, level or route)."""
    both = sorted(i for i in gated.second if i in gated.first)
    return [i for i in both if any(gated.first[i][k] != gated.second[i][k] for k in AGREEMENT_KEYS)]


def build(root: Path = SCALE_DIR, real_gold_dir: Path = REAL_GOLD_DIR) -> dict[str, Any]:
    """Write labelled.jsonl, counterfactual.jsonl and agreement.json; return the report."""
    drawn = {str(r["id"]): r for _, r in jsonl_records(root / "drawn.jsonl")}
    gated = gate(root, real_gold_dir)
    first, second, gates, check_pairs = (
        gated.first,
        gated.second,
        gated.gates,
        gated.check_pairs,
    )
    adjudicated = _adjudications(root, first)
    both = sorted(i for i in second if i in first)
    disagree = disagreements(gated)
    missing = [i for i in disagree if i not in adjudicated]
    if missing:
        raise BadInput(f"{len(missing)} second-pass disagreements lack adjudication: {missing[:5]}")
    labelled: dict[str, dict[str, Any]] = {}
    for i in sorted(first, key=lambda x: (drawn[x]["batch"], x)):
        labels = adjudicated.get(i, first[i])
        meta = drawn[i]
        labelled[i] = {
            "id": i,
            "source": meta["source"],
            "thread_id": meta["thread_id"],
            "stratum": meta["stratum"],
            "split": scale_split(str(meta["thread_id"])),
            **{k: labels[k] for k in (*LABEL_KEYS, "route")},
            "tags": labels["tags"],
            "note": labels["note"],
            "second_pass": i in second,
            "adjudicated": i in adjudicated,
        }
    edit_gates = edit_batch_gates(root, real_gold_dir)
    counterfactual = counterfactual_rows(root, labelled, edit_gates)
    write_jsonl_records(root / "labelled.jsonl", labelled.values())
    write_jsonl_records(root / "counterfactual.jsonl", counterfactual)
    report = summary(list(labelled.values()), counterfactual)
    rejected = Counter(
        p.name.split(".")[0] for p in (root / "labels" / "rejected").glob("*.a?.tsv")
    )
    report.update(
        sha256={
            f"{name}.jsonl": sha256_file(root / f"{name}.jsonl")
            for name in ("labelled", "counterfactual")
        },
        batches={b: g["status"] for b, g in gates.items()},
        attempts={b: rejected[b] + (g["status"] != "pending") for b, g in gates.items()},
        check_questions=agreement(check_pairs, skip=gated.check_skips),
        edit_batches=edit_gates,
        retired_checks=len(retired_checks(root)),
        second_pass={
            "rows": len(both),
            "disagreements": len(disagree),
            "changed_by_adjudication": sum(
                any(first[i][k] != adjudicated[i][k] for k in AGREEMENT_KEYS)
                for i in disagree
                if i in adjudicated
            ),
            "per_label": agreement([(first[i], second[i]) for i in both]),
        },
    )
    (root / "agreement.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def summary(rows: list[dict[str, Any]], counterfactual: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts the dataset card shows: per split and stratum, rare classes, prevalence in the
    random stratum, tags and the counterfactual share."""
    random_rows = [r for r in rows if r["stratum"] == "random"]
    tags: Counter[str] = Counter(t for r in rows for t in r["tags"])
    return {
        "rows": len(rows),
        "by_split": dict(sorted(Counter(r["split"] for r in rows).items())),
        "by_stratum": dict(sorted(Counter(r["stratum"] for r in rows).items())),
        "by_source": dict(sorted(Counter(r["source"] for r in rows).items())),
        "rare": {
            "disengaged": sum(r["boredom"] == 1 for r in rows),
            "complaint_without_merit": sum(r["legitimacy"] == 0 for r in rows),
            "sarcastic": tags["sarcasm"],
            "mild_frustration": sum(r["frustration_level"] == "mild" for r in rows),
            "strong_frustration": sum(r["frustration_level"] == "strong" for r in rows),
        },
        "random_stratum_prevalence": {
            "rows": len(random_rows),
            **{
                h: sum(r[h] == 1 for r in random_rows) / max(len(random_rows), 1)
                for h in ("frustration", "boredom", "complaint")
            },
            "legitimate_among_complaints": sum(r["legitimacy"] == 1 for r in random_rows)
            / max(sum(r["complaint"] == 1 for r in random_rows), 1),
        },
        "routes": {route: sum(r["route"] == route for r in rows) for route in ROUTES},
        "policy_route_streaks": sum(r["route"] != policy_route(r) for r in rows),
        "tags": {t: tags[t] for t in TAGS},
        "counterfactual": {
            "rows": len(counterfactual),
            "share_of_train": len(counterfactual)
            / max(sum(r["split"] == "train" for r in rows) + len(counterfactual), 1),
            "by_edit": dict(sorted(Counter(r["edit"] for r in counterfactual).items())),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["build", "status"])
    parser.add_argument("--root", type=Path, default=SCALE_DIR)
    args = parser.parse_args()
    if args.command == "build":
        print(json.dumps(build(args.root), indent=2))
        return
    gated = gate(args.root)
    status = {b: g["status"] for b, g in gated.gates.items()}
    print(json.dumps({"batches": status, "disagreements": disagreements(gated)}, indent=2))


if __name__ == "__main__":
    main()
