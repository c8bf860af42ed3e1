"""The scaled real-text set's dataset card, written from its agreement report.

`python -m training.real_scale_card` renders `data/real_scale/DATASET_CARD.md` from
`agreement.json` (what `training.real_scale build` measured) and the process notes below, so every
number on the card is the build's.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from training.real_scale import CHECK_KAPPA, REVIEW_FILE, SCALE_DIR
from training.real_scale_checks import CONTEST_MIN_SEEN, CONTEST_SHARE

__all__ = ["render_card"]

TARGETS = {
    "disengaged": 400,
    "complaint_without_merit": 400,
    "sarcastic": 300,
    "mild_frustration": 1000,
    "strong_frustration": 1000,
}
LICENCES = (
    ("twcs_airlines, twcs_tweetsumm, twcs_samples", "CC BY-NC-SA 4.0 (TWCS): non-commercial"),
    ("twitter_cdp_ibm", "Apache-2.0"),
    ("cfpb_narratives", "US public data"),
)
#: What the labellers reported they could not decide (their closing reports, summarised).
UNDECIDED = (
    "which company `__company__` stands for when a rival is named by its own handle",
    "bystanders (other users) replying in a thread",
    "a flat thanks with one '!' ('Ok, thanks!'): flat acknowledgement or warm",
    "emoji-only replies (👌 as 'ok', 😍 as engaged)",
    "'still' in a troubleshooting answer or a flight status ('still on the runway'): "
    "repetition or a plain report",
    "fees that follow the customer's own lateness or mistake against a rule applied unhelpfully",
    "vague service grievances ('customer service sucks') against a named incident",
    "airport, security (TSA) and partner-airline staff: whose failure",
    "CFPB form letters: a debt-validation request is or is not a complaint; legal threats' heat",
    "soft threats to leave ('thinking of switching'): mild or strong",
)


def _kappa(row: dict[str, Any] | None) -> str:
    if not row:
        return "-"
    kappa = row.get("kappa")
    shown = "n/a" if kappa is None else f"{kappa:.3f}"
    return f"{shown} (agreement {row['agreement']:.3f}, n={row['n']})"


def _targeted_section(report: dict[str, Any]) -> list[str]:
    """The t-batches: targeted edits, their check questions' gate and the blind second pass."""
    gates = report.get("edit_batches", {})
    if not gates:
        return []
    rejected = SCALE_DIR / "counterfactual_checks" / "rejected"
    path = SCALE_DIR / "counterfactual_agreement.json"
    rounds = json.loads(path.read_text()).get("rounds", {}) if path.is_file() else {}
    return [
        "### Targeted edits (t-batches)",
        "",
        "Edits of what release 0.4.0 read wrong, each item asking for one (`data/LABELLING.md`,",
        "`python -m training.counterfactual_draw`): `polite_report` (a frustrated complaint",
        "told calmly, for the first time), `sarcastic` (the failure told as sarcastic thanks),",
        "`repeated` (a calm complaint told as asked before); then paired rounds",
        "(`draw-pairs`): from t07 `plain_request` (the same matter with nothing gone wrong)",
        "for every parent whose polite report passed, from t11 `sincere_thanks` (the same",
        "matter gone well, thanked sincerely) for every parent whose sarcastic edit passed, so",
        "each calm complaint and each sarcastic one has a twin without a complaint. Parents",
        "are train messages of at most 280 characters. Labelling agents wrote and labelled",
        "them; each batch carried 14",
        "check questions from the real gold dev split in a file of their own (so, unlike the",
        "scaled batches, the writer knew them), and its edits count only when those reach",
        f"kappa {CHECK_KAPPA} on every head; a batch that fails is written again from scratch",
        "by another agent (earlier check answers: `counterfactual_checks/rejected/`). Batches",
        "(attempts): "
        + ", ".join(
            f"{b} {g['status']} ({1 + len(list(rejected.glob(f'{b}.a*.tsv')))})"
            for b, g in sorted(gates.items())
        )
        + ".",
        "A blind second pass (another agent, the edited message in its thread, no labels)",
        "labelled 20 edits of each passed batch; kappa against the writer, by round (where a",
        "round's sample is all one class, kappa is n/a and the agreement is what it shows): "
        + (
            "; ".join(
                f"{name}: " + ", ".join(f"{k} {_kappa(v)}" for k, v in heads.items())
                for name, heads in sorted(rounds.items())
            )
            or "not run yet"
        )
        + ".",
        "",
    ]


