"""The classification LightningModule: loss, metrics, optimiser and scheduler plumbing.

Any ``nn.Module`` that maps ``[batch, channels, time]`` (or the datamodule's inputs) to class
logits plugs in as ``net``. Batches are mappings of named inputs plus ``"target"``
(``data/base.py``); the net receives the inputs it declares (``models/fusion.py``:
``input_names``, by default just ``signal``), in that order. Multiclass (binary included: two classes) uses softmax
probabilities; multilabel uses one sigmoid per label.

Thresholds: every validation epoch chooses one G-mean threshold per class on its ROC curve
and keeps them in the buffer ``gmean_thresholds``, so each checkpoint carries the thresholds of
its own validation epoch; testing applies them (multilabel decisions use them directly,
multiclass reports them one-vs-rest beside the argmax metrics) and ``evaluate`` reuses them.
Identification runs (``data_facts["identification"]``: one class per person) also report
k-beat identification and verification error rates (EER, TAR at FAR 1 % and 0.1 %, a DET
plot) from the test probabilities: ``biometrics.py``, ``identification_beats`` in the config.
Weight averaging: ``ema_decay`` (e.g. 0.995) adds Lightning's EMA of the weights as this
model's own callback (``configure_callbacks``; ``ClassificationEMA`` below): validation, the
checkpoints and the test see the averaged weights. A recipe, not a training loop: set in the
model config (``model.ema_decay``), so it travels with the model and not with ``callbacks=``.
A deep ensemble (``model.members``, ``models/ensemble.py``) trains its members on the mean of
their own losses and decides by their mean probability.
Papers that train differently (late fusion, reconstruction) subclass this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch import nn
from torchmetrics.aggregation import CatMetric

from ecg_lightning import tracking
from ecg_lightning.biometrics import biometric_report, check_beats_per_decision
from ecg_lightning.data.base import ITEM, RECORD, SIGNAL, TARGET
from ecg_lightning.metrics import (absent_classes, bootstrapped_metrics, classification_metrics,
                                   decisions_at, flatten, flatten_bootstrap, flatten_thresholds,
                                   flatten_scored, gmean_thresholds, one_vs_rest, per_record_rows,
                                   record_bootstrap, roc_curves, scored_decisions,
                                   scored_metrics, threshold_stats)
from ecg_lightning.models.ensemble import DeepEnsemble, combined_logits
from ecg_lightning.models.fusion import input_names


class ClassificationTask(L.LightningModule):
    def __init__(self, net: nn.Module, loss: nn.Module,
                 optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., object] | None = None,
                 class_names: list[str] | tuple[str, ...] = (), task: str = "multiclass",
                 scheduler_monitor: str = "val/loss", run_config: str | None = None,
                 bootstrap_resamples: int = 200, data_facts: dict | None = None,
                 identification_beats: list[int] | tuple[int, ...] = (1, 5, 10),
                 ema_decay: float | None = None, ema_use_buffers: bool = True) -> None:
        super().__init__()
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"model.ema_decay={ema_decay}: choose a decay in (0, 1), e.g. 0.995, "
                             "or null for no averaging")
        # Plain values only, so a checkpoint loads with torch.load(weights_only=True);
        # ``run_config`` is the resolved Hydra config (YAML text) that rebuilds net and data;
        # ``data_facts`` (classes, channels, window, rate, class counts) rebuild the model
        # without the training data (``predict``).
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
        num_classes = len(class_names)
        self.val_roc = roc_curves(num_classes, task)
        self.test_roc = roc_curves(num_classes, task)
        self.register_buffer("gmean_thresholds", torch.full((num_classes,), float("nan")))
        self.test_at_thresholds = threshold_stats(num_classes)
        # Built in on_test_start: 200 resamples are ~600 child metrics, and every module
        # traversal while training (EMA's update each step, Lightning's hooks) walked them
        # (measured: two training epochs of the default run took 0.86 of the time without them).
        self.test_bootstrap = nn.ModuleDict()
        # AAMI-scored classes (N, S, V, F: the label scheme's ``scored_classes``): beats of
        # the other classes (Q) are left out and decisions are the most probable scored class;
        # every scored decision is kept with its record for the record-level bootstrap.
        scored = (data_facts or {}).get("scored_classes") if task == "multiclass" else None
        self.scored = [self.class_names.index(name) for name in scored] if scored else None
        self.scored_items = nn.ModuleDict({
            stage: nn.ModuleDict({key: CatMetric() for key in ("target", "predicted", "record")})
            for stage in ("val", "test")}) if self.scored else None
        # Identification: every test probability with its record and position, for k-beat
        # decisions and verification rates (biometrics.py).
        self.identification_beats = check_beats_per_decision(identification_beats)
        self.biometric_items = nn.ModuleDict({
            key: CatMetric() for key in ("probs", "target", "record", "item")
        }) if (data_facts or {}).get("identification") and task == "multiclass" else None
        self.record_names: list[str] = []  # the test records' names, set by on_test_start
        self.test_examples: list[dict] = []  # a few test inputs per class, for the report figure
        self.test_report: dict | None = None  # filled at the end of testing, read by run.py
        self.nonfinite_steps = 0  # training steps skipped for a NaN/inf loss (training_step)

    def _net_outputs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(*(batch[name] for name in input_names(self.net)))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of a batch of named inputs (the target, if there, is not read); a deep
        ensemble's are those of its members' mean probability."""
        outputs = self._net_outputs(batch)
        return combined_logits(outputs, self.task) if isinstance(self.net, DeepEnsemble) else outputs

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1) if self.task == "multiclass" else torch.sigmoid(logits)

    def _logits_and_loss(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = batch[TARGET]
        # float32 logits: under bf16/fp16 autocast the loss and the probabilities stay accurate.
        outputs = self._net_outputs(batch).float()
        if not isinstance(self.net, DeepEnsemble):
            return outputs, self.loss(outputs, y), y
        # Each member learns from its own loss (models/ensemble.py); the ensemble decides.
        loss = torch.stack([self.loss(outputs[:, k], y) for k in range(outputs.shape[1])]).mean()
        return combined_logits(outputs, self.task), loss, y

    def _step(self, batch, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, loss, y = self._logits_and_loss(batch)
        # sync_dist: under DDP the epoch's loss is the mean over every process's batches.
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=stage != "test",
                 batch_size=len(y), sync_dist=True)
        return loss, self.probabilities(logits), y

    def training_step(self, batch, batch_idx: int) -> torch.Tensor | None:
        logits, loss, y = self._logits_and_loss(batch)
        # A NaN or infinite loss (half-precision overflow, a bad batch) would wreck the weights:
        # returning None skips the backward pass, so the optimiser finds no gradient and leaves
        # every weight as it is. The skips are counted; the skipped loss is not logged (it would
        # turn the epoch's mean train/loss into NaN).
        finite = bool(torch.isfinite(loss))
        self.nonfinite_steps += not finite
        if not finite:
            return None
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.train_metrics.update(self.probabilities(logits).detach(), y)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        _, probs, y = self._step(batch, "val")
        self.val_metrics.update(probs, y)
        self.val_roc.update(probs, y)
        self._keep_scored("val", batch, probs, y)

    def _keep_scored(self, stage: str, batch, probs: torch.Tensor, y: torch.Tensor) -> None:
        if self.scored is None:
            return
        kept, target, predicted = scored_decisions(probs, y, self.scored)
        record = batch[RECORD][kept] if RECORD in batch else torch.zeros_like(target)
        for key, values in (("target", target), ("predicted", predicted), ("record", record)):
            self.scored_items[stage][key].update(values.float())

    def _scored_results(self, stage: str, bootstrap: bool = False) -> tuple[dict, list[dict]]:
        """The scored-class figures of the epoch (and, for test, the record bootstrap and the
        per-record rows); the kept decisions are reset."""
        if self.scored is None:
            return {}, []
        items = self.scored_items[stage]
        if not items["target"].update_count:
            return {}, []
        target, predicted, record = (items[key].compute().long().flatten()
                                     for key in ("target", "predicted", "record"))
        for metric in items.values():
            metric.reset()
        names = [self.class_names[i] for i in self.scored]
        flat = flatten_scored(stage, scored_metrics(target, predicted, len(names)), names, target)
        if not bootstrap:
            return flat, []
        flat.update(record_bootstrap(target.cpu(), predicted.cpu(), record.cpu(), names,
                                     self.hparams.bootstrap_resamples))
        return flat, per_record_rows(target.cpu(), predicted.cpu(), record.cpu(),
                                     self.record_names, names)

    def test_step(self, batch, batch_idx: int) -> None:
        _, probs, y = self._step(batch, "test")
        self.test_metrics.update(probs, y)
        self.test_roc.update(probs, y)
        # A class without a validation threshold (no positives there) is never called.
        thresholds = torch.nan_to_num(self.gmean_thresholds, nan=float("inf"))
        self.test_at_thresholds.update(decisions_at(probs, thresholds),
                                       one_vs_rest(y, len(self.class_names), self.task))
        for metric in self.test_bootstrap.values():
            metric.update(probs, y)
        self._keep_scored("test", batch, probs, y)
        self._keep_examples(batch[SIGNAL], y, probs)
        if self.biometric_items is not None and ITEM in batch:
            for key, values in (("probs", probs), ("target", y), ("record", batch[RECORD]),
                                ("item", batch[ITEM])):
                self.biometric_items[key].update(values.float())

    def _keep_examples(self, x: torch.Tensor, y: torch.Tensor, probs: torch.Tensor,
                       per_class: int = 3) -> None:
        """The first ``per_class`` test inputs of every (first) true class, with the prediction."""
        if self.task != "multiclass":
            return
        predicted = probs.argmax(dim=-1)
        for index in range(len(y)):
            true = int(y[index])
            if sum(e["true"] == true for e in self.test_examples) < per_class:
                self.test_examples.append({"input": x[index].cpu().numpy(), "true": true,
                                           "predicted": int(predicted[index])})

    def _log_epoch_metrics(self, stage: str, metrics) -> dict[str, torch.Tensor]:
        results = metrics.compute()
        metrics.reset()
        self.log_dict(flatten(stage, results, self.class_names, self.task), prog_bar=False)
        return results

    def on_train_epoch_end(self) -> None:
        self.log("train/nonfinite_steps", float(self.nonfinite_steps))  # skipped so far
        if not any(metric.update_count for metric in self.train_metrics.values()):
            return  # every step of the epoch was skipped as non-finite: no train metrics to log
        self._log_epoch_metrics("train", self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val", self.val_metrics)
        self.log_dict(self._scored_results("val")[0])
        thresholds, _ = gmean_thresholds(*self.val_roc.compute())
        self.val_roc.reset()
        self.gmean_thresholds.copy_(thresholds)

    def on_test_start(self) -> None:
        """The beat-level bootstrap metrics, and the names of the record codes the test
        batches carry (``batch["record"]``)."""
        self.test_bootstrap = bootstrapped_metrics(len(self.class_names), self.task,
                                                   self.hparams.bootstrap_resamples).to(self.device)
        datamodule = getattr(self.trainer, "datamodule", None)
        self.record_names = [str(name) for name in getattr(datamodule, "item_record_names", [])]

    def on_test_epoch_end(self) -> None:
        results = self._log_epoch_metrics("test", self.test_metrics)
        at_thresholds, threshold_rows = flatten_thresholds(
            "test", self.gmean_thresholds, self.test_at_thresholds.compute(), self.class_names)
        bootstrap = flatten_bootstrap("test", {name: metric.compute() for name, metric
                                               in self.test_bootstrap.items()})
        scored, per_record = self._scored_results("test", bootstrap=True)
        biometric, curves = self._biometric_results()
        self.log_dict({**at_thresholds, **bootstrap, **scored, **biometric})
        fpr, tpr, _ = self.test_roc.compute()
        for metric in (self.test_at_thresholds, self.test_roc, *self.test_bootstrap.values()):
            metric.reset()
        self.test_report = {
            "class_names": self.class_names,
            "metrics": {**flatten("test", results, self.class_names, self.task),
                        **at_thresholds, **bootstrap, **scored, **biometric},
            "per_record": per_record,
            "verification": curves,
            "confusion": results["confusion"].cpu().tolist(),
            "absent_classes": absent_classes(results, self.class_names, self.task),
            "thresholds": threshold_rows,
            "roc": {"fpr": [f.cpu().numpy() for f in fpr], "tpr": [t.cpu().numpy() for t in tpr]},
            "examples": self.test_examples,
        }
        self.test_examples = []

    def _biometric_results(self) -> tuple[dict, dict]:
        """k-beat identification and verification figures of the test split (biometrics.py)."""
        if self.biometric_items is None or not self.biometric_items["item"].update_count:
            return {}, {}
        probs, target, record, item = (self.biometric_items[key].compute().cpu()
                                       for key in ("probs", "target", "record", "item"))
        for metric in self.biometric_items.values():
            metric.reset()
        # Time order within every record, each item once (DDP's sampler pads with repeats).
        item, order = torch.unique(item.long(), return_inverse=True)
        first = torch.full((len(item),), len(order), dtype=torch.long).scatter_reduce_(
            0, order, torch.arange(len(order)), reduce="amin")
        probs = probs.reshape(len(order), -1)[first]
        return biometric_report(probs.double(), target.long()[first], record.long()[first],
                                self.identification_beats)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse, with a message that says why, a checkpoint of other classes or another model."""
        trained = list(checkpoint.get("hyper_parameters", {}).get("class_names", []))
        if trained and trained != self.class_names:
            raise ValueError(f"the checkpoint was trained on classes {trained}; this data has "
                             f"{self.class_names}: choose a compatible data config")
        ours = self.state_dict()
        theirs = checkpoint.get("state_dict", {})
        mismatched = [f"{name}: {tuple(theirs[name].shape)} in the checkpoint, {tuple(t.shape)} here"
                      for name, t in ours.items() if name in theirs and theirs[name].shape != t.shape]
        missing = sorted(set(ours) - set(theirs))[:5]
        if mismatched or missing:
            raise ValueError("the checkpoint does not fit this model and data (another model, or "
                             "other channels/window length): "
                             + "; ".join(mismatched[:5] + [f"{m}: not in the checkpoint" for m in missing]))

    def configure_callbacks(self):
        """The model's own callbacks: the EMA of its weights when ``ema_decay`` is set."""
        if self.hparams.ema_decay is None:
            return []
        return [ClassificationEMA(decay=self.hparams.ema_decay,
                                  use_buffers=self.hparams.ema_use_buffers)]

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer),
                                 "monitor": self.hparams.scheduler_monitor, "interval": "epoch"}}

    def write_test_report(self, output_dir) -> list[Path]:
        """Write the last test's report into ``output_dir``; return the files' paths.

        ``metrics_test.json``, thresholds, confusion matrices, ROC curves and examples, by the
        generic writer in ``tracking``; a task with another report overrides this method.
        """
        if self.test_report is None:
            raise RuntimeError("no test report to write: run trainer.test(...) first")
        return tracking.write_test_report(self.test_report, Path(output_dir))


