"""Score drift: the recent score distribution per head against the one recorded at export.

The reference is a histogram per head over `DRIFT_BINS` equal-width bins of [0, 1] (calibrated
scores of the dataset's real-text dev messages, written into manifest.json by
`training/export.py` or `python -m training.reference`). The server keeps the bin of every head
of the last `window` scored messages in a ring buffer with running counts per bin, so adding a
message costs O(heads) and PSI costs O(heads x bins), whatever the window.

PSI (population stability index) = sum over bins of (a - e) * ln(a / e), with `a` the window's
share and `e` the reference's share of a bin, each raised to at least `PSI_EPSILON` so that an
empty bin adds a large but finite term. The usual reading: < 0.1 no shift, 0.1-0.2 moderate,
> `PSI_ALERT` (0.2) significant; deploy/monitoring/prometheusrule.yaml alerts on that value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from serving.core.contract import HEADS

__all__ = [
    "DEFAULT_WINDOW",
    "DRIFT_BINS",
    "PSI_ALERT",
    "PSI_EPSILON",
    "DriftWindow",
    "bin_counts",
    "psi",
]

#: Equal-width bins over [0, 1]; a score of exactly 1 falls in the last one.
DRIFT_BINS = 10
#: PSI above this is a significant shift (the usual convention); the PrometheusRule uses it.
PSI_ALERT = 0.2
#: Floor of a bin's share in PSI, so an empty bin does not make it infinite.
PSI_EPSILON = 1e-4
#: Messages in the sliding window (HELPDESK_DRIFT_WINDOW).
DEFAULT_WINDOW = 1000


def _bins(scores: np.ndarray) -> np.ndarray:
    bins: np.ndarray = (np.asarray(scores, dtype=float) * DRIFT_BINS).astype(int)
    clipped: np.ndarray = np.clip(bins, 0, DRIFT_BINS - 1)
    return clipped


def bin_counts(scores: Sequence[float] | np.ndarray) -> list[int]:
    """How many of `scores` fall in each of the DRIFT_BINS bins: a reference histogram."""
    return [int(c) for c in np.bincount(_bins(np.asarray(scores)), minlength=DRIFT_BINS)]


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """PSI of the `actual` bin counts against the `expected` ones (any scale: shares are used)."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    e = np.maximum(e / e.sum(), PSI_EPSILON)
    a = np.maximum(a / max(a.sum(), 1.0), PSI_EPSILON)
    return float(((a - e) * np.log(a / e)).sum())


class DriftWindow:
    """The last `size` scored messages: each head's bin and whether the message was flagged
    non-English, in a ring buffer, with running counts so no update walks the window."""

    def __init__(self, size: int, reference: Mapping[str, Sequence[int]] | None = None):
        self.size = size
        self.reference = (
            None if reference is None else np.array([reference[h] for h in HEADS], dtype=float)
        )
        self._bins = np.zeros((size, len(HEADS)), dtype=np.int8)
        self._flagged = np.zeros(size, dtype=bool)
        self._counts = np.zeros((len(HEADS), DRIFT_BINS), dtype=np.int64)
        self._next = 0
        self.filled = 0

    def add(self, scores: np.ndarray, flagged: np.ndarray) -> None:
        """Add messages: `scores` of shape (n, len(HEADS)), `flagged` of shape (n,)."""
        scores, flagged = scores[-self.size :], flagged[-self.size :]
        n = len(scores)
        slots = (self._next + np.arange(n)) % self.size
        heads = np.arange(len(HEADS))
        old = slots[slots < self.filled]  # slots being overwritten held a message
        np.subtract.at(self._counts, (heads[None, :], self._bins[old]), 1)
        new = _bins(scores)
        self._bins[slots] = new
        self._flagged[slots] = flagged
        np.add.at(self._counts, (heads[None, :], new), 1)
        self._next = int((self._next + n) % self.size)
        self.filled = min(self.size, self.filled + n)

    def psi(self) -> dict[str, float] | None:
        """PSI per head once the window is full (fewer messages are noise); None before, or
        without a reference."""
        if self.reference is None or self.filled < self.size:
            return None
        return {h: psi(self.reference[i], self._counts[i]) for i, h in enumerate(HEADS)}

    def non_english_share(self) -> float:
        """Share of the window's messages flagged non-English (0 while empty)."""
        return float(self._flagged[: self.filled].mean()) if self.filled else 0.0
