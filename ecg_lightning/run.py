"""Train and test one configuration: compose -> instantiate -> fit -> test -> metric.

    python -m ecg_lightning.run                                   # mitdb, model=lstm
    python -m ecg_lightning.run model=gru loss=ce loss.weighting=inverse seed=1
    python -m ecg_lightning.run experiment=satheeswaran2024_mitdb
    python -m ecg_lightning.run -m model=lstm,gru seed=1,2,3      # a sweep
    python -m ecg_lightning.run hydra.run.dir=outputs/runs/<time> ckpt_path=last  # resume it

Facts the model and the loss need (classes, channels, window length, class counts) come
from the datamodule, so configs never repeat them. Returns the optimised metric for sweepers.

Resuming: every run writes ``mlflow_run.json`` (its MLflow run id) next to its checkpoints; a
run started in the same folder with ``ckpt_path`` set continues that MLflow run, so the
metrics of the first part stay. Under DDP only global rank zero talks to MLflow and writes
files; Lightning saves checkpoints from rank zero only.
"""

from __future__ import annotations

import errno
import inspect
import json
import logging
import tempfile
from pathlib import Path

import hydra
import lightning as L
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from ecg_lightning import sweeps, tracking  # importing sweeps registers ${direction:...}

log = logging.getLogger(__name__)
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # no space, quota, file-size limit


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


def build(cfg: DictConfig, mlflow_run_id: str | None = None):
    """The datamodule, the LightningModule, the callbacks and the loggers of a config.

    ``mlflow_run_id``: continue this MLflow run instead of starting one (a resumed run).
    """
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")  # the model's facts come from the data
    model = build_model(cfg, datamodule)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c, **({"run_id": mlflow_run_id} if mlflow_run_id and issubclass(
                   get_class(c._target_), MLFlowLogger) else {}))
               for c in (cfg.get("logger") or {}).values() if c is not None]
    if not loggers:  # logger=none: Lightning refuses a LearningRateMonitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return datamodule, model, callbacks, loggers


def metric_value(metrics: dict, name: str) -> float:
    if name not in metrics:
        raise KeyError(f"optimized_metric={name!r} was not logged; logged metrics: "
                       f"{', '.join(sorted(metrics))}")
    return float(metrics[name])


def resume_checkpoint(cfg: DictConfig, output_dir: Path) -> str | None:
    """``cfg.ckpt_path`` with ``last`` resolved: the newer of ``last.ckpt`` (epoch end) and
    ``on_exception.ckpt`` in this run's checkpoint folder; a clear error when there is none."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None or str(ckpt_path) != "last":
        return ckpt_path
    folder = output_dir / "checkpoints"
    found = [path for path in (folder / "last.ckpt", folder / "on_exception.ckpt")
             if path.is_file()]
    if not found:
        raise FileNotFoundError(f"ckpt_path=last: no last.ckpt or on_exception.ckpt in {folder}. "
                                "To resume a run, start it in that run's folder: "
                                "hydra.run.dir=<the run folder> ckpt_path=last")
    return str(max(found, key=lambda path: path.stat().st_mtime))


def previous_mlflow_run(output_dir: Path, tracking_uri: str | None) -> str | None:
    """The MLflow run that an earlier run in ``output_dir`` logged to, in this tracking store."""
    run_file = output_dir / sweeps.RUN_FILE
    if not run_file.is_file():
        return None
    previous = json.loads(run_file.read_text())
    if previous["tracking_uri"] != tracking_uri:
        log.warning("%s names a run in %s, not in %s: starting a new MLflow run", run_file,
                    previous["tracking_uri"], tracking_uri)
        return None
    return previous["run_id"]


def ensure_writable(folder: Path, what: str) -> None:
    """Fail before training, naming the folder, when ``folder`` cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise OSError(error.errno, f"cannot write {what} to {folder}: {error.strerror or error}. "
                      "Point paths.output_dir (or paths.root_dir) at a writable folder with "
                      "free space") from error


def _refuse_ddp_in_local_multirun(trainer: L.Trainer) -> None:
    """Lightning's DDP starts its other processes by running the command line again, which in
    a local multirun would start the whole sweep again in every one of them."""
    runtime = tracking.hydra_runtime()
    if (runtime is not None and runtime.mode == RunMode.MULTIRUN
            and isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher)
            and trainer.num_devices * trainer.num_nodes > 1):
        raise ValueError("trainer=ddp with several devices cannot run inside a local multirun "
                         "(-m with the basic, joblib or submitit_local launcher): Lightning would "
                         "start the whole sweep again in each DDP process. Run DDP jobs one at a "
                         "time, or with hydra/launcher=slurm, where SLURM starts one process per "
                         "device")


