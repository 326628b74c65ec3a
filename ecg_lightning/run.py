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
from ecg_lightning.models.ensemble import DeepEnsemble
from ecg_lightning.models.fusion import with_auxiliary_inputs
from ecg_lightning.tasks.classification import ClassificationTask

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
    def fused_net():
        net = instantiate_with_facts(cfg.model.net, facts)
        # RR features, tabular values...: every input beside the signal joins the net's head.
        return with_auxiliary_inputs(net, facts.get("auxiliary_inputs"),
                                     **OmegaConf.to_container(cfg.get("fusion") or {}))

    # model.members: a deep ensemble of that many nets, each initialised on its own
    members = cfg.model.get("members", 1)
    if not (isinstance(members, int) and members >= 1):
        raise ValueError(f"model.members={members!r} must be a positive integer (1: one net)")
    model_config = cfg.model
    if "members" in cfg.model:  # the model's own argument list lacks it
        if members > 1 and not issubclass(get_class(cfg.model._target_), ClassificationTask):
            raise ValueError(f"model.members={members}: deep ensembles are built for "
                             f"classification models, not {cfg.model._target_}")
        model_config = OmegaConf.create({k: v for k, v in OmegaConf.to_container(
            cfg.model, resolve=True).items() if k != "members"})
    net = fused_net() if members == 1 else DeepEnsemble([fused_net() for _ in range(members)])
    loss = instantiate_with_facts(cfg.loss, facts)  # class_counts, num_items
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    # identification data: beats per decision of the k-beat and verification figures
    biometric = ({"identification_beats": list(cfg.get("identification_beats") or [1])}
                 if facts.get("identification") else {})
    return instantiate(model_config, net=net, loss=loss, optimizer=instantiate(cfg.optimizer),
                       scheduler=scheduler, class_names=facts["class_names"], task=facts["task"],
                       run_config=OmegaConf.to_yaml(cfg, resolve=True), data_facts=facts,
                       bootstrap_resamples=cfg.get("bootstrap_resamples", 200), **biometric,
                       _convert_="all")  # plain lists in hparams: checkpoints load weights_only


def build(cfg: DictConfig, mlflow_run_id: str | None = None,
          datamodule_state: dict | None = None):
    """The datamodule, the LightningModule, the callbacks and the loggers of a config.

    ``mlflow_run_id``: continue this MLflow run instead of starting one (a resumed run).
    ``datamodule_state``: the fitted transforms of the checkpoint a test-only run evaluates,
    loaded before setup whichever database the checkpoint was trained on (``evaluate``).
    """
    datamodule = instantiate(cfg.data)
    if datamodule_state is not None:
        datamodule.load_state_dict(datamodule_state)
    datamodule.prepare_data()
    datamodule.setup("fit" if cfg.train else "test")  # the model's facts come from the data
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


def checkpoint_folders(cfg: DictConfig) -> list[Path]:
    """The folders the config's checkpoint callbacks write to (their ``dirpath``)."""
    folders = [Path(node.dirpath) for node in (cfg.get("callbacks") or {}).values()
               if node is not None and node.get("dirpath")]
    return list(dict.fromkeys(folders))


def refuse_used_checkpoint_folder(cfg: DictConfig) -> None:
    """A new training run (``ckpt_path`` null) in a folder that holds an earlier run's checkpoints.

    Lightning 2.6 turns ``fit(ckpt_path=None)`` into ``ckpt_path="last"`` whenever an
    ``OnExceptionCheckpoint`` is among the callbacks (ours is): it would restore the earlier
    run's ``last.ckpt`` (weights, epoch, and the best-checkpoint record of ModelCheckpoint),
    train nothing when that run had finished, and test the earlier run's best checkpoint. New
    checkpoints would also overwrite or sit beside the old ones. So refuse, before any data is
    read, naming the folder and the two ways out.
    """
    for folder in checkpoint_folders(cfg):
        found = sorted(path.name for path in folder.glob("*.ckpt")) if folder.is_dir() else []
        if found:
            shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
            raise FileExistsError(
                f"{folder} already holds checkpoints of an earlier run ({shown}); a new run "
                "there would restore them instead of training from scratch. Either resume that "
                "run: the same command with ckpt_path=last (continues training and its MLflow "
                "run), or start a new run in a new folder: hydra.run.dir=<a new folder> (or "
                "leave hydra.run.dir out for a fresh time-stamped one; hydra.sweep.dir for -m)")


def best_checkpoint_callback(trainer: L.Trainer):
    """The ModelCheckpoint that keeps the best checkpoint (the first with a ``monitor``).

    ``trainer.checkpoint_callback`` is only the first ModelCheckpoint, which could as well be
    ``last_checkpoint`` (no monitor: its "best" is simply the latest save).
    """
    monitored = [c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)]
    return monitored[0] if monitored else trainer.checkpoint_callback


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


def train(cfg: DictConfig, datamodule_state: dict | None = None) -> tuple[float, dict]:
    """Fit and test one config; returns (optimised metric, all final metrics).

    ``datamodule_state``: see ``build`` (``evaluate`` passes its checkpoint's)."""
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    rank_zero = rank_zero_only.rank == 0  # set from the environment before DDP starts
    ckpt_path = resume_checkpoint(cfg, output_dir)
    if cfg.train and ckpt_path is None:
        refuse_used_checkpoint_folder(cfg)
    tracking_uri = OmegaConf.select(cfg, "logger.mlflow.tracking_uri")
    if tracking_uri and rank_zero:  # a server that is down: fail now, not after 4 min of retries
        tracking.check_tracking_server(tracking_uri)
    resumed_run = previous_mlflow_run(output_dir, tracking_uri) if ckpt_path and cfg.train else None
    ensure_writable(output_dir, "the run's outputs")
    datamodule, model, callbacks, loggers = build(cfg, mlflow_run_id=resumed_run,
                                                  datamodule_state=datamodule_state)
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
            checkpoint = best_checkpoint_callback(trainer)
            if getattr(checkpoint, "best_model_score", None) is not None:
                metrics[checkpoint.monitor] = float(checkpoint.best_model_score)
            metrics.update(tracking.training_extent(trainer.current_epoch,
                                                    getattr(checkpoint, "best_model_path", "")))
            if mlflow is not None:
                tracking.log_training_curves(mlflow, output_dir)
                mlflow.log_metrics({k: metrics[k] for k in ("epochs_run", "best_epoch")
                                    if k in metrics})
        if cfg.test:
            # This run's own best checkpoint (a new run's folder held none before it: see
            # refuse_used_checkpoint_folder; a resumed run's best may be from its first part).
            best = (getattr(best_checkpoint_callback(trainer), "best_model_path", "")
                    if cfg.train else "")
            trainer.test(model, datamodule=datamodule,
                         ckpt_path=best or (None if cfg.train else ckpt_path))
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()
                            if k.startswith("test/")})
            if rank_zero:  # test metrics are synchronised: rank zero has the whole test split's
                files = model.write_test_report(output_dir)  # each task writes its own
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
