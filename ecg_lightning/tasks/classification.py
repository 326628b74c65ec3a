"""The classification LightningModule: loss, metrics, optimiser and scheduler plumbing.

Any ``nn.Module`` that maps ``[batch, channels, time]`` (or the datamodule's inputs) to class
logits plugs in as ``net``. Multiclass (binary included: two classes) uses softmax
probabilities; multilabel uses one sigmoid per label. Papers that train differently
(late fusion, reconstruction) subclass this module.
"""

from __future__ import annotations

from typing import Callable

import lightning as L
import torch
from torch import nn

from ecg_lightning.metrics import absent_classes, classification_metrics, flatten


class ClassificationTask(L.LightningModule):
    def __init__(self, net: nn.Module, loss: nn.Module,
                 optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., object] | None = None,
                 class_names: list[str] | tuple[str, ...] = (), task: str = "multiclass",
                 scheduler_monitor: str = "val/loss", run_config: str | None = None) -> None:
        super().__init__()
        # Plain values only, so a checkpoint loads with torch.load(weights_only=True);
        # ``run_config`` is the resolved Hydra config (YAML text) that rebuilds net and data.
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = list(class_names)
        self.task = task
        # Training metrics accumulate over the epoch as it trains (dropout on, weights moving),
        # the usual "train accuracy"; validation and test see fixed weights.
        self.train_metrics = classification_metrics(len(class_names), task)
        self.val_metrics = classification_metrics(len(class_names), task)
        self.test_metrics = classification_metrics(len(class_names), task)
        self.test_report: dict | None = None  # filled at the end of testing, read by run.py

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1) if self.task == "multiclass" else torch.sigmoid(logits)

    def _step(self, batch, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True,
                 prog_bar=stage != "test", batch_size=len(y))
        return loss, self.probabilities(logits), y

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, probs, y = self._step(batch, "train")
        self.train_metrics.update(probs.detach(), y)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        _, probs, y = self._step(batch, "val")
        self.val_metrics.update(probs, y)

    def test_step(self, batch, batch_idx: int) -> None:
        _, probs, y = self._step(batch, "test")
        self.test_metrics.update(probs, y)

    def _log_epoch_metrics(self, stage: str, metrics) -> dict[str, torch.Tensor]:
        results = metrics.compute()
        metrics.reset()
        self.log_dict(flatten(stage, results, self.class_names, self.task), prog_bar=False)
        return results

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train", self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        results = self._log_epoch_metrics("test", self.test_metrics)
        self.test_report = {
            "class_names": self.class_names,
            "metrics": flatten("test", results, self.class_names, self.task),
            "confusion": results["confusion"].cpu().tolist(),
            "absent_classes": absent_classes(results, self.class_names, self.task),
        }

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer),
                                 "monitor": self.hparams.scheduler_monitor, "interval": "epoch"}}
