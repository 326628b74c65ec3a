"""Metric names and values against scikit-learn; class weights as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from ecg_lightning.losses import BinaryCrossEntropy, CrossEntropy, class_weights
from ecg_lightning.metrics import absent_classes, classification_metrics, flatten

CLASSES = ["N", "S", "V", "F", "Q"]


def test_flattened_metrics_match_scikit_learn():
    """Class Q never occurs in the targets: no AUROC/sensitivity for it, macro AUROC without it."""
    rng = np.random.default_rng(0)
    targets = rng.choice(4, size=400, p=[0.7, 0.1, 0.15, 0.05])  # classes 0-3 only
    logits = rng.normal(size=(400, 5)) + 2.0 * np.eye(5)[targets]
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float32), dim=1)
    metrics = classification_metrics(5)
    metrics.update(probs, torch.tensor(targets))
    results = metrics.compute()
    flat = flatten("test", results, CLASSES)
    predicted = probs.argmax(1).numpy()

    assert flat["test/accuracy"] == pytest.approx(accuracy_score(targets, predicted), abs=1e-6)
    present = [0, 1, 2, 3]
    # Macro F1 averages over the classes seen in targets or predictions (Q is predicted at
    # times, so it counts with F1 = 0); a class seen in neither is left out.
    seen = sorted(set(targets) | set(predicted))
    assert flat["test/f1_macro"] == pytest.approx(
        f1_score(targets, predicted, labels=seen, average="macro", zero_division=0), abs=1e-5)
    per_class_f1 = f1_score(targets, predicted, labels=range(5), average=None, zero_division=0)
    per_class_precision = precision_score(targets, predicted, labels=range(5), average=None,
                                          zero_division=0)
    per_class_recall = recall_score(targets, predicted, labels=range(5), average=None,
                                    zero_division=0)
    aurocs = [roc_auc_score(targets == c, probs[:, c].numpy()) for c in present]
    for c in present:
        name = CLASSES[c]
        assert flat[f"test/f1/{name}"] == pytest.approx(per_class_f1[c], abs=1e-5)
        assert flat[f"test/precision/{name}"] == pytest.approx(per_class_precision[c], abs=1e-5)
        assert flat[f"test/sensitivity/{name}"] == pytest.approx(per_class_recall[c], abs=1e-5)
        assert flat[f"test/auroc/{name}"] == pytest.approx(aurocs[c], abs=1e-4)
    assert flat["test/auroc_macro"] == pytest.approx(np.mean(aurocs), abs=1e-4)
    assert "test/auroc/Q" not in flat and "test/sensitivity/Q" not in flat
    assert absent_classes(results, CLASSES, "multiclass") == ["Q"]


def test_balanced_weights_are_capped_and_zero_for_absent_classes():
    counts = [40132, 775, 2779, 400, 0]
    weights = class_weights(counts, "inverse", max_weight=10.0)
    expected = sum(counts) / (4 * np.array(counts[:4]))
    assert weights[:4].tolist() == pytest.approx(np.minimum(expected, 10.0).tolist(), rel=1e-5)
    assert weights[4] == 0
    assert class_weights(counts, "inverse_sqrt", 10.0)[0] == pytest.approx(expected[0] ** 0.5, rel=1e-5)
    assert class_weights(counts, "none", 10.0) is None
    with pytest.raises(ValueError, match="inverse_sqrt"):
        class_weights(counts, "balanced", 10.0)


def test_losses_accept_class_indices():
    target = torch.tensor([0, 1, 2, 3])
    logits = torch.randn(4, 5)
    counts = [40, 8, 6, 4, 2]
    assert CrossEntropy(counts, weighting="inverse", label_smoothing=0.1)(logits, target) > 0
    bce = BinaryCrossEntropy(counts, weighting="inverse")
    assert bce.pos_weight.tolist() == pytest.approx([min((60 - c) / c, 10.0) for c in counts])
    assert bce(logits, target) > 0
