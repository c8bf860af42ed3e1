"""Report plots as inline PNG data URIs (matplotlib's object API, no pyplot global state)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from serving.core.metrics import hard_labels

__all__ = ["confusion_plot", "pr_plot", "reliability_plot", "roc_plot"]

STYLE = {"model": ("C0", "-"), "fp32": ("C2", "--"), "baseline": ("C1", ":")}
SIZE = (4.2, 3.6)


def _uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _style(key: str) -> tuple[str, str]:
    return STYLE.get(key, ("C3", "-."))


Curves = dict[str, tuple[str, np.ndarray]]  # key -> (legend text, probs of shape (n,))
XY = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _roc_xy(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr, _ = roc_curve(y, probs)
    return fpr, tpr


def _reliability_xy(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    observed, predicted = calibration_curve(y, probs, n_bins=10, strategy="uniform")
    return predicted, observed


def _pr_xy(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    precision, recall, _ = precision_recall_curve(y, probs)
    return recall, precision


def _curves(labels: np.ndarray, curves: Curves, xy: XY, marker: str = "") -> tuple[Figure, Any]:
    """One axes with a line per model in its house style."""
    figure = Figure(figsize=SIZE)
    ax = figure.add_subplot()
    y = hard_labels(labels)
    for key, (legend, probs) in curves.items():
        color, line = _style(key)
        ax.plot(
            *xy(y, probs), color=color, linestyle=line, marker=marker, markersize=3, label=legend
        )
    return figure, ax


def roc_plot(title: str, labels: np.ndarray, curves: Curves) -> str:
    """ROC curves, with chance as the diagonal."""
    figure, ax = _curves(labels, curves, _roc_xy)
    ax.plot([0, 1], [0, 1], color="0.7", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right", fontsize=8)
    return _uri(figure)


def pr_plot(title: str, labels: np.ndarray, curves: Curves) -> str:
    """Precision-recall curves, with the positive rate (a random model) as a flat line."""
    figure, ax = _curves(labels, curves, _pr_xy)
    ax.axhline(hard_labels(labels).mean(), color="0.7", linewidth=0.8)
    ax.set(xlabel="recall", ylabel="precision", title=title, ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    return _uri(figure)


def reliability_plot(title: str, labels: np.ndarray, curves: Curves) -> str:
    """Observed positive rate per tenth of predicted probability; the diagonal is perfect."""
    figure, ax = _curves(labels, curves, _reliability_xy, marker="o")
    ax.plot([0, 1], [0, 1], color="0.7", linewidth=0.8)
    ax.set(
        xlabel="predicted probability",
        ylabel="observed positive rate",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), fontsize=8)  # off the curves
    return _uri(figure)


def confusion_plot(title: str, matrices: dict[str, tuple[str, list[list[int]]]]) -> str:
    """2x2 confusion matrices side by side; matrices: key -> (caption, [[tn, fp], [fn, tp]])."""
    figure = Figure(figsize=(2.6 * len(matrices) + 0.6, 2.8), layout="constrained")
    axes = figure.subplots(1, len(matrices), squeeze=False, sharey=True)[0]
    for ax, (caption, matrix) in zip(axes, matrices.values(), strict=True):
        values = np.array(matrix)
        ax.imshow(values, cmap="Blues")
        for (r, c), v in np.ndenumerate(values):
            dark = v > values.max() / 2
            ax.text(c, r, str(v), ha="center", va="center", color="white" if dark else "black")
        ax.set_xticks([0, 1], ["pred 0", "pred 1"])
        ax.set_yticks([0, 1], ["label 0", "label 1"])
        ax.tick_params(axis="y", labelleft=ax is axes[0])
        ax.set_title(caption, fontsize=9)
    figure.suptitle(title, fontsize=10)
    return _uri(figure)
