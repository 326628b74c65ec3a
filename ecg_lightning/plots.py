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


def plot_det_curves(curves: dict, metrics: dict, path: Path, points: int = 400) -> Path:
    """Verification DET curves (false reject against false accept rate, log axes), one per
    number of beats per decision, the equal error rate in the legend (``biometrics.py``)."""
    fig, ax = plt.subplots(figsize=(6, 6))
    floor = 1e-4  # log axes: rates of 0 are drawn at the floor
    for k, curve in sorted(curves.items()):
        far, frr = (np.clip(np.asarray(curve[key], dtype=float), floor, 1.0)
                    for key in ("far", "frr"))
        # a million impostor claims give a million curve points: keep ~``points``, log-spaced
        keep = np.unique(np.searchsorted(far, np.geomspace(floor, 1.0, points)).clip(0, len(far) - 1))
        eer = metrics.get(f"test/verification/k{k}/eer", float("nan"))
        ax.plot(far[keep], frr[keep], lw=1.2,
                label=f"{k} beat{'s' if k > 1 else ''} per decision, EER {100 * eer:.1f} %")
    ax.plot([floor, 1], [floor, 1], ":", color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1)
    ax.set_xlabel("false accept rate (impostor claims accepted)")
    ax.set_ylabel("false reject rate (genuine claims rejected)")
    ax.set_title("test verification DET; dotted: equal error rates", fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_training_curves(histories: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    """Per-epoch curves: losses on the left, every other metric on the right (x: epoch)."""
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, points in sorted(histories.items()):
        if not points:
            continue
        epochs, values = zip(*points)
        ax = loss_ax if "loss" in name else metric_ax
        ax.plot(epochs, values, marker="o", markersize=3, label=name)
    for ax, title in ((loss_ax, "loss"), (metric_ax, "metrics")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_examples(examples: list[dict], class_names: list[str], path: Path) -> Path:
    """Test inputs as the model sees them, one row per true class, titled true -> predicted.

    One-channel inputs are drawn as a line (a beat window, or PCA scores); several channels
    as an image (a spectrogram: frequency bins by frames).
    """
    classes = sorted({e["true"] for e in examples})
    columns = max(sum(e["true"] == c for e in examples) for c in classes)
    fig, axes = plt.subplots(len(classes), columns, figsize=(3 * columns, 1.8 * len(classes)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, true in enumerate(classes):
        for column, example in enumerate(e for e in examples if e["true"] == true):
            ax = axes[row, column]
            ax.axis("on")
            signal = np.asarray(example["input"])
            if signal.shape[0] == 1:
                ax.plot(signal[0], lw=0.8)
            else:
                ax.imshow(signal, aspect="auto", origin="lower")
            right = example["predicted"] == true
            ax.set_title(f"{class_names[true]} -> {class_names[example['predicted']]}",
                         fontsize=8, color="black" if right else "red")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_class_distribution(card: dict, path: Path) -> Path:
    """Items per class in every split (bars side by side), from a dataset card."""
    classes = card["label_classes"]
    splits = list(card["splits"])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(classes) * len(splits) / 2 + 3), 3.5))
    width = 0.8 / len(splits)
    for offset, name in enumerate(splits):
        counts = [card["splits"][name]["per_class"][c] for c in classes]
        ax.bar(np.arange(len(classes)) + offset * width, counts, width, label=name)
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes,
                  rotation=90 if len(classes) > 8 else 0)
    ax.set_yscale("log")
    ax.set_ylabel("items (log scale)")
    ax.set_title(f"{card['database']}: {card.get('split_paradigm', card['split'])}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_strip(time_s, signal, marks_s, labels, title: str, path: Path) -> Path:
    """A strip of raw signal with the beat positions and their labels."""
    fig, ax = plt.subplots(figsize=(10 if time_s[-1] > 2 else 5, 3))
    ax.plot(time_s, signal, lw=0.8, color="black")
    for position, label in zip(marks_s, labels or [""] * len(marks_s)):
        ax.axvline(position, color="tab:red", lw=0.5, alpha=0.6)
        ax.text(position, ax.get_ylim()[1], label, fontsize=7, ha="center", va="bottom")
    ax.set_xlabel("time in the strip (s)")
    ax.set_ylabel("mV")
    ax.set_title(title, fontsize=9, pad=14)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_input(item, label: str, path: Path) -> Path:
    """One item as the model sees it: a line for one channel, an image for several."""
    item = np.asarray(item)
    fig, ax = plt.subplots(figsize=(6, 3))
    if item.shape[0] == 1:
        ax.plot(item[0], lw=0.8)
        ax.set_xlabel("step")
    else:
        image = ax.imshow(item, aspect="auto", origin="lower")
        fig.colorbar(image, ax=ax)
        ax.set_xlabel("frame")
        ax.set_ylabel("channel (frequency bin)")
    ax.set_title(f"one training input ({label})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_reconstructions(examples: list[dict], threshold: float | None, path: Path) -> Path:
    """Autoencoder test beats: input (black) and reconstruction (red), normal row above abnormal.

    Every panel is titled with its anomaly score; a score at or above ``threshold`` (chosen on
    validation) is flagged abnormal, in red when that call is wrong.
    """
    kinds = sorted({e["abnormal"] for e in examples}) or [0]
    columns = max([sum(e["abnormal"] == k for e in examples) for k in kinds] + [1])
    fig, axes = plt.subplots(len(kinds), columns, figsize=(3 * columns, 2.2 * len(kinds)),
                             squeeze=False, sharey=True)
    for ax in axes.flat:
        ax.axis("off")
    for row, kind in enumerate(kinds):
        for column, example in enumerate(e for e in examples if e["abnormal"] == kind):
            ax = axes[row, column]
            ax.axis("on")
            for channel in range(np.asarray(example["input"]).shape[0]):
                ax.plot(example["input"][channel], lw=0.9, color="black",
                        label="input" if channel == 0 else None)
                ax.plot(example["reconstruction"][channel], lw=0.9, color="tab:red", ls="--",
                        label="reconstruction" if channel == 0 else None)
            flagged = threshold is not None and example["score"] >= threshold
            ax.set_title(f"{'abnormal' if kind else 'normal'}: score {example['score']:.3f}"
                         + (" (flagged)" if flagged else ""), fontsize=8,
                         color="red" if threshold is not None and flagged != bool(kind) else "black")
            ax.set_xticks([])
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_anomaly_scores(scores: list[float], abnormal: list[int], threshold: float | None,
                        path: Path) -> Path:
    """Histograms of the test anomaly scores of normal and abnormal beats, and the threshold."""
    scores, abnormal = np.asarray(scores), np.asarray(abnormal)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(scores, bins=40)
    for kind, name, colour in ((0, "normal", "tab:blue"), (1, "abnormal", "tab:red")):
        if (abnormal == kind).any():
            ax.hist(scores[abnormal == kind], bins=bins, alpha=0.6, color=colour,
                    label=f"{name} ({int((abnormal == kind).sum())})")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("anomaly score (reconstruction error)")
    ax.set_ylabel("test beats")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_per_record(rows: list[dict], classes: list[str], path: Path) -> Path:
    """Per test record: its reference beats of each class (bars, log scale) and each class's
    sensitivity there (dots), so a figure carried by one record shows as such."""
    fig, (beats, sensitivity) = plt.subplots(2, 1, figsize=(max(6.0, 0.35 * len(rows) + 2), 5),
                                             sharex=True)
    x = np.arange(len(rows))
    width = 0.8 / len(classes)
    for offset, name in enumerate(classes):
        counts = [row[f"{name}_beats"] for row in rows]
        beats.bar(x + offset * width, counts, width, label=name)
        values = [row[f"{name}_Se"] if row[f"{name}_Se"] != "" else np.nan for row in rows]
        sensitivity.plot(x + offset * width, values, "o", label=name, markersize=4)
    beats.set_yscale("log")
    beats.set_ylabel("reference beats")
    beats.legend(fontsize=7, ncol=len(classes))
    sensitivity.set_ylabel("sensitivity")
    sensitivity.set_ylim(-0.05, 1.05)
    sensitivity.set_xticks(x + 0.4 - width / 2, [row["record"] for row in rows], rotation=90,
                           fontsize=7)
    beats.set_title("test records: beats per class and sensitivity per class", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
