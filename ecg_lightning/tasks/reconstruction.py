"""The reconstruction LightningModule: an autoencoder trained to copy normal beats.

The ``net`` maps ``[batch, channels, time]`` to a reconstruction of the same shape
(``models/autoencoder.py``). The ``loss`` is elementwise (``loss=l1``: ``torch.nn.L1Loss``,
``loss=l2``: ``torch.nn.MSELoss``, both with ``reduction: none``); its mean over an item's
samples is the item's **anomaly score**, and the batch mean of the scores is the training loss
(``train/loss``, ``val/loss``, ``test/loss``; ``val/loss`` is what the AE presets monitor).

Class 0 of the data is the normal class and every other class is abnormal, so the task reads
``data.label_scheme=anomaly`` (normal / abnormal) and the five ECG5000 classes alike. Which beats
train is the datamodule's choice (anomaly: normal beats only).

Metrics (torchmetrics): ``test/auroc``, normal against the rest, from the scores
(``BinaryAUROC``), with a bootstrap 95 % interval (``BootStrapper``: ``test/auroc_ci_low``,
``_ci_high``, ``_bootstrap_std``); ``val/auroc`` when the validation split holds abnormal beats.
torchmetrics reads binary scores outside [0, 1] as logits and applies a sigmoid, which ties
every large error at 1.0; the scores are mapped by s / (1 + s) in float64 first, which keeps
their order and so the AUROC.

Threshold: the ``threshold_percentile`` (default 95) of the validation split's **normal**
scores, chosen at the end of every validation epoch and kept in the buffer ``score_threshold``
(so each checkpoint carries its own). We do not reuse the G-mean search of ``metrics.py``:
it needs abnormal validation beats, which the anomaly protocol keeps out of training and
validation; the percentile needs none and sets the expected false-alarm rate on normal beats
(5 % at 95). At it, on the test split: ``test/sensitivity`` (abnormal beats flagged),
``test/specificity``, ``test/precision``, ``test/f1``, ``test/accuracy``,
``test/score_threshold``.

Report (``test_report``, written by ``ReconstructionTask.write_test_report`` with
:func:`write_test_report`): ``metrics_test.json``, ``test_scores.csv`` (every test item's
score and decision), ``reconstructions.png`` (inputs and reconstructions of normal and abnormal
test beats) and ``anomaly_scores.png`` (score histograms with the threshold).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

import lightning as L
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.aggregation import CatMetric
from torchmetrics.classification import (BinaryAccuracy, BinaryAUROC, BinaryConfusionMatrix,
                                         BinaryF1Score, BinaryPrecision, BinaryRecall,
                                         BinarySpecificity)
from torchmetrics.functional.classification import binary_auroc
from torchmetrics.wrappers import BootStrapper

from ecg_lightning.data.base import SIGNAL, TARGET
from ecg_lightning.metrics import CI_QUANTILES
from ecg_lightning.tasks.classification import ClassificationTask


def unit_scores(scores: torch.Tensor) -> torch.Tensor:
    """Non-negative scores -> [0, 1), order kept, so torchmetrics never applies its sigmoid."""
    scores = scores.double()
    return scores / (1.0 + scores)


class ReconstructionTask(L.LightningModule):
    def __init__(self, net: nn.Module, loss: nn.Module,
                 optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., object] | None = None,
                 class_names: list[str] | tuple[str, ...] = (), task: str = "multiclass",
                 scheduler_monitor: str = "val/loss", run_config: str | None = None,
                 bootstrap_resamples: int = 200, data_facts: dict | None = None,
                 threshold_percentile: float = 95.0, examples_per_class: int = 3) -> None:
        super().__init__()
        if getattr(loss, "reduction", None) != "none":
            raise ValueError(f"ReconstructionTask needs an elementwise loss (loss=l1 or loss=l2, "
                             f"reduction: none), got {type(loss).__name__} with reduction "
                             f"{getattr(loss, 'reduction', None)!r}")
        if task != "multiclass" or len(class_names) < 2:
            raise ValueError(f"ReconstructionTask needs single-label data whose class 0 is the "
                             f"normal class; got task={task!r}, classes {list(class_names)}")
        if not 0 < threshold_percentile <= 100:
            raise ValueError(f"model.threshold_percentile={threshold_percentile} must be in (0, 100]")
        # Plain values only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = list(class_names)
        self.register_buffer("score_threshold", torch.tensor(float("nan")))
        # NaN scores (a diverged model) must fail loudly, not be dropped from the states.
        self.val_scores, self.val_abnormal = CatMetric(nan_strategy="error"), CatMetric()
        self.test_scores, self.test_abnormal = CatMetric(nan_strategy="error"), CatMetric()
        self.test_auroc = BinaryAUROC()
        # Built in on_test_start: its 200 resampled copies would otherwise be walked by every
        # module traversal while training (see ClassificationTask).
        self.test_auroc_bootstrap: BootStrapper | None = None
        self.test_at_threshold = MetricCollection({
            "accuracy": BinaryAccuracy(), "sensitivity": BinaryRecall(),
            "specificity": BinarySpecificity(), "precision": BinaryPrecision(),
            "f1": BinaryF1Score()})
        self.test_confusion = BinaryConfusionMatrix()
        self.test_examples: list[dict] = []
        self.test_report: dict | None = None  # filled at the end of testing, read by run.py

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The reconstruction of the batch's ``signal``."""
        return self.net(batch[SIGNAL])

    def _step(self, batch, stage: str):
        """Reconstruct, score every item, log the stage's loss; (scores, abnormal, reconstruction)."""
        x, y = batch[SIGNAL], batch[TARGET]
        reconstruction = self(batch)
        scores = self.loss(reconstruction, x).flatten(1).mean(dim=1)
        self.log(f"{stage}/loss", scores.mean(), on_step=stage == "train", on_epoch=True,
                 prog_bar=stage != "test", batch_size=len(x), sync_dist=stage != "train")
        return scores, (y != 0).long(), reconstruction

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        scores, _, _ = self._step(batch, "train")
        return scores.mean()

    def validation_step(self, batch, batch_idx: int) -> None:
        scores, abnormal, _ = self._step(batch, "val")
        self.val_scores.update(scores)
        self.val_abnormal.update(abnormal)

    def on_validation_epoch_end(self) -> None:
        scores, abnormal = self.val_scores.compute(), self.val_abnormal.compute()
        self.val_scores.reset()
        self.val_abnormal.reset()
        normal = scores[abnormal == 0]
        if normal.numel():
            percentile = self.hparams.threshold_percentile / 100.0
            self.score_threshold.fill_(float(torch.quantile(normal.double(), percentile)))
            self.log("val/score_threshold", self.score_threshold)
        if 0 < int(abnormal.sum()) < len(abnormal):  # AUROC needs both kinds of beats
            self.log("val/auroc", binary_auroc(unit_scores(scores), abnormal))

    def on_test_start(self) -> None:
        self.test_auroc_bootstrap = BootStrapper(
            BinaryAUROC(), num_bootstraps=self.hparams.bootstrap_resamples,
            quantile=torch.tensor(CI_QUANTILES), sampling_strategy="multinomial").to(self.device)

    def test_step(self, batch, batch_idx: int) -> None:
        scores, abnormal, reconstruction = self._step(batch, "test")
        self.test_scores.update(scores)
        self.test_abnormal.update(abnormal)
        self.test_auroc.update(unit_scores(scores), abnormal)
        self.test_auroc_bootstrap.update(unit_scores(scores), abnormal)
        flagged = (scores >= self.score_threshold).long()  # a NaN threshold flags nothing
        self.test_at_threshold.update(flagged, abnormal)
        self.test_confusion.update(flagged, abnormal)
        self._keep_examples(batch[SIGNAL], reconstruction, scores, abnormal)

    def _keep_examples(self, x, reconstruction, scores, abnormal) -> None:
        """The first ``examples_per_class`` normal and abnormal test beats, for the figure."""
        for index in range(len(x)):
            kind = int(abnormal[index])
            if sum(e["abnormal"] == kind for e in self.test_examples) < self.hparams.examples_per_class:
                self.test_examples.append({
                    "input": x[index].cpu().numpy(), "abnormal": kind,
                    "reconstruction": reconstruction[index].detach().cpu().numpy(),
                    "score": float(scores[index])})

    def on_test_epoch_end(self) -> None:
        scores, abnormal = self.test_scores.compute(), self.test_abnormal.compute()
        threshold = float(self.score_threshold)
        metrics = {"test/score_threshold": threshold} if threshold == threshold else {}
        if 0 < int(abnormal.sum()) < len(abnormal):  # else AUROC is undefined: not logged
            bootstrap = self.test_auroc_bootstrap.compute()
            low, high = (float(q) for q in bootstrap["quantile"])
            metrics.update({"test/auroc": float(self.test_auroc.compute()),
                            "test/auroc_ci_low": low, "test/auroc_ci_high": high,
                            "test/auroc_bootstrap_std": float(bootstrap["std"])})
        if threshold == threshold:
            metrics.update({f"test/{name}": float(value)
                            for name, value in self.test_at_threshold.compute().items()})
        self.log_dict(metrics)
        self.test_report = {
            "kind": "reconstruction",
            "normal_class": self.class_names[0],
            "metrics": {"test/loss": float(scores.mean()), **metrics},
            "threshold": {"value": threshold if threshold == threshold else None,
                          "method": f"{self.hparams.threshold_percentile:g}th percentile of the "
                                    "validation split's normal-beat scores"},
            "confusion": {"rows": "true normal, abnormal", "columns": "called normal, abnormal",
                          "counts": self.test_confusion.compute().cpu().tolist()},
            "items": {"normal": int((abnormal == 0).sum()), "abnormal": int(abnormal.sum())},
            "scores": scores.cpu().tolist(), "abnormal": abnormal.cpu().tolist(),
            "examples": self.test_examples,
        }
        for metric in (self.test_scores, self.test_abnormal, self.test_auroc,
                       self.test_auroc_bootstrap, self.test_at_threshold, self.test_confusion):
            metric.reset()
        self.test_examples = []

    # The optimiser and scheduler come from the config exactly as for classification.
    configure_optimizers = ClassificationTask.configure_optimizers

    def write_test_report(self, output_dir) -> list[Path]:
        """Write the last test's report into ``output_dir`` (see the module docstring)."""
        if self.test_report is None:
            raise RuntimeError("no test report to write: run trainer.test(...) first")
        return write_test_report(self.test_report, Path(output_dir))  # the module's function


def write_test_report(report: dict, output_dir: Path) -> list[Path]:
    """The reconstruction test report as files (see the module docstring); returns their paths."""
    from ecg_lightning.plots import plot_anomaly_scores, plot_reconstructions

    output_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = output_dir / "metrics_test.json"
    metrics_file.write_text(json.dumps({k: v for k, v in report.items()
                                        if k not in ("scores", "abnormal", "examples")}, indent=1))
    scores_file = output_dir / "test_scores.csv"
    threshold = report["threshold"]["value"]
    with scores_file.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["test_item", "abnormal", "score", "flagged"])
        for index, (score, abnormal) in enumerate(zip(report["scores"], report["abnormal"])):
            writer.writerow([index, abnormal, score,
                             "" if threshold is None else int(score >= threshold)])
    return [metrics_file, scores_file,
            plot_reconstructions(report["examples"], threshold, output_dir / "reconstructions.png"),
            plot_anomaly_scores(report["scores"], report["abnormal"], threshold,
                                output_dir / "anomaly_scores.png")]
