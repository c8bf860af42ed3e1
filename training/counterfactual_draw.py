"""Targeted counterfactual batches (t-batches) for labelling agents, and their second pass.

`python -m training.counterfactual_draw draw` picks train parents of the scaled real-text set
for each edit of TARGETED_EDITS (seeded; `TARGETED_QUOTAS`), writes each batch's items with the
edit it asks for (`to_label/tNN.txt`) and its check questions from the real gold dev split
(`to_label/tNN.checks.txt`, answered in `counterfactual_checks/tNN.tsv`), and appends the keys.
`draw-pairs` draws the paired rounds not drawn yet (`PAIRED_EDITS`): for each passed edit of one
kind, the same parent again with its twin edit (a plain request beside each calm report, sincere
thanks beside each sarcastic one), so the model sees pairs that differ in the failure alone.
`second BATCH...` writes a blind second pass over a seeded sample of a batch's edits
(`to_label/tNN.second.txt`: the edited message in its thread, no labels, no parent);
`agreement` compares its answers (`counterfactual_second/tNN.tsv`) with the writer's labels and
writes `counterfactual_agreement.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.core.errors import BadInput
from training.counterfactual import (
    CHECKS_DIR,
    CHECKS_KEY,
    KEY_FILE,
    edit_batch_gates,
    edit_labels,
)
from training.gold import jsonl_records
from training.real_gold import REAL_GOLD_DIR, real_pool
from training.real_scale import SCALE_DIR, retired_checks
from training.real_scale_draw import CHECKS_PER_BATCH, pick_checks, render_batch
from training.real_scale_labels import IncompleteAnswers, agreement, parse_answers, read_key
from training.sources import DEFAULT_MIRROR
from training.text_patch import apply_patch, parent_text

__all__ = [
    "PAIRED_EDITS",
    "TARGETED_QUOTAS",
    "draw_edit_batches",
    "draw_paired_batches",
    "second_pass_agreement",
    "write_second_pass",
]

SEED = 2028
#: Parents per targeted edit, in drawing order (a parent gets one targeted edit).
TARGETED_QUOTAS: Mapping[str, int] = {"polite_report": 400, "sarcastic": 360, "repeated": 200}
EDIT_BATCH_SIZE = 160
#: Paired rounds: twin edit -> the edit whose passed parents it is drawn for (a plain request
#: beside each calm report, sincere thanks beside each sarcastic one), in drawing order.
PAIRED_EDITS: Mapping[str, str] = {
    "plain_request": "polite_report",
    "sincere_thanks": "sarcastic",
}
#: Paired batches are smaller, so more labellers share them.
PAIRED_BATCH_SIZE = 82
#: Parents longer than a tweet take a labeller far longer to edit minimally; they are left out.
MAX_PARENT_CHARS = 280
SECOND_PASS_ITEMS = 20
SECOND_KEY = "counterfactual_second_key.jsonl"
SECOND_DIR = "counterfactual_second"
AGREEMENT_FILE = "counterfactual_agreement.json"


def _eligible(labelled: pd.DataFrame, edit: str) -> pd.Series:
    """Parents an edit makes sense for: a complaint to calm down, to make sarcastic, or (calm
    already) to tell again."""
    complaint = labelled["complaint"] == 1
    if edit == "polite_report":
        return complaint & (labelled["frustration"] == 1)
    if edit == "sarcastic":
        return complaint & (labelled["frustration_level"] != "strong")
    return complaint & (labelled["frustration"] == 0)


def render_edit_batch(rows: pd.DataFrame) -> str:
    """Like `render_batch`, with the edit each item asks for above its MESSAGE line."""
    blocks = render_batch(rows).rstrip("\n").split("\n\n")
    out = []
    for block, edit in zip(blocks, rows["edit"], strict=True):
        head, message = block.rsplit("\nMESSAGE: ", 1)
        out.append(f"{head}\nEDIT: {edit}\nMESSAGE: {message}")
    return "\n\n".join(out) + "\n"


def _append(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def _gold_dev_with_text(root: Path, pool: pd.DataFrame, real_gold_dir: Path) -> pd.DataFrame:
    """Real gold dev rows a check question may come from: not retired, not asked before."""
    path = root / CHECKS_KEY
    asked = {str(r["id"]) for _, r in jsonl_records(path)} if path.is_file() else set()
    retired = {i for i, _ in retired_checks(root)} | asked
    gold = pd.DataFrame([r for _, r in jsonl_records(real_gold_dir / "real_gold.jsonl")])
    dev = gold[(gold["split"] == "dev") & ~gold["id"].isin(retired)]
    return dev.merge(pool[["id", "history", "text"]], on="id", how="inner")


def _write_batches(
    root: Path,
    parents: pd.DataFrame,
    dev: pd.DataFrame,
    rng: np.random.Generator,
    *,
    first: int,
    size: int,
) -> list[str]:
    """Write batches t<first>.. of `parents` (id, edit, history, text), `size` items each,
    with their check questions; append their keys. Returns the batch names."""
    out = root / "to_label"
    out.mkdir(parents=True, exist_ok=True)
    names, keys, check_keys = [], [], []
    for k, start in enumerate(range(0, len(parents), size), first):
        name = f"t{k:02d}"
        part = parents.iloc[start : start + size]
        checks = pick_checks(dev, CHECKS_PER_BATCH, rng)
        (out / f"{name}.txt").write_text(render_edit_batch(part), encoding="utf-8")
        (out / f"{name}.checks.txt").write_text(render_batch(checks), encoding="utf-8")
        keys += [
            {"batch": name, "item": n, "id": i, "edit": e}
            for n, (i, e) in enumerate(zip(part["id"], part["edit"], strict=True), 1)
        ]
        check_keys += [{"batch": name, "item": n, "id": i} for n, i in enumerate(checks["id"], 1)]
        names.append(name)
    _append(root / KEY_FILE, keys)
    _append(root / CHECKS_KEY, check_keys)
    return names


def draw_edit_batches(root: Path, pool: pd.DataFrame, real_gold_dir: Path) -> list[str]:
    """Write the t-batches and their check questions; append their keys. Returns batch names."""
    if (root / CHECKS_KEY).is_file():
        raise BadInput(f"{root / CHECKS_KEY} exists: the targeted batches were drawn already")
    rng = np.random.default_rng(SEED)
    labelled = pd.DataFrame([r for _, r in jsonl_records(root / "labelled.jsonl")])
    texts = pool.drop_duplicates("id").set_index("id")[["history", "text"]]
    labelled = labelled[(labelled["split"] == "train") & labelled["id"].isin(texts.index)]
    short = labelled["id"].map(texts["text"].str.len()) <= MAX_PARENT_CHARS
    labelled = labelled[short]
    parts, used = [], set()
    for edit, quota in TARGETED_QUOTAS.items():
        options = labelled[_eligible(labelled, edit) & ~labelled["id"].isin(used)]
        chosen = options.iloc[rng.permutation(len(options))[:quota]].assign(edit=edit)
        used |= set(chosen["id"])
        parts.append(chosen)
    parents = pd.concat(parts)
    parents = parents.iloc[rng.permutation(len(parents))].reset_index(drop=True)
    parents = parents.join(texts, on="id")
    dev = _gold_dev_with_text(root, pool, real_gold_dir)
    return _write_batches(root, parents, dev, rng, first=1, size=EDIT_BATCH_SIZE)


def draw_paired_batches(root: Path, pool: pd.DataFrame, real_gold_dir: Path) -> list[str]:
    """Write the paired rounds not drawn yet: for each PAIRED_EDITS twin, batches (after the
    last one) asking it of the parents of the passed edits of its first kind, seeded per twin
    so each round draws the same whatever came before. Returns the batch names."""
    keys = read_key(root, KEY_FILE)
    drawn = {k.get("edit") for items in keys.values() for k in items}
    todo = [twin for twin in PAIRED_EDITS if twin not in drawn]
    gates = edit_batch_gates(root, real_gold_dir)
    texts = pool.drop_duplicates("id").set_index("id")[["history", "text"]]
    names: list[str] = []
    for twin in todo:
        rng = np.random.default_rng(SEED + 1 + list(PAIRED_EDITS).index(twin))
        ids = sorted(
            str(keys[batch][int(r["item"]) - 1]["id"])
            for batch, gate in gates.items()
            if gate["status"] == "passed"
            for r in _edits(root, batch).values()
            if r.get("edit") == PAIRED_EDITS[twin]
        )
        parents = pd.DataFrame({"id": ids, "edit": twin})
        parents = parents.iloc[rng.permutation(len(parents))].reset_index(drop=True)
        parents = parents.join(texts, on="id")
        dev = _gold_dev_with_text(root, pool, real_gold_dir)
        last = max(int(b[1:]) for b in [*keys, *names])
        names += _write_batches(root, parents, dev, rng, first=last + 1, size=PAIRED_BATCH_SIZE)
    if not names:
        raise BadInput("no paired edits left to draw: drawn before, or no passed parents")
    return names


def _edits(root: Path, batch: str) -> dict[int, dict[str, Any]]:
    path = root / "counterfactual_edits" / f"{batch}.jsonl"
    if not path.is_file():
        raise BadInput(f"no patched edits for {batch} ({path}); run --patch-counterfactuals")
    return {int(r["item"]): r for _, r in jsonl_records(path)}


def write_second_pass(root: Path, pool: pd.DataFrame, batches: list[str]) -> list[Path]:
    """A blind second pass over SECOND_PASS_ITEMS seeded edits of each batch: the edited
    message in its parent's thread, numbered afresh. Returns the files written."""
    parents = {(r["batch"], r["item"]): str(r["id"]) for _, r in jsonl_records(root / KEY_FILE)}
    texts = pool.drop_duplicates("id").set_index("id")[["history", "text"]]
    written, keys = [], []
    for batch in batches:
        edits = _edits(root, batch)
        rng = np.random.default_rng([SEED, int(batch[1:])])
        items = sorted(
            rng.choice(sorted(edits), size=min(SECOND_PASS_ITEMS, len(edits)), replace=False)
        )
        rows = []
        for item in items:
            parent = texts.loc[parents[(batch, item)]]
            where = f"{batch} item {item}"
            text = apply_patch(parent_text(parent["text"]), edits[item]["patch"], where)
            rows.append({"history": parent["history"], "text": text})
        path = root / "to_label" / f"{batch}.second.txt"
        path.write_text(render_batch(pd.DataFrame(rows)), encoding="utf-8")
        keys += [{"batch": batch, "item": n, "edit_item": int(i)} for n, i in enumerate(items, 1)]
        written.append(path)
    _append(root / SECOND_KEY, keys)
    return written


