"""Routing policy and phrase bank: table-driven rules, validation, and the phrasing principles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evaluation.phrasing_suite import PRINCIPLES
from serving.core.contract import HEADS
from serving.core.decision.decide import (
    Decision,
    decide,
    frustration_level,
    merge_rules,
    thread_summary,
)
from serving.core.decision.phrasing import load_phrases, suggest
from serving.core.decision.route_policy import Policy, load_policy
from serving.core.errors import BadInput

POLICY = load_policy()
CUT = dict.fromkeys(HEADS, 0.5)


def scores(f: float, b: float, c: float, lg: float) -> dict[str, float]:
    return dict(zip(HEADS, (f, b, c, lg), strict=True))


def decided(s: dict[str, float], policy: Policy = POLICY, earlier: int = 0) -> Decision:
    """`decide` with thresholds 0.5 and margin 0.05, after `earlier` frustrated turns."""
    thread = [scores(0.8, 0.1, 0.1, 0.1)] * earlier
    return decide(s, merge_rules(policy, CUT, 0.05, 0.9), thread)


@pytest.mark.parametrize(
    "s, name, priority, uncertain",
    [
        (scores(0.9, 0.1, 0.9, 0.9), "escalate_senior", "high", []),
        (scores(0.9, 0.1, 0.9, 0.1), "supervisor_support", "normal", []),
        (scores(0.1, 0.1, 0.9, 0.9), "complaint_desk", "normal", []),
        (scores(0.1, 0.9, 0.1, 0.1), "re_engage", "normal", []),
        (scores(0.1, 0.1, 0.1, 0.1), "standard", "normal", []),
        (scores(0.9, 0.9, 0.9, 0.9), "escalate_senior", "high", []),  # frustrated + bored: escalate
        (scores(0.52, 0.1, 0.9, 0.9), "escalate_senior", "high", ["frustration"]),
        (scores(0.9, 0.1, 0.9, 0.48), "supervisor_support", "normal", ["legitimacy"]),
        (scores(0.1, 0.53, 0.2, 0.1), "re_engage", "normal", ["boredom"]),
        (scores(0.1, 0.1, 0.47, 0.9), "standard", "normal", ["complaint"]),
        # near a threshold but the route is the same either way: nothing to look at
        (scores(0.1, 0.1, 0.1, 0.52), "standard", "normal", []),
        (scores(0.9, 0.52, 0.9, 0.9), "escalate_senior", "high", []),
    ],
)
def test_policy_table(s: dict[str, float], name: str, priority: str, uncertain: list[str]) -> None:
    result = decided(s)
    assert (result.route.name, result.route.priority, result.uncertain) == (
        name,
        priority,
        uncertain,
    )


def test_reason_tells_a_score_from_a_close_threshold_and_skips_unused_heads() -> None:
    rules = merge_rules(POLICY, {**CUT, "frustration": 0.4290}, 0.05, 0.9)
    calm = decide(scores(0.4274, 0.1, 0.1, 0.1), rules, [])
    assert calm.route.name == "standard"
    assert "frustration 0.427 < 0.429" in calm.route.reason
    assert "legitimacy" not in calm.route.reason  # no complaint: its merit decided nothing
    bored = decide(scores(0.1, 0.9, 0.1, 0.1), rules, [])
    assert bored.route.name == "re_engage" and "frustration" not in bored.route.reason


def test_reason_names_the_deciding_scores() -> None:
    reason = decided(scores(0.91, 0.1, 0.88, 0.73)).route.reason
    assert "frustration 0.91 >= 0.50" in reason
    assert "legitimacy 0.73 >= 0.50" in reason
    assert "boredom" not in reason


def test_policy_thresholds_override_the_manifest() -> None:
    strict = Policy(POLICY.rules, {"frustration": 0.95}, 0.01)
    result = decided(scores(0.9, 0.1, 0.9, 0.9), strict)
    assert result.route.name == "complaint_desk"
    # the raised threshold is the mild cut-off too: labels and routing agree
    assert result.labels["frustration"] == "none" and not result.above["frustration"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[rules]]\nname='a'\npriority='urgent'\nreason='r'\nwhen={}\n", "priority must be"),
        ("[[rules]]\nname='a'\npriority='high'\nreason='r'\nwhen={anger=true}\n", "conditions"),
        ("[[rules]]\nname='a'\npriority='high'\nreason='r'\nwhen={boredom=true}\n", "fallback"),
        ("[[rules]\n", "not valid TOML"),
        (
            "[thresholds]\nangst=0.3\n[[rules]]\nname='a'\npriority='high'\nreason='r'\nwhen={}\n",
            "unknown heads",
        ),
    ],
)
def test_broken_policy_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(BadInput, match=message):
        load_policy(path)


BANK = load_phrases(routes=tuple(r.name for r in POLICY.rules))


def broken_principles(phrase: str) -> list[str]:
    """The phrasing principles `phrase` breaks (tests/test_references.py checks filled ones)."""
    broken = [what for what, rule in PRINCIPLES.items() if rule.search(phrase)]
    return broken + (["states a number"] if re.search(r"\d", phrase) else [])


@pytest.mark.parametrize("phrase", BANK.all_phrases())
def test_every_phrase_follows_the_principles(phrase: str) -> None:
    assert broken_principles(phrase) == []


def test_disengaged_phrasing_is_brief() -> None:
    for part in BANK.routes["re_engage"].values():
        assert all(len(p.text.split()) <= 10 for p in part)


def test_choice_is_deterministic_per_message() -> None:
    first = suggest(BANK, "complaint_desk", False, "msg-1")
    assert first == suggest(BANK, "complaint_desk", False, "msg-1")
    assert len(first) == 2
    seen = {tuple(suggest(BANK, "complaint_desk", False, f"msg-{i}")) for i in range(50)}
    assert len(seen) > 1
    assert suggest(BANK, "standard", True, "m")[0] in {p.text for p in BANK.frustrated_open}


@pytest.mark.parametrize(
    "phrase, requires, refused",
    [
        ("I've taken care of it; nothing more needed from you.", "[]", True),
        ("I've refunded the charge.", '["history"]', True),
        ("I have your full history in front of me.", "[]", True),
        ("I have your full history in front of me.", '["history"]', False),
        ("I appreciate the detail you've given.", "[]", True),
        ("I appreciate the detail you've given.", '["detailed"]', False),
        ("Let me check that for you.", '["telepathy"]', True),
    ],
)
def test_a_phrase_claiming_what_its_precondition_lacks_is_refused(
    tmp_path: Path, phrase: str, requires: str, refused: bool
) -> None:
    path = tmp_path / "phrases.toml"
    path.write_text(
        "[routes.standard]\nopen=['Hi.']\n"
        f"next=['Let me check.', {{ text = \"{phrase}\", requires = {requires} }}]\n"
        "[frustrated]\nopen=['Sorry about this.']\n"
    )
    if refused:
        with pytest.raises(BadInput, match=r"precondition|unknown facts"):
            load_phrases(path)
    else:
        assert phrase in load_phrases(path).all_phrases()


def test_a_list_of_only_conditional_phrases_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "phrases.toml"
    path.write_text(
        "[routes.standard]\nopen=['Hi.']\n"
        "next=[{ text = 'Thanks for the detail.', requires = ['detailed'] }]\n"
        "[frustrated]\nopen=['Sorry about this.']\n"
    )
    with pytest.raises(BadInput, match="no precondition"):
        load_phrases(path)


def test_preconditions_decide_what_is_offered() -> None:
    history = "I have your full history in front of me, so you won't need to repeat anything."
    offered_without = {
        suggest(BANK, "escalate_senior", True, f"m{i}", facts=frozenset())[-1] for i in range(200)
    }
    offered_with = {
        suggest(BANK, "escalate_senior", True, f"m{i}", facts=frozenset({"history"}))[-1]
        for i in range(200)
    }
    assert history not in offered_without and history in offered_with
    repeated = suggest(BANK, "complaint_desk", False, "m", facts=frozenset({"repeated"}))
    assert "again" in repeated[0]
    bored = suggest(BANK, "re_engage", True, "m", facts=frozenset({"repeated"}))
    assert bored[0] in {p.text for p in BANK.routes["re_engage"]["open"]}


def test_facts_of_a_message() -> None:
    from serving.core.decision.phrasing import facts_of

    assert facts_of("ok", 0, 0) == frozenset()
    assert facts_of("still broken", 0, 0) == {"repeated"}
    assert facts_of("hi", 2, 1) == {"history", "repeated", "reference"}
    assert "detailed" in facts_of(" ".join(["word"] * 25), 0, 0)


def test_the_phrasing_suite_passes_every_case() -> None:
    from evaluation.phrasing_suite import cases, run

    lines: list[str] = []
    assert len(cases()) >= 60
    assert run(out=lines.append) == 1.0, "\n".join(lines)


def test_phrase_bank_must_cover_every_route(tmp_path: Path) -> None:
    path = tmp_path / "phrases.toml"
    path.write_text(
        "[routes.standard]\nopen=['Hi.']\nnext=['Let me check.']\n"
        "[frustrated]\nopen=['Sorry about this.']\n"
    )
    with pytest.raises(BadInput, match="re_engage"):
        load_phrases(path, ("standard", "re_engage"))


@pytest.mark.parametrize(
    "earlier, name", [(0, "standard"), (1, "standard"), (2, "escalate_senior")]
)
def test_sustained_frustration_escalates_sooner(earlier: int, name: str) -> None:
    # frustrated but no complaint: standard for one message, senior on the third frustrated turn
    result = decided(scores(0.8, 0.1, 0.1, 0.1), earlier=earlier)
    assert result.route.name == name and result.frustrated_in_a_row == earlier + 1
    if earlier == 2:
        assert "3 frustrated turns in a row" in result.route.reason


def test_near_threshold_frustration_is_uncertain_when_it_would_end_a_streak() -> None:
    result = decided(scores(0.52, 0.1, 0.1, 0.1), earlier=2)
    assert (result.route.name, result.uncertain) == ("escalate_senior", ["frustration"])
    assert decided(scores(0.52, 0.1, 0.1, 0.1)).uncertain == []


@pytest.mark.parametrize(
    "turns, trend, in_a_row",
    [
        ([0.1, 0.2, 0.7], "rising", 1),
        ([0.9, 0.8, 0.85], "steady", 3),
        ([0.9, 0.9, 0.2], "falling", 0),
        ([0.2, 0.6, 0.7, 0.8], "rising", 3),
    ],
)
def test_thread_summary(turns: list[float], trend: str, in_a_row: int) -> None:
    summary = thread_summary(turns, 0.5)
    assert summary["trend"] == trend and summary["frustrated_in_a_row"] == in_a_row
    assert summary["frustration"] == turns


@pytest.mark.parametrize(
    "score, cutoffs, level",
    [
        (0.2, {"mild": 0.5, "strong": 0.9}, "none"),
        (0.6, {"mild": 0.5, "strong": 0.9}, "mild"),
        (0.95, {"mild": 0.5, "strong": 0.9}, "strong"),
        (0.93, {"mild": 0.97, "strong": 0.9}, "none"),  # a raised threshold wins over strong
    ],
)
def test_frustration_level(score: float, cutoffs: dict[str, float], level: str) -> None:
    assert frustration_level(score, cutoffs) == level
