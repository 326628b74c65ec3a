"""What every run records in MLflow besides Lightning's per-epoch metrics.

Tags make runs filterable (data, model, loss, split, seed, fold, preset, git commit, sweep,
the command, against the preset's own config its ``budget`` and ``protocol``, and the
``recipe``: a fingerprint of what the run computes, so that runs of one command under an older
version of a preset are told apart);
the resolved config goes in as ``config.yaml`` (MLflow params cut values at 250 characters);
the test report as ``metrics_test.json``, ``confusion_matrix.csv`` and a PNG, the G-mean
thresholds as ``thresholds.json`` and ``thresholds.csv``, the test ROC curves as a PNG, and for
identification runs the verification DET curves (``verification_det.png``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, ListConfig, OmegaConf

from ecg_lightning.plots import (plot_confusion_matrix, plot_det_curves, plot_examples,
                                 plot_per_record, plot_roc_curves, plot_training_curves)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hydra_runtime():
    """This process's Hydra config, or ``None`` when the config was composed by hand."""
    return HydraConfig.get() if HydraConfig.initialized() else None


# What a preset's budget is: a run that changes any of these trains less (or more) than it.
# Also the reductions that buy CPU time with less data or smaller inputs (record length,
# sliding-window stride, image size), so a row run smaller than its paper says so.
BUDGET_KEYS = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time",
               "trainer.limit_train_batches", "trainer.fast_dev_run", "trainer.overfit_batches",
               "callbacks.early_stopping.patience", "data.max_seconds", "data.stride_seconds",
               "model.net.image_size")
# What a preset's ``reference`` describes: a run that changes one of these (another database,
# split, label scheme, record lists, network or the autoencoders' bottleneck, whose size the
# ECG5000 figure is quoted at) is no longer the paper's protocol.
PROTOCOL_KEYS = ("data._target_", "data.split", "data.label_scheme", "data.train_records",
                 "data.val_records", "data.test_records", "data.exclude_paced",
                 "data.beat_symbols", "model.net._target_", "model.net.embedding_dim")


