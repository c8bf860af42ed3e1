"""A small Dawid-Skene label model: combines labelling-function votes into P(y = 1).

Each function j has one accuracy a_j (P(vote is right | it votes)); the class prior is pi.
EM alternates the posterior of the hidden label with re-estimating a_j; a Beta pseudo-count
keeps functions with few overlaps near the initial accuracy.
Snorkel's LabelModel does the same with more machinery; its last release pins old versions of
torch and pandas, so this ~60-line version is kept here instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.labelling import ABSTAIN, NEGATIVE, POSITIVE

__all__ = ["LabelModel", "fit_label_model", "lf_summary"]


def _signs(votes: np.ndarray) -> np.ndarray:
    """+1 for a positive vote, -1 for a negative one, 0 for an abstain."""
    return (votes == POSITIVE).astype(float) - (votes == NEGATIVE).astype(float)


@dataclass(frozen=True)
class LabelModel:
    accuracies: np.ndarray  # shape (n_lfs,)
    prior: float

    def log_odds(self, votes: np.ndarray) -> np.ndarray:
        weights = np.log(self.accuracies) - np.log1p(-self.accuracies)
        return np.log(self.prior) - np.log1p(-self.prior) + _signs(votes) @ weights

    def predict_proba(self, votes: np.ndarray) -> np.ndarray:
        """P(y = 1) per row, shape (n_rows,); rows with no vote get the prior."""
        return 1.0 / (1.0 + np.exp(-self.log_odds(votes)))


def fit_label_model(
    votes: np.ndarray,
    prior: float | None = None,
    n_iter: int = 50,
    init_accuracy: float = 0.7,
    pseudo: float = 10.0,
) -> LabelModel:
    """Fit on a vote matrix of shape (n_rows, n_lfs) with values in {-1, 0, 1}.

    Each function's accuracy is estimated only from the rows where other functions also vote:
    a function that only ever votes alone keeps its initial accuracy instead of echoing the
    class balance back (which drives rare-class functions to 0 under plain EM).
    prior: the class balance P(y = 1), held fixed when given (like Snorkel's class_balance).
    """
    signs = _signs(votes)
    voted = signs != 0
    overlapping = voted & ((voted.sum(1, keepdims=True) - voted) > 0)
    if prior is not None:
        prior = float(np.clip(prior, 0.02, 0.98))
    model = LabelModel(np.full(votes.shape[1], init_accuracy), 0.5 if prior is None else prior)
    for _ in range(n_iter):
        p1 = model.predict_proba(votes)[:, None]
        agree = np.where(signs > 0, p1, 1.0 - p1) * overlapping
        accuracies = (agree.sum(0) + pseudo * init_accuracy) / (overlapping.sum(0) + pseudo)
        balance = prior
        if balance is None:
            balance = float(np.clip(model.predict_proba(votes[voted.any(1)]).mean(), 0.02, 0.98))
        model = LabelModel(np.clip(accuracies, 0.05, 0.95), balance)
    return model


def lf_summary(
    votes: np.ndarray, gold_votes: np.ndarray | None = None, gold: np.ndarray | None = None
) -> list[dict[str, float]]:
    """Per-function coverage, overlap and conflict on the pool, and accuracy on gold rows.

    votes: (n_rows, n_lfs) on the pool; gold_votes: (n_gold, n_lfs); gold: (n_gold,) in {0, 1}.
    """
    voted = votes != ABSTAIN
    others = voted.sum(1, keepdims=True) - voted
    pos = (votes == POSITIVE).sum(1, keepdims=True)
    neg = (votes == NEGATIVE).sum(1, keepdims=True)
    disagree = np.where(votes == POSITIVE, neg, pos) > 0
    stats = []
    for j in range(votes.shape[1]):
        row = {
            "coverage": float(voted[:, j].mean()),
            "overlap": float((voted[:, j] & (others[:, j] > 0)).mean()),
            "conflict": float((voted[:, j] & disagree[:, j]).mean()),
        }
        if gold_votes is not None and gold is not None:
            fired = gold_votes[:, j] != ABSTAIN
            row["gold_coverage"] = float(fired.mean())
            row["gold_accuracy"] = (
                float((gold_votes[fired, j] == gold[fired]).mean()) if fired.any() else float("nan")
            )
        stats.append(row)
    return stats
