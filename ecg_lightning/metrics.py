"""Classification metrics, all from torchmetrics, under one naming scheme.

Names: ``<stage>/accuracy``, ``<stage>/f1_macro``, ``<stage>/f1_weighted``,
``<stage>/auroc_macro`` and per class ``<stage>/<metric>/<class>`` for ``f1``, ``precision``,
``sensitivity``, ``specificity`` and ``auroc``.

Macro F1 (torchmetrics) averages over the classes that occur in the targets or the
predictions; a class seen in neither is left out rather than counted as 0.

AUROC: torchmetrics gives 0.0 (not NaN) for a class without positives, and its macro average
then counts that 0. We therefore compute AUROC per class and average over the classes present
in the split; absent classes get no per-class AUROC and are listed in the test report.

Per-class G-mean thresholds: on the validation split, for every class (one-vs-rest for
multiclass data), the threshold along its ROC curve (torchmetrics ``ROC``) that maximises
sqrt(TPR x (1 - FPR)); the test split is then scored at these thresholds
(``test/gmean_threshold/<class>``, ``test/sensitivity_at_gmean/<class>``,
``test/specificity_at_gmean/<class>``, ``test/{tp,fn,fp,tn}_at_gmean/<class>``; MLflow refuses
``@`` in metric names, hence ``_at_``). Counts at the thresholds come from torchmetrics
``MultilabelStatScores``.

Bootstrap confidence intervals of the headline test metrics come from torchmetrics'
``BootStrapper`` (resampling within every test batch, multinomial): 2.5 % and 97.5 %
quantiles as ``test/<metric>_ci_low`` / ``_ci_high``.

Class names that are not valid in a metric name (MIT-BIH symbols such as ``/`` or ``"`` under
``label_scheme=symbols``) are logged under a readable alias, see ``metric_key``.
"""

from __future__ import annotations

import re

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (AUROC, ROC, Accuracy, ConfusionMatrix, F1Score,
                                         MultilabelStatScores, Precision, Recall, Specificity)
from torchmetrics.wrappers import BootStrapper

PER_CLASS = ("f1", "precision", "sensitivity", "specificity", "auroc")
BOOTSTRAPPED = ("accuracy", "f1_macro", "f1_weighted")
CI_QUANTILES = (0.025, 0.975)
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


# ---------------------------------------------------------------------------- G-mean thresholds
def roc_curves(num_classes: int, task: str = "multiclass") -> ROC:
    """Per-class ROC curves (one-vs-rest for multiclass), from which thresholds are chosen."""
    size = {"num_classes": num_classes} if task == "multiclass" else {"num_labels": num_classes}
    return ROC(task=task, **size)


