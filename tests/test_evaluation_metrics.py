"""Every logged test figure against scikit-learn on the same predictions, and the G-mean thresholds.

The unit tests feed synthetic probabilities; the end-to-end test trains briefly on mitdb, reloads
the best checkpoint (``weights_only=True``), predicts the validation and test splits itself and
recomputes with scikit-learn what the run logged in ``metrics_test.json`` and ``thresholds.json``.
"""

from __future__ import annotations

import csv
import json
import math

import lightning as L
import numpy as np
import pytest
import torch
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, precision_score,
                             recall_score, roc_auc_score, roc_curve)
from torchmetrics.wrappers import BootStrapper

from ecg_lightning.metrics import classification_metrics, flatten, gmean_thresholds, roc_curves
from ecg_lightning.run import build, train
from ecg_lightning.summary import compose_config

CLASSES = ["N", "S", "V", "F", "Q"]


def sklearn_gmean_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    fpr, tpr, thresholds = roc_curve(y_true, score)
    return float(thresholds[np.argmax(np.sqrt(tpr * (1 - fpr)))])


def synthetic(n=400, k=5, seed=0):
    rng = np.random.default_rng(seed)
    targets = rng.choice(k, size=n, p=[0.6, 0.15, 0.15, 0.1, 0.0])  # class Q absent
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[targets]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs.astype(np.float32), targets


def test_gmean_thresholds_match_sklearn_roc_curve():
    probs, targets = synthetic()
    roc = roc_curves(5)
    roc.update(torch.from_numpy(probs), torch.from_numpy(targets))
    thresholds, gmeans = gmean_thresholds(*roc.compute())
    for c in range(4):
        expected = sklearn_gmean_threshold(targets == c, probs[:, c])
        assert thresholds[c].item() == pytest.approx(expected, abs=1e-6)
    assert math.isnan(thresholds[4]) and math.isnan(gmeans[4])  # no positives: nothing chosen


def test_multilabel_thresholds_match_sklearn():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 2, size=(300, 4))
    probs = 1 / (1 + np.exp(-(rng.normal(size=(300, 4)) + 2 * targets - 1)))
    roc = roc_curves(4, task="multilabel")
    roc.update(torch.from_numpy(probs).float(), torch.from_numpy(targets))
    thresholds, _ = gmean_thresholds(*roc.compute())
    for c in range(4):
        expected = sklearn_gmean_threshold(targets[:, c], probs[:, c].astype(np.float32))
        assert thresholds[c].item() == pytest.approx(expected, abs=1e-6)


def assert_matches_sklearn(flat: dict, probs: np.ndarray, targets: np.ndarray, stage="test"):
    """The logged multiclass figures, recomputed with scikit-learn."""
    predicted = probs.argmax(axis=1)
    labels = list(range(len(CLASSES)))
    present = [c for c in labels if (targets == c).any()]
    seen = sorted(set(targets) | set(predicted))  # torchmetrics' macro F1 skips unseen classes
    assert flat[f"{stage}/accuracy"] == pytest.approx(accuracy_score(targets, predicted), abs=1e-5)
    assert flat[f"{stage}/f1_macro"] == pytest.approx(
        f1_score(targets, predicted, labels=seen, average="macro", zero_division=0), abs=1e-5)
    assert flat[f"{stage}/f1_weighted"] == pytest.approx(
        f1_score(targets, predicted, labels=labels, average="weighted", zero_division=0), abs=1e-5)
    f1 = f1_score(targets, predicted, labels=labels, average=None, zero_division=0)
    precision = precision_score(targets, predicted, labels=labels, average=None, zero_division=0)
    recall = recall_score(targets, predicted, labels=labels, average=None, zero_division=0)
    confusion = confusion_matrix(targets, predicted, labels=labels)
    aurocs = []
    for c, name in enumerate(CLASSES):
        negatives = confusion.sum() - confusion[c].sum()
        true_negatives = negatives - (confusion[:, c].sum() - confusion[c, c])
        assert flat[f"{stage}/f1/{name}"] == pytest.approx(f1[c], abs=1e-5)
        assert flat[f"{stage}/precision/{name}"] == pytest.approx(precision[c], abs=1e-5)
        assert flat[f"{stage}/specificity/{name}"] == pytest.approx(true_negatives / negatives, abs=1e-5)
        if c in present:
            assert flat[f"{stage}/sensitivity/{name}"] == pytest.approx(recall[c], abs=1e-5)
            aurocs.append(roc_auc_score(targets == c, probs[:, c]))
            assert flat[f"{stage}/auroc/{name}"] == pytest.approx(aurocs[-1], abs=1e-4)
        else:
            assert f"{stage}/auroc/{name}" not in flat  # undefined without positives
    assert flat[f"{stage}/auroc_macro"] == pytest.approx(np.mean(aurocs), abs=1e-4)


