"""Train and test one configuration: compose -> instantiate -> fit -> test -> metric.

    python -m ecg_lightning.run                                   # mitdb, model=lstm
    python -m ecg_lightning.run model=gru loss=ce loss.weighting=inverse seed=1
    python -m ecg_lightning.run experiment=satheeswaran2024_mitdb
    python -m ecg_lightning.run -m model=lstm,gru seed=1,2,3      # a sweep

Facts the model and the loss need (classes, channels, window length, class counts) come
from the datamodule, so configs never repeat them. Returns the optimised metric for sweepers.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

from ecg_lightning import tracking

log = logging.getLogger(__name__)


def instantiate_with_facts(node: DictConfig, facts: dict, **kwargs):
    """Instantiate ``node``, passing those ``facts`` its target's signature accepts."""
    parameters = inspect.signature(get_class(node._target_)).parameters
    accepted = {k: v for k, v in facts.items() if k in parameters}
    return instantiate(node, **accepted, **kwargs)


def build_model(cfg: DictConfig, datamodule) -> L.LightningModule:
    """The LightningModule of a config, sized by the facts of a set-up datamodule."""
    return model_from_facts(cfg, datamodule.data_facts())


def model_from_facts(cfg: DictConfig, facts: dict) -> L.LightningModule:
    """The LightningModule of a config and data facts (a checkpoint keeps them: ``data_facts``)."""
    net = instantiate_with_facts(cfg.model.net, facts)
    loss = instantiate_with_facts(cfg.loss, facts)  # class_counts, num_items
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    return instantiate(cfg.model, net=net, loss=loss, optimizer=instantiate(cfg.optimizer),
                       scheduler=scheduler, class_names=facts["class_names"], task=facts["task"],
                       run_config=OmegaConf.to_yaml(cfg, resolve=True), data_facts=facts,
                       bootstrap_resamples=cfg.get("bootstrap_resamples", 200),
                       _convert_="all")  # plain lists in hparams: checkpoints load weights_only


def build(cfg: DictConfig):
    """The datamodule, the LightningModule, the callbacks and the loggers of a config."""
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")  # the model's facts come from the data
    model = build_model(cfg, datamodule)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    if not loggers:  # logger=none: Lightning refuses a LearningRateMonitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return datamodule, model, callbacks, loggers


def metric_value(metrics: dict, name: str) -> float:
    if name not in metrics:
        raise KeyError(f"optimized_metric={name!r} was not logged; logged metrics: "
                       f"{', '.join(sorted(metrics))}")
    return float(metrics[name])


def train(cfg: DictConfig) -> tuple[float, dict]:
    """Fit and test one config; returns (optimised metric, all final metrics)."""
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    datamodule, model, callbacks, loggers = build(cfg)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    mlflow = next((lg for lg in loggers if isinstance(lg, MLFlowLogger)), None)
    try:
        if mlflow is not None:
            tracking.start_run(mlflow, cfg, datamodule, output_dir=output_dir, extra_params={
                "model/num_params": sum(p.numel() for p in model.parameters()),
                "loss/class_weights": _class_weights(model.loss),
                # One string, not a dict: class names such as "/" or '"' (label_scheme=symbols)
                # are not valid MLflow param keys once flattened.
                "data/train_class_counts": " ".join(
                    f"{name}:{count}" for name, count in zip(datamodule.class_names,
                                                             datamodule.class_counts)),
            })
            log.info("MLflow run %s in %s", mlflow.run_id, mlflow._tracking_uri)
        metrics = {}
        if cfg.train:
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
            checkpoint = trainer.checkpoint_callback
            if checkpoint is not None and checkpoint.best_model_score is not None:
                metrics[checkpoint.monitor] = float(checkpoint.best_model_score)
            if mlflow is not None:
                tracking.log_training_curves(mlflow, output_dir)
        if cfg.test:
            best = getattr(trainer.checkpoint_callback, "best_model_path", "") if cfg.train else ""
            trainer.test(model, datamodule=datamodule,
                         ckpt_path=best or (None if cfg.train else cfg.get("ckpt_path")))
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()
                            if k.startswith("test/")})
            files = tracking.write_test_report(model.test_report, output_dir)
            if mlflow is not None:
                tracking.log_artifacts(mlflow, files)
        value = metric_value(metrics, cfg.optimized_metric)
    except BaseException:
        for logger in loggers:  # a crash ends the MLflow run FAILED, never RUNNING
            logger.finalize("failed")
        raise
    for logger in loggers:
        logger.finalize("success")
    if mlflow is not None:
        print(f"MLflow run id: {mlflow.run_id}  (experiment {cfg.experiment_name!r}, "
              f"tracking URI {mlflow._tracking_uri})")
    return value, metrics


def _class_weights(loss) -> list[float] | None:
    weights = getattr(loss, "weight", None)
    if weights is None:
        weights = getattr(loss, "pos_weight", None)
    return None if weights is None else [round(float(w), 4) for w in weights]


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    value, _ = train(cfg)
    return value


if __name__ == "__main__":
    main()