class ClassificationEMA(EMAWeightAveraging):
    """Lightning's ``EMAWeightAveraging``, made to fit ``ClassificationTask`` in two places.

    * Thresholds. The callback averages buffers as well as weights (``use_buffers=True``),
      and so it would also average ``gmean_thresholds``: a buffer that is not a running
      statistic but the choice of the last validation epoch (and starts as NaN, whose average
      stays NaN). Validation runs on the averaged weights; once it has chosen the thresholds,
      they are copied into the averaged model, so a checkpoint (which stores the averaged
      model) carries the thresholds of its own epoch, as without EMA.
    * Testing a checkpoint. Validation, and so the choice of the best checkpoint, sees the
      averaged weights, which the checkpoint stores as its ``state_dict``. When a checkpoint is
      loaded for testing in the process that trained it, the base class would replace them by
      the raw weights (``current_model_state``); here only resuming a fit does that.

    ``use_buffers=false`` keeps the live model's batch-norm statistics instead of averaging
    them; the thresholds are copied either way.
    """

    def on_validation_end(self, trainer, pl_module) -> None:
        # Runs after the module's on_validation_epoch_end and before ModelCheckpoint saves
        # (Lightning runs checkpoint callbacks last).
        averaged = self._average_model
        if averaged is not None and hasattr(pl_module, "gmean_thresholds"):
            averaged.module.gmean_thresholds.copy_(pl_module.gmean_thresholds)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if trainer.state.fn == "fit":  # resuming: restore the raw and the averaged weights
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
