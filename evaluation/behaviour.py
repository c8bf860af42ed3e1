"""Behaviour tests (CheckList: Ribeiro et al., ACL 2020) for a released model folder.

`python -m evaluation.behaviour MODEL` scores the suite in `behaviour_cases.toml` with the serving
scorer and prints the pass rate of each group and overall; `--json` writes the report. Three
kinds of check, as CheckList defines them:

- minimum functionality: a message (with its thread) lands on the stated side of each head's
  threshold in force;
- invariance: two versions of one message that differ only in tone, a reference number, a name
  or typos get the same decision on the listed heads;
- direction: an added clause moves a head the stated way.

Decisions use the thresholds in force (`serving.core.decision.decide.rules_in_force` under
the default policy), the ones the API applies.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.core.contract import HEADS
from serving.core.decision.decide import rules_in_force
from serving.core.decision.route_policy import load_policy
from serving.core.errors import BadInput, HelpdeskError
from serving.core.files import read_toml
from serving.core.schemas import HISTORY, role_turns
from serving.core.scorer import Scorer
from serving.core.text import context_text

__all__ = ["CASES_FILE", "Check", "behaviour_report", "load_checks", "run_checks"]

CASES_FILE = Path(__file__).with_name("behaviour_cases.toml")
#: A direction check passes when the head moves at least this far the stated way, or is
#: already within it of the end it moves to.
DIRECTION_STEP = 0.02


@dataclass(frozen=True)
class Check:
    """One check: `kind` mft / inv / dir; texts and contexts of the one or two messages it
    scores; `expect` per head (mft: above the threshold or not; inv: heads that must agree;
    dir: {head: True for up, False for down})."""

    kind: str
    group: str
    texts: tuple[str, ...]
    contexts: tuple[str, ...]
    expect: Mapping[str, bool]


def _context(history: object) -> str:
    return context_text(role_turns(HISTORY.validate_python(history or [])))


def _mft(block: Mapping[str, Any]) -> list[Check]:
    expect = {h: bool(v) for h, v in block["expect"].items()}
    cases = [{"text": t} for t in block.get("texts", [])] + list(block.get("cases", []))
    return [
        Check("mft", block["group"], (c["text"],), (_context(c.get("history")),), expect)
        for c in cases
    ]


def _inv(block: Mapping[str, Any]) -> list[Check]:
    heads = {h: True for h in block["heads"]}
    if "pairs" in block:  # whole messages, as written
        pairs = [tuple(p) for p in block["pairs"]]
    else:  # each template filled with every `a` and every `b`
        pairs = [
            (template.format(slot=a), template.format(slot=b))
            for template in block["templates"]
            for a in block["a"]
            for b in block["b"]
        ]
    return [Check("inv", block["group"], (a, b), ("", ""), heads) for a, b in pairs]


def _dir(block: Mapping[str, Any]) -> list[Check]:
    up = block["direction"] == "up"
    checks = []
    for base in block["bases"]:
        changed = block.get("prefix", "") + base + block.get("suffix", "")
        checks.append(Check("dir", block["group"], (base, changed), ("", ""), {block["head"]: up}))
    return checks


def load_checks(path: Path = CASES_FILE) -> list[Check]:
    """Every check of a cases file; a malformed block is a BadInput naming the file."""
    raw = read_toml(path, "behaviour cases")
    try:
        checks = [
            *(c for block in raw.get("mft", []) for c in _mft(block)),
            *(c for block in raw.get("inv", []) for c in _inv(block)),
            *(c for block in raw.get("dir", []) for c in _dir(block)),
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"{path}: malformed behaviour case ({exc})") from None
    unknown = {h for c in checks for h in c.expect} - set(HEADS)
    if unknown:
        raise BadInput(f"{path}: unknown heads {sorted(unknown)}")
    return checks


def run_checks(
    checks: Sequence[Check], probs: Sequence[np.ndarray], thresholds: Mapping[str, float]
) -> list[bool]:
    """Pass or fail per check. probs[i] is (len(checks[i].texts), len(HEADS)) calibrated
    probabilities; thresholds are the ones in force, by head."""
    if len(checks) != len(probs):
        raise ValueError(f"{len(checks)} checks but {len(probs)} score arrays")
    results = []
    for check, scores in zip(checks, probs, strict=True):
        col = {h: HEADS.index(h) for h in check.expect}
        if check.kind == "mft":
            ok = all(
                (scores[0, col[h]] >= thresholds[h]) == want for h, want in check.expect.items()
            )
        elif check.kind == "inv":
            ok = all(
                (scores[0, col[h]] >= thresholds[h]) == (scores[1, col[h]] >= thresholds[h])
                for h in check.expect
            )
        else:
            ((head, up),) = check.expect.items()
            before, after = scores[0, col[head]], scores[1, col[head]]
            ok = (
                bool(after >= before + DIRECTION_STEP or after >= 1 - DIRECTION_STEP)
                if up
                else bool(after <= before - DIRECTION_STEP or after <= DIRECTION_STEP)
            )
        results.append(bool(ok))
    return results


@dataclass(frozen=True)
class GroupResult:
    kind: str
    group: str
    checks: int
    passed: int

    @property
    def rate(self) -> float:
        return self.passed / self.checks if self.checks else float("nan")


def behaviour_report(scorer: Scorer, checks: Sequence[Check] | None = None) -> dict[str, Any]:
    """Pass rates per group and overall for `scorer` (a loaded model folder), and the failed
    checks with their scores, for the evaluate report and the model card."""
    checks = list(checks) if checks is not None else load_checks()
    texts = [t for c in checks for t in c.texts]
    contexts = [x for c in checks for x in c.contexts]
    flat = scorer.probabilities(texts, contexts=contexts)
    probs, offset = [], 0
    for check in checks:
        probs.append(flat[offset : offset + len(check.texts)])
        offset += len(check.texts)
    thresholds = rules_in_force(scorer.manifest, load_policy()).thresholds
    passed = run_checks(checks, probs, thresholds)
    groups: dict[tuple[str, str], list[bool]] = {}
    for check, ok in zip(checks, passed, strict=True):
        groups.setdefault((check.kind, check.group), []).append(ok)
    return {
        "model": f"{scorer.manifest.name} {scorer.manifest.version}",
        "checks": len(checks),
        "pass_rate": float(np.mean(passed)) if passed else float("nan"),
        "groups": [
            {**asdict(result), "rate": result.rate}
            for result in (GroupResult(k, g, len(v), sum(v)) for (k, g), v in groups.items())
        ],
        "failed": [
            {
                "group": c.group,
                "texts": list(c.texts),
                "scores": [[round(float(x), 4) for x in row] for row in p],
            }
            for c, p, ok in zip(checks, probs, passed, strict=True)
            if not ok
        ],
    }


def format_report(report: Mapping[str, Any]) -> str:
    lines = [f"behaviour: {report['model']}", f"{'kind':<5} {'group':<44} {'pass':>9}"]
    for g in report["groups"]:
        lines.append(
            f"{g['kind']:<5} {g['group']:<44} {g['passed']:>3}/{g['checks']:<3} {g['rate']:.0%}"
        )
    lines.append(f"overall: {report['pass_rate']:.1%} of {report['checks']} checks")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a released model folder")
    parser.add_argument("--json", type=Path, default=None, help="write the report here too")
    args = parser.parse_args(argv)
    try:
        report = behaviour_report(Scorer.load(args.model))
    except HelpdeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(format_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
