"""Training-curve and anomaly-score plots (PNG, written atomically)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._files import write_atomically


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return write_atomically(path, buffer.getvalue())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(records: Sequence[Sequence[float]], best_step: int, path: Path) -> Path:
    """Training and evaluation loss against the step, log scale; the best step marked."""
    plt = _pyplot()
    table = np.asarray(records, np.float64).reshape(-1, 3)
    figure, axis = plt.subplots(figsize=(7, 4))
    for column, label in ((1, "training loss"), (2, "evaluation loss")):
        keep = np.isfinite(table[:, column])
        if keep.any():
            axis.plot(
                table[keep, 0],
                table[keep, column],
                marker="." if column == 2 else None,
                label=label,
            )
    if best_step > 0:
        axis.axvline(
            best_step, color="grey", linewidth=0.8, linestyle="--", label="best evaluation"
        )
    positive = table[:, 1:][np.isfinite(table[:, 1:])]
    if positive.size and positive.min() > 0:
        axis.set_yscale("log")
    axis.set(xlabel="step", ylabel="mean loss", title="Training curves")
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_scores(scores: Sequence[float], threshold: float, path: Path) -> Path:
    """The anomaly score of every row (maximum per bin) and the threshold."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 3.5))
    axis.plot(scores, linewidth=0.7, label="anomaly score (max per bin)")
    if math.isfinite(threshold):
        axis.axhline(threshold, color="red", linewidth=0.8, label="threshold")
    axis.set_yscale("log")
    axis.set(xlabel="time (bins of rows)", ylabel="reconstruction error", title="Anomaly scores")
    axis.legend(fontsize=7)
    return _save(figure, path)
