"""Reviews of the scaled labelling: contested check questions, and the second pass's disputes.

Crowdsourcing platforms review a test question that most contributors miss, because a wrong or
ambiguous gold answer fails good work. Here:

1. `python -m training.real_scale_checks contested` counts, over every answer file (passed and
   rejected attempts alike), how often the labellers' answer to each hidden check question
   differs from the gold label, per head. A (question, head) missed by more than
   CONTEST_SHARE of at least CONTEST_MIN_SEEN attempts is contested. It writes the review batch
   `to_label/review.txt` (git-ignored: raw text) and `review_key.jsonl` (ids only). Each item
   shows the thread, the message and two answers for one head, A and B, in seeded random order:
   the reviewer is never told which is the gold label.
2. Two reviewers answer `review/r1.tsv` and `review/r2.tsv`, one line per item:
   `item  A|B|undecided  reason` (the reason names the guide's rule).
3. `python -m training.real_scale_checks review` writes `check_review.jsonl`: a (question, head)
   is retired from the check gate only when neither reviewer picks the gold answer. The gold dev
   label itself is not changed (old reports stay comparable); the file lists it as disputed.

`training.real_scale` drops the retired (question, head) pairs from every batch's gate.

`python -m training.real_scale_checks disputes` writes `to_label/adjudicate.txt`: each
second-pass disagreement not yet in `adjudication.jsonl`, with both answer lines, for the
adjudicator.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.core.errors import BadInput
from training.gold import jsonl_records, write_jsonl_records
from training.real_gold import REAL_GOLD_DIR
from training.real_scale import REVIEW_FILE, SCALE_DIR, gate, gold_dev
from training.real_scale_draw import thread_block
from training.real_scale_labels import AGREEMENT_KEYS, HEAD_KEYS, parse_answers, read_key
from training.sources import DEFAULT_MIRROR

__all__ = [
    "CONTEST_MIN_SEEN",
    "CONTEST_SHARE",
    "contested",
    "review",
]

#: A check is contested when more than this share of its attempts disagree with gold ...
CONTEST_SHARE = 0.5
#: ... over at least this many attempts.
CONTEST_MIN_SEEN = 3
VERDICTS = ("A", "B", "undecided")
_QUESTIONS = {
    "frustration": "Is the customer frustrated (mild or strong)?",
    "boredom": "Is the customer disengaged (boredom)?",
    "complaint": "Is this message a complaint?",
    "legitimacy": "This is a complaint. Is it legitimate?",
}


def answer_files(root: Path) -> list[Path]:
    """Every labelling attempt: the batch files in use and the rejected ones."""
    labels = root / "labels"
    return sorted(labels.glob("*.tsv")) + sorted((labels / "rejected").glob("*.tsv"))


def check_answers(root: Path, gold: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (attempt, check question, head): the labeller's answer and the gold label.
    Legitimacy counts only where both call the message a complaint."""
    key = read_key(root)
    rows = []
    for path in answer_files(root):
        batch = path.name.split(".")[0]
        answers = parse_answers(path, len(key[batch]))
        for item in (k for k in key[batch] if k["check"]):
            answer, truth = answers[item["item"]], gold[str(item["id"])]
            for head in HEAD_KEYS:
                if head == "legitimacy" and not answer["complaint"] == truth["complaint"] == 1:
                    continue
                rows.append(
                    {
                        "attempt": path.name,
                        "id": str(item["id"]),
                        "head": head,
                        "answer": int(answer[head]),  # type: ignore[call-overload]
                        "gold": int(truth[head]),
                    }
                )
    return pd.DataFrame(rows)


def contested(
    answers: pd.DataFrame,
    *,
    min_seen: int = CONTEST_MIN_SEEN,
    share: float = CONTEST_SHARE,
) -> pd.DataFrame:
    """(id, head, gold, seen, missed) of every contested check, most missed first.

    answers: rows of `check_answers`, shape (n, 5)."""
    if answers.empty:
        return pd.DataFrame(columns=["id", "head", "gold", "seen", "missed"])
    grouped = answers.assign(missed=answers["answer"] != answers["gold"]).groupby(["id", "head"])
    table = grouped.agg(gold=("gold", "first"), seen=("answer", "size"), missed=("missed", "sum"))
    table = table.reset_index()
    picked = table[(table["seen"] >= min_seen) & (table["missed"] > share * table["seen"])]
    return picked.sort_values(["missed", "id", "head"], ascending=[False, True, True]).reset_index(
        drop=True
    )


def write_review_batch(table: pd.DataFrame, pool: pd.DataFrame, root: Path, seed: int) -> None:
    """`to_label/review.txt` for the reviewers and `review_key.jsonl` (which option is gold).
    Refuses to replace a key the reviewers' files already answer: the review runs once, at a
    fixed point, and later attempts would change which checks are contested."""
    if (root / "review_key.jsonl").exists() and any((root / "review").glob("r*.tsv")):
        raise BadInput(
            f"{root / 'review_key.jsonl'} exists and reviewers answered it; "
            "to review again, move it and the review folder aside first"
        )

    rng = np.random.default_rng(seed)
    blocks, keys = [], []
    for n, row in enumerate(table.itertuples(), 1):
        gold_is_a = bool(rng.integers(2))
        a, b = (row.gold, 1 - row.gold) if gold_is_a else (1 - row.gold, row.gold)
        question = _QUESTIONS[str(row.head)]
        blocks.append(
            f"=== {n} ===\n{thread_block(pool, str(row.id))}\nQUESTION: {question}\n"
            f"  A: {'yes' if a else 'no'}\n  B: {'yes' if b else 'no'}"
        )
        keys.append(
            {
                "item": n,
                "id": row.id,
                "head": row.head,
                "gold": int(row.gold),
                "gold_option": "A" if gold_is_a else "B",
                "seen": int(row.seen),
                "missed": int(row.missed),
            }
        )
    (root / "to_label").mkdir(parents=True, exist_ok=True)
    (root / "to_label" / "review.txt").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    write_jsonl_records(root / "review_key.jsonl", keys)


