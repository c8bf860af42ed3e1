"""The baseline beside every figure: TF-IDF + logistic regression per head, same data.

Trained on the train split rows where the head is labelled (labels cut at 0.5); its threshold
is chosen like the model's, on the same dev rows (`dataset_rules.calibration_rows`: real-text
gold first, then project-written gold, else all dev rows).
It shows what the transformer buys over word counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from serving.core.contract import HEADS, mask_column
from serving.core.errors import BadInput
from serving.core.metrics import best_f1_threshold, hard_labels

__all__ = ["DESCRIPTION", "Baseline", "fit_baseline"]

DESCRIPTION = (
    "TF-IDF (word 1-2 grams, sublinear tf) + logistic regression per head, trained on the "
    "train split rows labelled for the head; threshold = best F1 on the dev rows calibration "
    "is fitted on"
)


@dataclass(frozen=True)
class Baseline:
    vectorizer: TfidfVectorizer
    heads: dict[str, LogisticRegression]
    thresholds: dict[str, float]

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """P(positive), shape (len(texts), len(HEADS))."""
        features = self.vectorizer.transform(texts)
        return np.column_stack([self.heads[h].predict_proba(features)[:, 1] for h in HEADS])


def fit_baseline(train: pd.DataFrame, dev: pd.DataFrame, seed: int = 0) -> Baseline:
    """Fit the vectorizer on all train texts and one classifier per head; thresholds on dev."""
    if train.empty or dev.empty:
        raise BadInput("the baseline needs train and dev rows in the dataset")
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    features = vectorizer.fit_transform(train["text"].tolist())
    dev_features = vectorizer.transform(dev["text"].tolist())
    from training.dataset_rules import calibration_rows  # the split rules are training's

    dev_rows, _ = calibration_rows(dev)
    heads, thresholds = {}, {}
    for head in HEADS:
        rows = train[mask_column(head)].to_numpy() == 1
        y = hard_labels(train.loc[rows, head].to_numpy(dtype=float))
        if len(np.unique(y)) < 2:
            raise BadInput(f"the baseline needs both classes of {head} in the train split")
        model = LogisticRegression(max_iter=2000, random_state=seed)
        heads[head] = model.fit(features[np.flatnonzero(rows)], y)
        chosen = dev_rows & (dev[mask_column(head)].to_numpy() == 1)
        labels = dev.loc[chosen, head].to_numpy(dtype=float)
        probs = model.predict_proba(dev_features[np.flatnonzero(chosen)])[:, 1]
        thresholds[head] = best_f1_threshold(labels, probs) if chosen.any() else 0.5
    return Baseline(vectorizer, heads, thresholds)
