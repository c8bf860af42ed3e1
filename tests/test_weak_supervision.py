"""Labelling functions vote as documented; the label model recovers accuracies and abstains."""

from __future__ import annotations

import numpy as np
import pytest

from training.label_model import fit_label_model, lf_summary
from training.labelling import (
    ABSTAIN,
    BOREDOM_LFS,
    LEGITIMACY_LFS,
    NEGATIVE,
    POSITIVE,
    apply_lfs,
)

BOREDOM = {lf.name: lf for lf in BOREDOM_LFS}
LEGITIMACY = {lf.name: lf for lf in LEGITIMACY_LFS}


@pytest.mark.parametrize(
    "name, text, meta, vote",
    [
        ("minimal_reply", "ok", {}, POSITIVE),
        ("minimal_reply", "k.", {}, POSITIVE),
        ("minimal_reply", "ok thanks that fixed it", {}, ABSTAIN),
        ("resigned", "never mind, forget it", {}, POSITIVE),
        ("resigned", "I'd like to change my plan", {}, ABSTAIN),
        ("high_energy", "Yes! Tuesday works", {}, NEGATIVE),
        ("high_energy", "WHERE IS MY REFUND", {}, NEGATIVE),
        ("high_energy", "fine", {}, ABSTAIN),
        ("engaged_question", "Could you tell me when the parcel will arrive?", {}, NEGATIVE),
        ("engaged_question", "?", {}, ABSTAIN),
        ("detailed", " ".join(["word"] * 30), {}, NEGATIVE),
        ("detailed", " ".join(["word"] * 30) + " anyway forget it", {}, ABSTAIN),
        ("emobank_corner", "x", {"meta_arousal": 2.0, "meta_valence": 2.5}, POSITIVE),
        ("emobank_corner", "x", {"meta_arousal": 3.8, "meta_valence": 2.5}, NEGATIVE),
        ("emobank_corner", "x", {}, ABSTAIN),
        ("goemotions_aroused", "x", {"meta_emotions": "anger,annoyance"}, NEGATIVE),
        ("goemotions_aroused", "x", {"meta_emotions": "neutral"}, ABSTAIN),
    ],
)
def test_boredom_functions(name: str, text: str, meta: dict[str, object], vote: int) -> None:
    assert BOREDOM[name](text, meta) == vote


@pytest.mark.parametrize(
    "name, text, meta, vote",
    [
        ("specifics", "order #55120 arrived late", {}, POSITIVE),
        ("specifics", "charged $49.99 on 3 March", {}, POSITIVE),
        ("specifics", "your service is bad", {}, ABSTAIN),
        ("concrete_failure", "I was charged twice", {}, POSITIVE),
        ("concrete_failure", "the screen arrived cracked", {}, POSITIVE),
        ("concrete_failure", "I don't like the colour", {}, ABSTAIN),
        ("abuse_only", "you are all idiots", {}, NEGATIVE),
        ("abuse_only", "idiots, the item arrived broken", {}, ABSTAIN),
        ("own_mistake", "I typed the wrong address, send another for free", {}, NEGATIVE),
        ("unreasonable", "refund the sofa I bought five years ago", {}, NEGATIVE),
        ("unreasonable", "refund the sofa that arrived yesterday", {}, ABSTAIN),
        ("cfpb_relief", "x", {"meta_response": "Closed with monetary relief"}, POSITIVE),
        ("cfpb_relief", "x", {"meta_response": "Closed with explanation"}, NEGATIVE),
        ("cfpb_relief", "x", {"meta_response": "In progress"}, ABSTAIN),
    ],
)
def test_legitimacy_functions(name: str, text: str, meta: dict[str, object], vote: int) -> None:
    assert LEGITIMACY[name](text, meta) == vote


def test_apply_lfs_shape() -> None:
    votes = apply_lfs(BOREDOM_LFS, ["ok", "Why is my card blocked again?"], [{}, {}])
    assert votes.shape == (2, len(BOREDOM_LFS))
    assert votes[0, 0] == POSITIVE and votes[1, 0] == ABSTAIN


def synthetic_votes(accuracies: list[float], n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    votes = np.full((n, len(accuracies)), ABSTAIN)
    for j, acc in enumerate(accuracies):
        fires = rng.random(n) < 0.6
        right = rng.random(n) < acc
        votes[fires, j] = np.where(right[fires], truth[fires], 1 - truth[fires])
    return votes, truth


def test_label_model_recovers_accuracies() -> None:
    votes, truth = synthetic_votes([0.9, 0.75, 0.6])
    model = fit_label_model(votes, prior=0.5)
    assert model.accuracies[0] > model.accuracies[1] > model.accuracies[2]
    assert abs(model.accuracies[0] - 0.9) < 0.05
    probs = model.predict_proba(votes)
    voted = (votes != ABSTAIN).any(1)
    model_accuracy = ((probs[voted] >= 0.5) == truth[voted]).mean()
    signs = (votes == POSITIVE).astype(int) - (votes == NEGATIVE).astype(int)
    majority_accuracy = ((signs.sum(1)[voted] > 0) == truth[voted]).mean()
    assert model_accuracy > majority_accuracy  # weighting by accuracy beats a plain vote


def test_lone_voter_keeps_its_prior_accuracy() -> None:
    votes = np.full((100, 2), ABSTAIN)
    votes[:10, 0] = POSITIVE  # fires alone, never overlaps
    votes[10:, 1] = NEGATIVE
    model = fit_label_model(votes, prior=0.1, init_accuracy=0.7)
    assert model.accuracies[0] == pytest.approx(0.7)
    assert model.predict_proba(votes[:1])[0] > 0.1  # a positive vote raises the prior


def test_lf_summary_reports_coverage_and_gold_accuracy() -> None:
    votes = np.array([[1, -1], [1, 0], [-1, 0], [-1, -1]])
    stats = lf_summary(votes, votes, np.array([1, 0, 0, 1]))
    assert stats[0]["coverage"] == 0.5 and stats[1]["coverage"] == 0.5
    assert stats[0]["conflict"] == 0.25  # row 1: votes 1 and 0
    assert stats[0]["gold_accuracy"] == 0.5 and stats[1]["gold_accuracy"] == 1.0