def second_pass_agreement(root: Path) -> dict[str, Any]:
    """Agreement of the second pass with the edit writers' labels, per batch, per round (the
    targeted round, and the paired round whose edits are nearly all one class, so that
    pooling them would inflate kappa) and overall."""
    report: dict[str, Any] = {"batches": {}, "rounds": {}}
    paired = {
        batch
        for batch, keys in read_key(root, KEY_FILE).items()
        if {k.get("edit") for k in keys} <= set(PAIRED_EDITS)
    }
    rounds: dict[str, list[Any]] = {}
    for batch, items in sorted(read_key(root, SECOND_KEY).items()):
        try:
            answers = parse_answers(root / SECOND_DIR / f"{batch}.tsv", len(items))
        except (IncompleteAnswers, FileNotFoundError):
            report["batches"][batch] = "pending"
            continue
        edits = _edits(root, batch)
        pairs = [
            (edit_labels(edits[i], f"{batch} item {i}"), answers[k["item"]])
            for k in items
            for i in [k["edit_item"]]
        ]
        rounds.setdefault("paired" if batch in paired else "targeted", []).extend(pairs)
        report["batches"][batch] = agreement(pairs)
    report["rounds"] = {name: agreement(pairs) for name, pairs in rounds.items()}
    every = [pair for pairs in rounds.values() for pair in pairs]
    report["all"] = agreement(every) if every else {}
    (root / AGREEMENT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def check_batch(root: Path, pool: pd.DataFrame, batch: str) -> list[str]:
    """Every problem of a t-batch's edit lines and check answers, for the writer to fix."""
    keys = read_key(root, KEY_FILE).get(batch, [])
    if not keys:
        raise BadInput(f"no batch {batch!r} in {root / KEY_FILE}")
    texts = pool.drop_duplicates("id").set_index("id")["text"]
    problems, seen = [], set()
    path = root / "counterfactual" / f"{batch}.jsonl"
    lines = jsonl_records(path) if path.is_file() else []
    for where, record in lines:
        item = record.get("item")
        if not isinstance(item, int) or not 1 <= item <= len(keys):
            problems.append(f"{where}: item must be 1..{len(keys)}")
            continue
        if item in seen:
            problems.append(f"{where}: item {item} answered twice")
        seen.add(item)
        key = keys[item - 1]
        if record.get("edit") != key["edit"]:
            problems.append(f"{where}: item {item} asks for the edit {key['edit']!r}")
        text = " ".join(str(record.get("text", "")).split())
        if not text or text == parent_text(texts[key["id"]]):
            problems.append(f"{where}: the text must be the edited message")
        try:
            edit_labels(record, where)
        except BadInput as exc:
            problems.append(str(exc))
    missing = sorted(set(range(1, len(keys) + 1)) - seen)
    if missing:
        problems.append(
            f"{path}: items not answered yet: {missing[:10]}{' ...' * (len(missing) > 10)}"
        )
    checks = read_key(root, CHECKS_KEY).get(batch, [])
    try:
        parse_answers(root / CHECKS_DIR / f"{batch}.tsv", len(checks))
    except FileNotFoundError:
        problems.append(f"{root / CHECKS_DIR}/{batch}.tsv: the check questions are not answered")
    except BadInput as exc:
        problems.append(str(exc))
    return problems


def pool_of(args: argparse.Namespace) -> pd.DataFrame:
    return real_pool(args.mirror)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("draw", "draw-pairs", "check", "second", "agreement"))
    parser.add_argument("batches", nargs="*", help="for check and second: the batches")
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--root", type=Path, default=SCALE_DIR)
    args = parser.parse_args()
    try:
        if args.command == "draw":
            names = draw_edit_batches(args.root, pool_of(args), REAL_GOLD_DIR)
            print(f"wrote {len(names)} targeted batches in {args.root / 'to_label'}: {names}")
        elif args.command == "draw-pairs":
            names = draw_paired_batches(args.root, pool_of(args), REAL_GOLD_DIR)
            print(f"wrote {len(names)} paired batches in {args.root / 'to_label'}: {names}")
        elif args.command == "check":
            problems = [p for b in args.batches for p in check_batch(args.root, pool_of(args), b)]
            print("\n".join(problems) or "ok")
            raise SystemExit(1 if problems else 0)
        elif args.command == "second":
            paths = write_second_pass(args.root, pool_of(args), args.batches)
            print(f"wrote {len(paths)} second-pass batches")
        else:
            print(json.dumps(second_pass_agreement(args.root)["all"], indent=2))
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