def parse_review(path: Path, items: int) -> dict[int, tuple[str, str]]:
    """(verdict, reason) per item of one reviewer's file; every item once, each with a reason."""
    verdicts: dict[int, tuple[str, str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        where = f"{path}:{n}"
        if len(fields) < 3 or not fields[2]:
            raise BadInput(f"{where}: needs `item<TAB>A|B|undecided<TAB>reason`")
        if not fields[0].isdigit() or not 1 <= int(fields[0]) <= items:
            raise BadInput(f"{where}: item must be a number from 1 to {items}")
        if fields[1] not in VERDICTS:
            raise BadInput(f"{where}: verdict must be one of {VERDICTS}, got {fields[1]!r}")
        if int(fields[0]) in verdicts:
            raise BadInput(f"{where}: item {fields[0]} answered twice")
        verdicts[int(fields[0])] = (fields[1], "\t".join(fields[2:]))
    missing = sorted(set(range(1, items + 1)) - set(verdicts))
    if missing:
        raise BadInput(f"{path}: items missing {missing[:20]}")
    return verdicts


def review(root: Path) -> list[dict[str, Any]]:
    """Join both reviewers to the key and write `check_review.jsonl`; a check is retired when
    neither reviewer picks its gold answer."""
    key = [r for _, r in jsonl_records(root / "review_key.jsonl")]
    files = sorted((root / "review").glob("r*.tsv"))
    if len(files) < 2:
        raise BadInput(f"{root / 'review'} needs two reviewers' files (r1.tsv, r2.tsv)")
    reviewers = [parse_review(path, len(key)) for path in files]
    records = []
    for entry in key:
        verdicts = [r[entry["item"]] for r in reviewers]
        records.append(
            {
                "id": entry["id"],
                "head": entry["head"],
                "gold": entry["gold"],
                "seen": entry["seen"],
                "missed": entry["missed"],
                "verdicts": [
                    "gold" if v == entry["gold_option"] else "other" if v != "undecided" else v
                    for v, _ in verdicts
                ],
                "reasons": [reason for _, reason in verdicts],
                "retired": all(v != entry["gold_option"] for v, _ in verdicts),
            }
        )
    write_jsonl_records(root / REVIEW_FILE, records)
    return records


def write_adjudication_batch(root: Path, pool: pd.DataFrame) -> int:
    """`to_label/adjudicate.txt`: every second-pass disagreement not yet adjudicated, with its
    thread and both labellers' answer lines (the guide's adjudicator reads both)."""

    gated = gate(root)
    done = {str(r["id"]) for _, r in jsonl_records(root / "adjudication.jsonl")}
    open_ids = [
        i
        for i in sorted(gated.second)
        if i in gated.first
        and i not in done
        and any(gated.first[i][k] != gated.second[i][k] for k in AGREEMENT_KEYS)
    ]
    blocks = []
    for i in open_ids:
        blocks.append(
            f"=== {i} ===\n{thread_block(pool, i)}\n"
            + "\n".join(
                f"  {name}: {_answer_line(labels)}"
                for name, labels in (("first", gated.first[i]), ("second", gated.second[i]))
            )
        )
    (root / "to_label").mkdir(parents=True, exist_ok=True)
    (root / "to_label" / "adjudicate.txt").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return len(open_ids)


def _answer_line(labels: dict[str, Any]) -> str:
    legitimacy = "-" if labels["legitimacy"] is None else str(labels["legitimacy"])
    tags = ",".join(labels["tags"]) or "-"
    return "\t".join(
        [
            str(labels["frustration_level"]),
            str(labels["boredom"]),
            str(labels["complaint"]),
            legitimacy,
            str(labels["route"]),
            tags,
            str(labels["note"]),
        ]
    )


def main() -> None:
    from training.real_gold import real_pool

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["contested", "review", "disputes"])
    parser.add_argument("--root", type=Path, default=SCALE_DIR)
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--seed", type=int, default=2028)
    args = parser.parse_args()
    try:
        if args.command == "contested":
            answers = check_answers(args.root, gold_dev(REAL_GOLD_DIR))
            table = contested(answers)
            write_review_batch(table, real_pool(args.mirror), args.root, args.seed)
            per_head = Counter(table["head"])
            pairs = answers[["id", "head"]].drop_duplicates().shape[0]
            print(
                f"{len(table)} contested checks of {pairs} (question, head) pairs over "
                f"{answers['attempt'].nunique()} attempts: "
                f"{dict(per_head)}; review batch in {args.root / 'to_label' / 'review.txt'}"
            )
        elif args.command == "disputes":
            n = write_adjudication_batch(args.root, real_pool(args.mirror))
            print(f"{n} second-pass disagreements to adjudicate in {args.root / 'to_label'}")
        else:
            records = review(args.root)
            retired = Counter(r["head"] for r in records if r["retired"])
            print(f"{sum(retired.values())} of {len(records)} contested checks retired: ", end="")
            print(dict(retired))
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
