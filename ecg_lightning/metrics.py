"""Classification metrics, all from torchmetrics, under one naming scheme.

Names: ``<stage>/accuracy``, ``<stage>/f1_macro``, ``<stage>/f1_weighted``,
``<stage>/auroc_macro`` and per class ``<stage>/<metric>/<class>`` for ``f1``, ``precision``,
``sensitivity``, ``specificity`` and ``auroc``.

Macro F1 (torchmetrics) averages over the classes that occur in the targets or the
predictions; a class seen in neither is left out rather than counted as 0.

AUROC: torchmetrics gives 0.0 (not NaN) for a class without positives, and its macro average
then counts that 0. We therefore compute AUROC per class and average over the classes present
in the split; absent classes get no per-class AUROC and are listed in the test report.

Class names that are not valid in a metric name (MIT-BIH symbols such as ``/`` or ``"`` under
``label_scheme=symbols``) are logged under a readable alias, see ``metric_key``.
"""

from __future__ import annotations

import re

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (AUROC, Accuracy, ConfusionMatrix, F1Score, Precision,
                                         Recall, Specificity)

PER_CLASS = ("f1", "precision", "sensitivity", "specificity", "auroc")
# MIT-BIH annotation symbols that MLflow refuses in a metric name (or that collide once cleaned).
SYMBOL_ALIASES = {"/": "paced", "+": "rhythm_change", "~": "noise_change", "!": "flutter_wave",
                  '"': "comment", "|": "isolated_qrs_artifact", "[": "vf_onset", "]": "vf_end"}


def metric_key(class_name: str) -> str:
    """A class name usable as the last part of a metric name (MLflow: letters, digits, _-. )."""
    if re.fullmatch(r"[A-Za-z0-9_.\- ]+", class_name):
        return class_name
    return SYMBOL_ALIASES.get(class_name, "sym_" + "_".join(f"{ord(c):x}" for c in class_name))


def classification_metrics(num_classes: int, task: str = "multiclass") -> MetricCollection:
    """The metric collection evaluated on the validation and test splits."""
    size = {"num_classes": num_classes} if task == "multiclass" else {"num_labels": num_classes}
    return MetricCollection({
        "accuracy": Accuracy(task=task, average="micro", **size),
        "f1_macro": F1Score(task=task, average="macro", **size),
        "f1_weighted": F1Score(task=task, average="weighted", **size),
        "f1": F1Score(task=task, average="none", **size),
        "precision": Precision(task=task, average="none", **size),
        "sensitivity": Recall(task=task, average="none", **size),
        "specificity": Specificity(task=task, average="none", **size),
        "auroc": AUROC(task=task, average="none", **size),
        "confusion": ConfusionMatrix(task=task, **size),
    })


def class_support(results: dict[str, torch.Tensor], task: str) -> torch.Tensor:
    """Number of true items per class, read off the confusion matrix."""
    confusion = results["confusion"]
    if task == "multiclass":
        return confusion.sum(dim=1)
    return confusion[:, 1, :].sum(dim=1)  # multilabel: [labels, 2, 2] -> positives per label


def flatten(stage: str, results: dict[str, torch.Tensor], class_names: list[str],
            task: str = "multiclass") -> dict[str, float]:
    """Scalar metrics named ``<stage>/...`` from a computed collection (see module doc)."""
    present = class_support(results, task) > 0
    flat = {f"{stage}/{name}": float(results[name]) for name in ("accuracy", "f1_macro", "f1_weighted")}
    auroc = results["auroc"]
    flat[f"{stage}/auroc_macro"] = float(auroc[present].mean()) if present.any() else float("nan")
    for metric in PER_CLASS:
        for index, name in enumerate(class_names):
            if metric in ("auroc", "sensitivity") and not present[index]:
                continue  # undefined without positives
            flat[f"{stage}/{metric}/{metric_key(name)}"] = float(results[metric][index])
    return flat


def absent_classes(results: dict[str, torch.Tensor], class_names: list[str], task: str) -> list[str]:
    present = class_support(results, task) > 0
    return [name for name, here in zip(class_names, present.tolist()) if not here]