def train(cfg: DictConfig) -> tuple[float, dict]:
    """Fit and test one config; returns (optimised metric, all final metrics)."""
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    rank_zero = rank_zero_only.rank == 0  # set from the environment before DDP starts
    ckpt_path = resume_checkpoint(cfg, output_dir)
    tracking_uri = OmegaConf.select(cfg, "logger.mlflow.tracking_uri")
    if tracking_uri and rank_zero:  # a server that is down: fail now, not after 4 min of retries
        tracking.check_tracking_server(tracking_uri)
    resumed_run = previous_mlflow_run(output_dir, tracking_uri) if ckpt_path and cfg.train else None
    ensure_writable(output_dir, "the run's outputs")
    datamodule, model, callbacks, loggers = build(cfg, mlflow_run_id=resumed_run)
    for callback in callbacks:  # ModelCheckpoint, OnExceptionCheckpoint
        if getattr(callback, "dirpath", None):
            ensure_writable(Path(callback.dirpath), f"checkpoints ({type(callback).__name__})")
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    _refuse_ddp_in_local_multirun(trainer)
    mlflow = next((lg for lg in loggers if isinstance(lg, MLFlowLogger)), None)
    if not rank_zero:
        mlflow = None  # Lightning's MLflowLogger does nothing there; neither do our extras
    try:
        if mlflow is not None and resumed_run:
            # Params cannot change in MLflow (ckpt_path did): keep the first part's, tag the resume.
            mlflow.experiment.update_run(resumed_run, status="RUNNING")
            mlflow.experiment.set_tag(resumed_run, "resumed_from", str(ckpt_path))
            log.info("Resuming MLflow run %s from %s", resumed_run, ckpt_path)
        elif mlflow is not None:
            tracking.start_run(mlflow, cfg, datamodule, output_dir=output_dir, extra_params={
                "model/num_params": sum(p.numel() for p in model.parameters()),
                "loss/class_weights": _class_weights(model.loss),
                # One string, not a dict: class names such as "/" or '"' (label_scheme=symbols)
                # are not valid MLflow param keys once flattened.
                "data/train_class_counts": " ".join(
                    f"{name}:{count}" for name, count in zip(datamodule.class_names,
                                                             datamodule.class_counts)),
            })
        if mlflow is not None:
            log.info("MLflow run %s in %s", mlflow.run_id, mlflow._tracking_uri)
            (output_dir / sweeps.RUN_FILE).write_text(json.dumps(
                {"run_id": mlflow.run_id, "tracking_uri": tracking_uri}))
        metrics = {}
        if cfg.train:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
            checkpoint = trainer.checkpoint_callback
            if getattr(checkpoint, "best_model_score", None) is not None:
                metrics[checkpoint.monitor] = float(checkpoint.best_model_score)
            if mlflow is not None:
                tracking.log_training_curves(mlflow, output_dir)
        if cfg.test:
            best = getattr(trainer.checkpoint_callback, "best_model_path", "") if cfg.train else ""
            trainer.test(model, datamodule=datamodule,
                         ckpt_path=best or (None if cfg.train else ckpt_path))
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()
                            if k.startswith("test/")})
            if rank_zero:  # test metrics are synchronised: rank zero has the whole test split's
                files = tracking.write_test_report(model.test_report, output_dir)
                if mlflow is not None:
                    tracking.log_artifacts(mlflow, files)
        value = metric_value(metrics, cfg.optimized_metric)
    except BaseException as error:
        for logger in loggers:  # a crash ends the MLflow run FAILED, never RUNNING
            logger.finalize("failed")
        if isinstance(error, SIGTERMException):
            # Lightning stops on SIGTERM (a scheduler's pre-emption) with SystemExit(0): exit
            # non-zero instead, so neither the scheduler nor a sweep takes it for a success.
            raise SystemExit(f"stopped by SIGTERM; the MLflow run is marked FAILED. Resume with "
                             f"hydra.run.dir={output_dir} ckpt_path=last") from error
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            raise OSError(error.errno, "ran out of space writing the run's outputs in "
                          f"{output_dir} ({error.strerror}). Checkpoints are written to a "
                          "temporary file and renamed, so none is half-written. Free space (or "
                          "point paths.output_dir elsewhere) and run again; with a checkpoint "
                          f"already there, hydra.run.dir={output_dir} ckpt_path=last resumes "
                          "from it") from error
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