def test_classification_metrics_match_sklearn():
    probs, targets = synthetic()
    metrics = classification_metrics(5)
    metrics.update(torch.from_numpy(probs), torch.from_numpy(targets))
    assert_matches_sklearn(flatten("test", metrics.compute(), CLASSES), probs, targets)


# ---------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, mitdb_cache_dir):
    root = tmp_path_factory.mktemp("evaluation")
    cfg = compose_config(["debug=limit", "logger=csv", f"paths.root_dir={root}",
                          f"paths.output_dir={root}/run", f"paths.cache_dir={mitdb_cache_dir}",
                          "callbacks.progress_bar.refresh_rate=0", "bootstrap_resamples=50",
                          "data.split=intra_patient", "data.batch_size=512",
                          "trainer.limit_val_batches=4", "trainer.limit_test_batches=4"])
    train(cfg)
    return cfg, root / "run"


def predictions(model, loader, batches: int) -> tuple[np.ndarray, np.ndarray]:
    probs, targets = [], []
    with torch.no_grad():
        for index, batch in enumerate(loader):
            if index == batches:
                break
            probs.append(model.probabilities(model(batch)).numpy())
            targets.append(batch["target"].numpy())
    return np.concatenate(probs), np.concatenate(targets)


def test_logged_figures_and_thresholds_match_sklearn(trained_run):
    cfg, run_dir = trained_run
    report = json.loads((run_dir / "metrics_test.json").read_text())
    thresholds = json.loads((run_dir / "thresholds.json").read_text())["classes"]
    assert (run_dir / "roc_curves.png").stat().st_size > 0
    with (run_dir / "thresholds.csv").open() as handle:
        assert [row["class"] for row in csv.DictReader(handle)] == CLASSES

    datamodule, model, _, _ = build(cfg)
    best = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    checkpoint = torch.load(best, weights_only=True)  # plain values only: no pickled objects
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    datamodule.setup("test")

    test_probs, test_targets = predictions(model, datamodule.test_dataloader(), 4)
    assert_matches_sklearn(report["metrics"], test_probs, test_targets)

    val_probs, val_targets = predictions(model, datamodule.val_dataloader(), 4)
    for c, row in enumerate(thresholds):
        assert row["class"] == CLASSES[c]
        if not (val_targets == c).any():
            assert row["threshold"] is None
            continue
        assert row["threshold"] == pytest.approx(
            sklearn_gmean_threshold(val_targets == c, val_probs[:, c]), abs=1e-6)
        called = test_probs[:, c] >= row["threshold"]
        positive = test_targets == c
        assert (row["tp"], row["fn"], row["fp"], row["tn"]) == (
            int((called & positive).sum()), int((~called & positive).sum()),
            int((called & ~positive).sum()), int((~called & ~positive).sum()))
        assert report["metrics"][f"test/gmean_threshold/{CLASSES[c]}"] == pytest.approx(row["threshold"])


def test_bootstrap_interval_brackets_the_point_estimate(trained_run):
    _, run_dir = trained_run
    metrics = json.loads((run_dir / "metrics_test.json").read_text())["metrics"]
    for name in ("accuracy", "f1_macro", "f1_weighted"):
        low, high = metrics[f"test/{name}_ci_low"], metrics[f"test/{name}_ci_high"]
        assert 0.0 <= low <= high <= 1.0
        assert low - 0.02 <= metrics[f"test/{name}"] <= high + 0.02


def test_bootstrap_copies_exist_only_while_testing(trained_run):
    """The 200-resample BootStrappers are hundreds of child metrics: built in ``on_test_start``,
    so that no training-time traversal (EMA's update every step, Lightning's hooks) walks them."""
    cfg, _ = trained_run
    datamodule, model, *_ = build(cfg)
    assert not any(isinstance(module, BootStrapper) for module in model.modules())
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_test_batches=1, accelerator="cpu", devices=1)
    (logged,) = trainer.test(model, datamodule=datamodule, verbose=False)
    bootstraps = [m for m in model.modules() if isinstance(m, BootStrapper)]
    assert len(bootstraps) == 3 and all(b.num_bootstraps == 50 for b in bootstraps)
    assert logged["test/accuracy_ci_low"] <= logged["test/accuracy_ci_high"]