def render_card(report: dict[str, Any]) -> str:
    """The card's markdown for one agreement report."""
    statuses = report["batches"]
    passed = sorted(b for b, s in statuses.items() if s == "passed")
    failed = sorted(b for b, s in statuses.items() if s != "passed")
    lines = [
        "# Dataset card: the scaled real-text set (data/real_scale/)",
        "",
        "Written by `python -m training.real_scale_card` from `agreement.json`, which",
        "`python -m training.real_scale build` writes; `prepare` joins the text from the",
        "checksum-verified mirror by id (no message text is committed).",
        "",
        "**Labellers are labelling agents** (language-model agents working from",
        "`data/LABELLING.md`), for the first pass, the independent second pass, the relabels and",
        "the adjudication. They saw each message's text and thread only, never a model score,",
        "and never which items were check questions.",
        "",
        "## Rows",
        "",
        f"Labelled real messages: **{report['rows']}** (one per thread), from "
        f"{len(passed)} batches that passed their check questions; "
        f"{len(failed)} batches are not in the set: {', '.join(failed) or 'none'}.",
        "",
        "| split | rows |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in report["by_split"].items()),
        "",
        "| stratum (why it was drawn, never a label) | rows |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in report["by_stratum"].items()),
        "",
        "| source | rows | licence |",
        "|---|---|---|",
    ]
    licence = {name: lic for names, lic in LICENCES for name in names.split(", ")}
    lines += [f"| {k} | {v} | {licence.get(k, '')} |" for k, v in report["by_source"].items()]
    lines += [
        "",
        "TWCS-derived rows are CC BY-NC-SA 4.0: a model trained on them is for research and",
        "evaluation, not a commercial release.",
        "",
        "## Rare classes (all splits) against the issue's targets",
        "",
        "| class | rows | target | met |",
        "|---|---|---|---|",
        *(
            f"| {k} | {v} | {TARGETS[k]} | {'yes' if v >= TARGETS[k] else 'no'} |"
            for k, v in report["rare"].items()
        ),
        "",
        "## Prevalence in the uniform random stratum",
        "",
        "| label | share |",
        "|---|---|",
        *(
            f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |"
            for k, v in report["random_stratum_prevalence"].items()
        ),
        "",
        "## Agreement",
        "",
        "Each batch hid 14 check questions (>= 5%) from the adjudicated real gold dev split; a",
        f"batch counts only when its check kappa is >= {CHECK_KAPPA} on every head (a head whose",
        "checks are one class must match them all). Agreement with the checks, over the batches",
        "that passed:",
        "",
        "| label | kappa with the check questions |",
        "|---|---|",
        *(f"| {k} | {_kappa(v)} |" for k, v in report["check_questions"].items()),
        "",
        f"Second pass: {report['second_pass']['rows']} rows labelled again by an independent",
        f"labeller; {report['second_pass']['disagreements']} disagreed on some label and were",
        "adjudicated with a written reason (`adjudication.jsonl`); "
        f"{report['second_pass']['changed_by_adjudication']} of them changed the first pass.",
        "",
        "| label | kappa, first against second pass |",
        "|---|---|",
        *(f"| {k} | {_kappa(v)} |" for k, v in report["second_pass"]["per_label"].items()),
        "",
        "## Counterfactual rows (synthetic, train only)",
        "",
        f"{report['counterfactual']['rows']} minimal edits of train messages written by",
        "labelling agents (one change each: tone, a reference added or removed, a name, typos),",
        "each labelled by the guide for its own side. They are **synthetic**: source",
        "`real_counterfactual`, keyed by their real parent's id, stored as a patch against the",
        "parent (never as text), and never in dev or test. Share of the train rows: "
        f"{report['counterfactual']['share_of_train']:.3f}. By edit: "
        + ", ".join(f"{k} {v}" for k, v in report["counterfactual"]["by_edit"].items())
        + ".",
        "",
        *_targeted_section(report),
        "## How the labels were made",
        "",
        "- The guide (`data/LABELLING.md`) was revised before labelling (price and policy",
        "  complaints, 'worst service ever', 'ok thank you', sarcasm, repetition, anger without",
        "  an object) and twice during it, each time because the first batches' check questions",
        "  showed the revision contradicted the adjudicated real gold: flat thanks after an agent",
        "  turn is boredom 1, and legitimacy follows *design* (0) against *delivery* (1).",
        "  Batches labelled before a revision were gated like the rest.",
        "- A batch that failed its checks was labelled again from scratch by another agent;",
        "  every attempt is kept (`labels/rejected/<batch>.aN.tsv`); the batch's current file",
        "  is its latest attempt, and only that one is gated.",
        "  Attempts per batch: "
        + ", ".join(f"{b} {n}" for b, n in sorted(report.get("attempts", {}).items()))
        + ".",
        "- Incidents: labellers wrote into the shared folder while batches were moved for",
        "  relabelling. One line of p01 (item 62) was overwritten by an agent relabelling the",
        "  same batch; a p30 file that mixed two agents' lines was set aside",
        "  (`rejected/p30.l5-reread-mixed.tsv`) and never gated. p06 and p07 were given to",
        "  two relabellers at once (their third and fourth attempts overlap).",
        "- Counterfactual batches c01-c04 were drawn with the batches (1,200 train parents);",
        "  c05-c06 (600 more) were drawn later, seeded, from train rows of batches that had",
        "  already passed, so more edits would have a parent in the set.",
        "  `counterfactual_key.jsonl` records every item's parent.",
        "- The second pass covers 10% of the draw, but only the part whose first-pass batch",
        "  and second-pass batch both passed their checks counts; that is the row count above.",
        "",
        *_review_section(),
        "## What the labellers could not decide",
        "",
        *(f"- {item}" for item in UNDECIDED),
        "",
        f"Tags: {', '.join(f'{k} {v}' for k, v in report['tags'].items())}.",
        "",
    ]
    return "\n".join(lines)