def preset_config(preset: str) -> DictConfig:
    """A preset composed with no other override (inside a Hydra app, by its own Hydra)."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose(config_name="config", overrides=[f"experiment={preset}"])
    from ecg_lightning.summary import compose_config  # summary imports no tracking
    return compose_config([f"experiment={preset}"])


def preset_tags(cfg: DictConfig, preset: str) -> dict[str, str]:
    """``budget`` and ``protocol`` of a run against its preset's own config.

    ``budget``: ``full`` when no budget key (``BUDGET_KEYS``) differs from the preset's,
    else what differs, e.g. ``trainer.max_epochs=10 (preset 30)``. ``protocol``: ``preset``,
    or the protocol keys that differ, e.g. ``data.split=intra_patient (preset inter_patient)``,
    and then ``report`` leaves the preset's published figure off the run's row.
    """
    if preset in ("none", ""):
        return {"budget": f"{OmegaConf.select(cfg, 'trainer.max_epochs')} epochs, no preset",
                "protocol": "no preset"}
    base = preset_config(preset)

    def differences(keys) -> str:
        changed = []
        for key in keys:
            ours, theirs = OmegaConf.select(cfg, key), OmegaConf.select(base, key)
            if ours != theirs:
                theirs = "not set" if theirs is None else theirs
                changed.append(f"{key}={ours} (preset {theirs})")
        return "; ".join(changed)

    return {"budget": differences(BUDGET_KEYS) or "full",
            "protocol": differences(PROTOCOL_KEYS) or "preset"}


# What a run computes, for its ``recipe`` fingerprint: these sections of the resolved config
# (less the keys below, which say where files are, how fast, or which seed and fold), the
# trainer keys that change the optimisation, and early stopping.
RECIPE_SECTIONS = ("data", "model", "loss", "optimizer", "scheduler", "augment", "fusion",
                   "monitor")
RECIPE_TRAINER_KEYS = ("min_epochs", "max_epochs", "max_steps", "max_time", "precision",
                       "gradient_clip_val", "gradient_clip_algorithm", "accumulate_grad_batches",
                       "limit_train_batches", "limit_val_batches", "check_val_every_n_epoch",
                       "val_check_interval")
NOT_RECIPE_KEYS = ("data.root", "data.data_dir", "data.cache_dir", "data.download",
                   "data.num_workers", "data.seed", "data.fold")


def recipe_fingerprint(cfg: DictConfig) -> str:
    """12 hex digits that change when anything the run computes changes (``RECIPE_SECTIONS``,
    ``RECIPE_TRAINER_KEYS``, early stopping) and stay when only the seed, fold, paths or
    display do. Two seeds of one preset version share it; the same command after the preset
    changed (a new learning rate, clipping, another default) gets another."""
    def resolved(node, skip=()):  # key by key: the skipped ones (paths, hydra) never resolve
        if isinstance(node, DictConfig):
            return {key: resolved(node[key]) for key in node if key not in skip}
        if isinstance(node, ListConfig):
            return OmegaConf.to_container(node, resolve=True)
        return node

    skipped = [key.split(".", 1) for key in NOT_RECIPE_KEYS]
    recipe = {section: resolved(cfg.get(section), [name for where, name in skipped
                                                   if where == section])
              for section in RECIPE_SECTIONS}
    recipe["trainer"] = {key: OmegaConf.select(cfg, f"trainer.{key}")
                         for key in RECIPE_TRAINER_KEYS}
    recipe["early_stopping"] = resolved(OmegaConf.select(cfg, "callbacks.early_stopping"))
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_tags(cfg: DictConfig, datamodule) -> dict[str, str]:
    """Filterable tags: the group options the run was composed from, split, seed, commit."""
    runtime = hydra_runtime()
    choices = {k: str(v) for k, v in runtime.runtime.choices.items()
               if v is not None} if runtime else {}
    tags = {
        "data": choices.get("data", datamodule.slug),
        "model": choices.get("model", cfg.model.net._target_.rsplit(".", 1)[-1]),
        "loss": choices.get("loss", cfg.loss._target_.rsplit(".", 1)[-1]),
        "split": getattr(datamodule, "split_paradigm", str(cfg.data.get("split", ""))),
        "seed": str(cfg.seed),
        "preset": choices.get("experiment", "none"),
        "git_commit": git_commit(),
        "recipe": recipe_fingerprint(cfg),
    }
    if cfg.data.get("split") == "kfold":
        tags["fold"] = f"{cfg.data.fold}/{cfg.data.num_folds}"
    if "label_scheme" in cfg.data:
        tags["label_scheme"] = str(cfg.data.label_scheme)
    if cfg.get("evaluates"):  # python -m ecg_lightning.evaluate: link to what was evaluated
        tags["evaluates_checkpoint"] = str(cfg.evaluates.checkpoint)
        if cfg.evaluates.run:
            tags["evaluates_run"] = str(cfg.evaluates.run)
    if runtime is not None:
        tags["overrides"] = " ".join(runtime.overrides.task)[:5000]
        entry = "evaluate" if cfg.get("evaluates") else "run"
        tags["command"] = " ".join([f"python -m ecg_lightning.{entry}",
                                    *runtime.overrides.task])[:5000]
        tags.update(preset_tags(cfg, tags["preset"]))
        if runtime.mode is not None and runtime.mode.name == "MULTIRUN":
            tags["sweep_dir"] = str(runtime.sweep.dir)
            tags["sweep_job"] = str(runtime.job.num)
    return tags


def start_run(logger: MLFlowLogger, cfg: DictConfig, datamodule, extra_params: dict,
              output_dir: Path) -> None:
    """Tag the run, log its params and the whole resolved config."""
    client, run_id = logger.experiment, logger.run_id
    for key, value in run_tags(cfg, datamodule).items():
        client.set_tag(run_id, key, value)
    logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), **extra_params})
    config_file = output_dir / "config.yaml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    client.log_artifact(run_id, str(config_file))
    card = output_dir / "dataset_card.json"
    card.write_text(json.dumps(datamodule.describe(), indent=1))
    client.log_artifact(run_id, str(card))


def write_test_report(report: dict, output_dir: Path) -> list[Path]:
    """Write a classification test report as JSON, CSV and PNG files; return their paths.

    Called through ``ClassificationTask.write_test_report``: every task writes its own report
    (``model.write_test_report(output_dir)``), so this module knows no task.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = output_dir / "metrics_test.json"
    metrics_file.write_text(json.dumps({k: v for k, v in report.items()
                                        if k not in ("roc", "examples", "verification")}, indent=1))
    files = [metrics_file, *write_thresholds(report["thresholds"], output_dir)]
    files.append(plot_roc_curves(report["roc"]["fpr"], report["roc"]["tpr"], report["thresholds"],
                                 report["class_names"], output_dir / "roc_curves.png"))
    if report.get("examples"):
        files.append(plot_examples(report["examples"], report["class_names"],
                                   output_dir / "test_examples.png"))
    if report.get("per_record"):  # scored classes (N, S, V, F) per test record
        files.extend(write_per_record(report["per_record"], output_dir))
    if report.get("verification"):  # identification: DET curve per beats-per-decision k
        files.append(plot_det_curves(report["verification"], report["metrics"],
                                     output_dir / "verification_det.png"))
    if len(report["confusion"]) and isinstance(report["confusion"][0][0], list):
        return files  # multilabel: one 2x2 matrix per label, kept in the JSON
    for file_name, normalised in (("confusion_matrix.csv", False),
                                  ("confusion_matrix_normalised.csv", True)):
        confusion_file = output_dir / file_name
        with confusion_file.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["true \\ predicted", *report["class_names"]])
            for name, row in zip(report["class_names"], report["confusion"]):
                total = sum(row)  # row-normalised: the share of each true class per prediction
                writer.writerow([name, *([round(v / total, 4) if total else "" for v in row]
                                         if normalised else row)])
        files.append(confusion_file)
    files.append(plot_confusion_matrix(report["confusion"], report["class_names"],
                                       output_dir / "confusion_matrix.png"))
    return files