def gmean_thresholds(fpr: list[torch.Tensor], tpr: list[torch.Tensor],
                     thresholds: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class, the ROC threshold that maximises the G-mean sqrt(TPR x (1 - FPR)).

    Takes the per-class curves of torchmetrics ``ROC``; returns ``(thresholds, gmeans)``.
    A class without positives (its TPR never leaves 0) gets NaN for both.
    """
    chosen, best = [], []
    for class_fpr, class_tpr, class_thresholds in zip(fpr, tpr, thresholds):
        if class_tpr.numel() == 0 or float(class_tpr[-1]) == 0.0:
            chosen.append(float("nan"))
            best.append(float("nan"))
            continue
        gmean = torch.sqrt(class_tpr * (1.0 - class_fpr))
        index = int(torch.argmax(gmean))
        chosen.append(float(class_thresholds[index]))
        best.append(float(gmean[index]))
    return torch.tensor(chosen), torch.tensor(best)


def threshold_stats(num_classes: int) -> MultilabelStatScores:
    """TP, FP, TN, FN per class of one-vs-rest decisions already made at the thresholds."""
    return MultilabelStatScores(num_labels=num_classes, threshold=0.5, average=None)


def decisions_at(probs: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """One-vs-rest decisions: class ``c`` is called when its probability reaches its threshold."""
    return (probs >= thresholds.to(probs)).int()


def one_vs_rest(targets: torch.Tensor, num_classes: int, task: str) -> torch.Tensor:
    return torch.nn.functional.one_hot(targets, num_classes) if task == "multiclass" else targets.int()


def flatten_thresholds(stage: str, thresholds: torch.Tensor, stats: torch.Tensor,
                       class_names: list[str]) -> tuple[dict[str, float], list[dict]]:
    """Metrics at the G-mean thresholds, and the same as rows for thresholds.json / CSV.

    ``stats`` is ``MultilabelStatScores``' ``[classes, 5]``: TP, FP, TN, FN, support.
    """
    flat, rows = {}, []
    for index, name in enumerate(class_names):
        tp, fp, tn, fn, _ = (int(v) for v in stats[index])
        sensitivity = tp / (tp + fn) if tp + fn else float("nan")
        specificity = tn / (tn + fp) if tn + fp else float("nan")
        threshold = float(thresholds[index])
        rows.append({"class": name, "threshold": None if threshold != threshold else threshold,
                     "tp": tp, "fn": fn, "fp": fp, "tn": tn,
                     "sensitivity": sensitivity, "specificity": specificity})
        key = metric_key(name)
        if threshold == threshold:  # NaN: no positives in validation, nothing was chosen
            flat[f"{stage}/gmean_threshold/{key}"] = threshold
        for metric, value in (("tp", tp), ("fn", fn), ("fp", fp), ("tn", tn)):
            flat[f"{stage}/{metric}_at_gmean/{key}"] = float(value)
        if sensitivity == sensitivity:
            flat[f"{stage}/sensitivity_at_gmean/{key}"] = sensitivity
        if specificity == specificity:
            flat[f"{stage}/specificity_at_gmean/{key}"] = specificity
    return flat, rows


# ---------------------------------------------------------------------------- bootstrap
def bootstrapped_metrics(num_classes: int, task: str, resamples: int) -> torch.nn.ModuleDict:
    """BootStrapper-wrapped headline metrics (see the module docstring); none for 0 resamples
    (``predict``: no test metrics, and building 200 resamples costs about 0.7 s)."""
    if resamples == 0:
        return torch.nn.ModuleDict()
    size = {"num_classes": num_classes} if task == "multiclass" else {"num_labels": num_classes}
    base = {"accuracy": Accuracy(task=task, average="micro", **size),
            "f1_macro": F1Score(task=task, average="macro", **size),
            "f1_weighted": F1Score(task=task, average="weighted", **size)}
    return torch.nn.ModuleDict({
        name: BootStrapper(metric, num_bootstraps=resamples, quantile=torch.tensor(CI_QUANTILES),
                           sampling_strategy="multinomial")
        for name, metric in base.items()})


def flatten_bootstrap(stage: str, results: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
    flat = {}
    for name, result in results.items():
        low, high = (float(q) for q in result["quantile"])
        flat.update({f"{stage}/{name}_ci_low": low, f"{stage}/{name}_ci_high": high,
                     f"{stage}/{name}_bootstrap_std": float(result["std"])})
    return flat


# ---------------------------------------------------------------------------- scored classes, records
# AAMI EC57 scores the classes N, S, V and F: a beat whose reference label is Q (unclassifiable,
# 8 beats in DS1 and 7 in DS2) is left out of the statistics, and a decision is the most
# probable of the scored classes. These figures sit beside the five-class ones under
# ``<stage>/nsvf/...`` (``nsvf`` names the classes scored, whatever the label scheme calls them).
SCORED_PREFIX = "nsvf"
SCORED_METRICS = ("accuracy", "f1_macro")
SCORED_PER_CLASS = ("sensitivity", "precision", "f1")


def scored_decisions(probs: torch.Tensor, targets: torch.Tensor, scored: list[int]
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(kept, target, predicted)``: the items whose target is scored, their target and the
    argmax over the scored classes, both as positions in ``scored``."""
    scored_t = torch.as_tensor(scored, device=targets.device)
    kept = torch.isin(targets, scored_t)
    position = torch.full((probs.shape[1],), -1, dtype=torch.long, device=targets.device)
    position[scored_t] = torch.arange(len(scored), device=targets.device)
    return kept, position[targets[kept]], probs[kept][:, scored_t].argmax(dim=1)


def scored_metrics(target: torch.Tensor, predicted: torch.Tensor, num: int) -> dict[str, torch.Tensor]:
    """Accuracy, macro F1 and per-class sensitivity / precision (+P) / F1 (torchmetrics)."""
    from torchmetrics.functional.classification import (multiclass_accuracy, multiclass_f1_score,
                                                        multiclass_precision, multiclass_recall)
    if len(target) == 0:
        return {}
    return {"accuracy": multiclass_accuracy(predicted, target, num, average="micro"),
            "f1_macro": multiclass_f1_score(predicted, target, num, average="macro"),
            "sensitivity": multiclass_recall(predicted, target, num, average="none"),
            "precision": multiclass_precision(predicted, target, num, average="none"),
            "f1": multiclass_f1_score(predicted, target, num, average="none")}


def flatten_scored(stage: str, results: dict[str, torch.Tensor], names: list[str],
                   target: torch.Tensor, suffix: str = "") -> dict[str, float]:
    """``<stage>/nsvf/<metric>[suffix]`` and ``<stage>/nsvf/<metric>/<class>[suffix]``; a
    class without reference beats has no sensitivity, one without calls no precision."""
    flat = {f"{stage}/{SCORED_PREFIX}/{name}{suffix}": float(results[name])
            for name in SCORED_METRICS if name in results}
    support = torch.bincount(target, minlength=len(names))
    for metric in SCORED_PER_CLASS:
        if metric not in results:
            continue
        for index, name in enumerate(names):
            if metric == "sensitivity" and not support[index]:
                continue
            flat[f"{stage}/{SCORED_PREFIX}/{metric}/{metric_key(name)}{suffix}"] = float(
                results[metric][index])
    return flat


def record_bootstrap(target: torch.Tensor, predicted: torch.Tensor, record: torch.Tensor,
                     names: list[str], resamples: int, seed: int = 0,
                     stage: str = "test") -> dict[str, float]:
    """Record-level (cluster) bootstrap of the scored metrics: whole records are drawn with
    replacement, as many as there are, and every beat of a drawn record counts; 2.5 % and
    97.5 % quantiles as ``..._record_ci_low`` / ``_record_ci_high``.

    Beats of one record share a patient, a lead placement and a noise level: they are not
    independent, and a beat-level bootstrap (which resamples beats) gives intervals far too
    narrow for a claim about new patients.
    """
    records = torch.unique(record)
    if resamples == 0 or len(records) < 2:
        return {}
    members = [torch.nonzero(record == r).flatten() for r in records]
    generator = torch.Generator().manual_seed(seed)
    draws = {}
    for _ in range(resamples):
        chosen = torch.randint(len(records), (len(records),), generator=generator)
        index = torch.cat([members[int(c)] for c in chosen])
        for key, value in flatten_scored(stage, scored_metrics(target[index], predicted[index],
                                                            len(names)), names,
                                         target[index]).items():
            draws.setdefault(key, []).append(value)
    flat = {}
    for key, values in draws.items():
        low, high = torch.quantile(torch.tensor(values, dtype=torch.float64),
                                   torch.tensor(CI_QUANTILES, dtype=torch.float64))
        flat[f"{key}_record_ci_low"], flat[f"{key}_record_ci_high"] = float(low), float(high)
    return flat


def per_record_rows(target: torch.Tensor, predicted: torch.Tensor, record: torch.Tensor,
                    record_names: list[str], names: list[str]) -> list[dict]:
    """One row per record: beats per reference class, then each class's Se and +P there
    (``scored_metrics``; empty where undefined: no reference beat of the class, or no call)."""
    rows = []
    for code in torch.unique(record).tolist():
        mine = record == code
        t, p = target[mine], predicted[mine]
        results = scored_metrics(t, p, len(names))
        support = torch.bincount(t, minlength=len(names))
        called = torch.bincount(p, minlength=len(names))
        row = {"record": record_names[code] if code < len(record_names) else str(code),
               "beats": int(mine.sum())}
        for index, name in enumerate(names):
            row[f"{name}_beats"] = int(support[index])
            row[f"{name}_Se"] = (round(float(results["sensitivity"][index]), 4)
                                 if support[index] else "")
            row[f"{name}_+P"] = (round(float(results["precision"][index]), 4)
                                 if called[index] else "")
        rows.append(row)
    return rows
