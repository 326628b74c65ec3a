"""Figures logged with runs (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion_matrix(confusion: list[list[int]], class_names: list[str], path: Path) -> Path:
    """Counts, coloured by the row-normalised rate (sensitivity on the diagonal)."""
    counts = np.asarray(confusion)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=90 if len(class_names) > 8 else 0)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_roc_curves(fpr: list, tpr: list, thresholds: list[dict], class_names: list[str],
                    path: Path) -> Path:
    """One-vs-rest ROC curve per class, its G-mean operating point (chosen on validation) marked."""
    fig, ax = plt.subplots(figsize=(6, 6))
    for class_fpr, class_tpr, row, name in zip(fpr, tpr, thresholds, class_names):
        if len(class_tpr) == 0 or class_tpr[-1] == 0:  # no positives in the test split
            continue
        (line,) = ax.plot(class_fpr, class_tpr, lw=1.2, label=name)
        if row["threshold"] is not None and row["sensitivity"] == row["sensitivity"]:
            ax.plot(1.0 - row["specificity"], row["sensitivity"], "o", color=line.get_color(),
                    markersize=6, markeredgecolor="black")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("test ROC; dots: G-mean thresholds chosen on validation", fontsize=9)
    if len(class_names) <= 12:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