def _review_section() -> list[str]:
    """The contested check questions and their blind review (`training.real_scale_checks`)."""
    path = SCALE_DIR / REVIEW_FILE
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines()]
    retired = [r for r in records if r["retired"]]
    by_head = Counter(r["head"] for r in retired)
    return [
        "## Contested check questions",
        "",
        f"Over every attempt (passed and rejected), {len(records)} (check question, head) pairs",
        f"were missed by more than {CONTEST_SHARE:.0%} of the at least {CONTEST_MIN_SEEN}",
        "attempts that saw them (`python -m training.real_scale_checks contested`). Two",
        "reviewers (labelling agents) judged each blind: the thread, the message and the two",
        "answers as A and B in seeded random order, never told which was the gold label, each",
        "verdict with the guide's rule as its reason (`review/r1.tsv`, `review/r2.tsv`). A pair",
        "is retired from the gate only when neither reviewer picks the gold answer:",
        f"**{len(retired)} retired** ("
        + ", ".join(f"{h} {n}" for h, n in sorted(by_head.items()))
        + f"), {len(records) - len(retired)} upheld (`check_review.jsonl`). The review was run",
        "once, at a fixed point, before the relabels that followed it; the gold dev labels",
        "themselves are unchanged (the old reports stay comparable), and the retired pairs are",
        "listed there as disputed gold for the next adjudication of real gold.",
        "",
    ]


def main() -> None:
    report = json.loads((SCALE_DIR / "agreement.json").read_text())
    (SCALE_DIR / "DATASET_CARD.md").write_text(render_card(report))
    print(f"wrote {SCALE_DIR / 'DATASET_CARD.md'}")


if __name__ == "__main__":
    main()
