"""The dataset's rules, one home each: the split shares and the salted hash that assigns a
split, the text key that finds duplicates, which sources are hand-labelled, and which dev rows
calibration and thresholds are fitted on. `prepare`, the gold sets, corrections, training and
the TF-IDF baseline all import them, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = [
    "CALIBRATION_GROUPS",
    "GOLD_SALT",
    "GOLD_SPLITS",
    "HAND_SOURCES",
    "POOL_SPLITS",
    "REAL_GOLD_SALT",
    "REAL_GOLD_SPLITS",
    "REAL_SCALE_SALT",
    "REAL_SCALE_SPLITS",
    "calibration_rows",
    "hash_split",
    "match_key",
    "pool_split",
]

#: Public and weakly labelled rows: split by a hash of their text (with prepare's seed).
POOL_SPLITS: Mapping[str, float] = {"train": 0.8, "dev": 0.1, "test": 0.1}
#: The project-written gold set: split by a hash of the message id.
GOLD_SPLITS: Mapping[str, float] = {"test": 0.35, "dev": 0.25, "train": 0.40}
GOLD_SALT = "helpdesk-scorer-gold-v1"
#: The real-text gold set: split by a hash of the thread id (a thread never spans splits).
REAL_GOLD_SPLITS: Mapping[str, float] = {"dev": 0.5, "test": 0.5}
REAL_GOLD_SALT = "helpdesk-scorer-real-gold-v1"
#: The scaled real-text set (data/real_scale/): split by a hash of the thread id.
REAL_SCALE_SPLITS: Mapping[str, float] = {"train": 0.70, "dev": 0.15, "test": 0.15}
REAL_SCALE_SALT = "helpdesk-scorer-real-scale-v1"

#: Rows labelled by the guide (project-written gold and hand-written, real-text gold and the
#: real messages labelled for training): never given weak labels, weighted up in training.
HAND_SOURCES = (
    "gold",
    "handwritten",
    "real_gold",
    "real_train",
    "real_scale",
    "real_counterfactual",
)
#: Dev rows that calibration and thresholds are fitted on: the first group present wins, so
#: real customer text decides what the served probabilities mean.
CALIBRATION_GROUPS = (("real_scale",), ("real_gold",), ("gold",))


def hash_split(key: str, salt: str, shares: Mapping[str, float]) -> str:
    """The split of `key`: a salted sha256 bucket out of 1000, cut by `shares` in order, so
    adding rows never moves old ones."""
    bucket = int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest(), 16) % 1000
    edge = 0
    for split, share in shares.items():
        edge += round(share * 1000)
        if bucket < edge:
            return split
    return list(shares)[-1]


def match_key(text: str) -> str:
    """Lower-case letters and digits only: the key that finds duplicate and corrected texts."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def pool_split(text: str, seed: int) -> str:
    """Split of a pool row by its text: identical texts always land in one split."""
    return hash_split(match_key(text), str(seed), POOL_SPLITS)


def calibration_rows(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Boolean rows of `frame` (dev) to calibrate and pick thresholds on: the first of
    CALIBRATION_GROUPS present (real text first), else all rows; and what they are."""
    for sources in CALIBRATION_GROUPS:
        rows = frame["source"].isin(sources).to_numpy()
        if rows.any():
            return rows, " + ".join(sources)
    return np.ones(len(frame), dtype=bool), "all dev rows"