def write_per_record(rows: list[dict], output_dir: Path) -> list[Path]:
    """``per_record.csv`` (record, beats per class, Se and +P per class) and its plot."""
    table = output_dir / "per_record.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    classes = [key[:-len("_beats")] for key in rows[0] if key.endswith("_beats")]
    return [table, plot_per_record(rows, classes, output_dir / "per_record.png")]


def write_thresholds(rows: list[dict], output_dir: Path) -> list[Path]:
    """The per-class G-mean thresholds and the test counts at them, as JSON and CSV."""
    json_file = output_dir / "thresholds.json"
    json_file.write_text(json.dumps({
        "method": "per class, the threshold maximising sqrt(TPR x (1 - FPR)) on the validation "
                  "split (one-vs-rest); counts are on the test split at that threshold",
        "classes": rows}, indent=1))
    csv_file = output_dir / "thresholds.csv"
    with csv_file.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return [json_file, csv_file]


def training_extent(epochs_run: int, best_checkpoint: str) -> dict[str, float]:
    """``epochs_run`` (epochs completed, early stopping included) and ``best_epoch`` (1-based,
    from the best checkpoint's file name ``best-epoch<N>``, 0-based there), for "how far
    training got" beside a figure."""
    extent = {"epochs_run": float(epochs_run)}
    found = re.search(r"epoch(\d+)", Path(best_checkpoint or "").name)
    if found:
        extent["best_epoch"] = float(int(found.group(1)) + 1)
    return extent


CURVES = ("train/loss_epoch", "val/loss", "train/accuracy", "val/accuracy", "train/f1_macro",
          "val/f1_macro", "val/auroc_macro")


def log_training_curves(logger: MLFlowLogger, output_dir: Path) -> Path:
    """``training_curves.png`` from the run's own per-epoch metric history in MLflow, and
    ``seconds_per_epoch``: the median time between two validations (an epoch of training and
    its validation; the time to the first one, set-up included, when there was one epoch)."""
    client, run_id = logger.experiment, logger.run_id
    histories = {}
    for name in CURVES:
        by_step = sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
        histories[name] = [(epoch, value) for epoch, (_, value) in enumerate(by_step)]
    path = plot_training_curves(histories, output_dir / "training_curves.png")
    client.log_artifact(run_id, str(path))
    seconds = seconds_per_epoch(client, run_id)
    if seconds is not None:
        client.log_metric(run_id, "seconds_per_epoch", seconds)
    return path


def seconds_per_epoch(client, run_id: str) -> float | None:
    """The median time between two validations of a run (MLflow timestamps of ``val/loss``):
    one epoch of training and its validation; with one epoch, the time from the run's start."""
    stamps = sorted(m.timestamp for m in client.get_metric_history(run_id, "val/loss"))
    if len(stamps) >= 2:
        gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
        return gaps[len(gaps) // 2] / 1000
    if stamps:
        return (stamps[0] - client.get_run(run_id).info.start_time) / 1000
    return None


def log_artifacts(logger: MLFlowLogger, files: list[Path]) -> None:
    for path in files:
        logger.experiment.log_artifact(logger.run_id, str(path))


class TrackingServerError(ConnectionError):
    """The MLflow tracking server of the run config does not answer."""


def check_tracking_server(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, before any data is read, when an ``http(s)`` tracking server is down.

    MLflow's own client retries a refused connection with back-off for about 4 minutes and
    then fails with a stack trace; a local store (``sqlite:``) needs no check.
    """
    if not str(tracking_uri).startswith(("http://", "https://")):
        return
    import requests  # MLflow's own HTTP client library

    try:  # any answer means a server is there; MLflow reports its own errors later
        requests.get(f"{str(tracking_uri).rstrip('/')}/health", timeout=timeout_s)
    except requests.RequestException as error:
        raise TrackingServerError(
            f"the MLflow tracking server {tracking_uri} does not answer "
            f"({type(error).__name__}); nothing was trained. Start it (`mlflow server "
            "--host 127.0.0.1 --port ...`), or point MLFLOW_TRACKING_URI / "
            "logger.mlflow.tracking_uri at a running one, or unset MLFLOW_TRACKING_URI to "
            "log into the local store (outputs/mlflow.db)") from None
