"""Test a trained checkpoint again, on its own data or on another compatible datamodule.

    python -m ecg_lightning.evaluate ckpt=outputs/runs/<time>/checkpoints/best-epoch004.ckpt
    python -m ecg_lightning.evaluate ckpt=runs:/<run_id>/<artifact path of the .ckpt>
    python -m ecg_lightning.evaluate ckpt=... data.split=kfold data.fold=2   # other test split
    python -m ecg_lightning.evaluate ckpt=... data=mitdb_binary             # other data config
    python -m ecg_lightning.evaluate ckpt=<mitdb checkpoint> data=svdb      # external validation

The checkpoint carries the resolved config it was trained with (``run_config``): the model,
loss and data sections come from there, the paths and the logger from this project, and data
overrides on the command line replace the checkpoint's data section (a whole ``data=...``
group, or single ``data.<key>=...`` values on top of the checkpoint's). The test then goes
through ``run.train`` with ``train=false``, so the new MLflow run records exactly what a
training run's test does (metrics, G-mean thresholds of the checkpoint, confusion matrix, ROC),
tagged ``evaluates_checkpoint`` and, when known, ``evaluates_run`` (the training run's id).
A checkpoint whose classes or layer shapes do not fit the data is refused by the task before
any weight is loaded (``ClassificationTask.on_load_checkpoint``). The checkpoint's fitted
transforms (RR scaling, PCA...) are loaded into the datamodule before it is set up, also when
it is another database's.

External validation: ``data=<another beat database>`` (e.g. a mitdb checkpoint on ``svdb``)
reads that database as the checkpoint's data was read (``external_data``): same window,
filters, normalisation, label scheme and RR features; resampled by the datamodule (wfdb) to
the checkpoint's rate; its leads by name, a lead the database lacks mapped to its equivalent
(MLII -> ECG1, V1 -> ECG2; ``beats.LEAD_EQUIVALENTS``); and every record tests
(``split=external``).
"""

from __future__ import annotations

import inspect
import pickle
import sys
import time
from pathlib import Path

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from ecg_lightning.run import train
from ecg_lightning.summary import compose_config

RUNS_PREFIX = "runs:/"


def local_checkpoint(ckpt: str) -> tuple[Path, str | None]:
    """A local path for ``ckpt`` and the MLflow run it came from (when it says so)."""
    if ckpt.startswith(RUNS_PREFIX):
        import mlflow

        run_id = ckpt[len(RUNS_PREFIX):].split("/", 1)[0]
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=ckpt)), run_id
    path = Path(ckpt)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={ckpt}: no such file")
    return path, None


def read_checkpoint(path: Path) -> dict:
    """The checkpoint's contents, loaded with ``weights_only=True`` (nothing is unpickled blindly)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise ValueError(f"ckpt={path} is not a checkpoint this project can read safely "
                         f"(torch.load with weights_only=True failed: {error})") from error
    if not isinstance(checkpoint, dict) or "run_config" not in checkpoint.get("hyper_parameters", {}):
        raise ValueError(f"ckpt={path} is not an ecg-lightning checkpoint: it has no "
                         "hyper_parameters.run_config (the resolved training config)")
    return checkpoint


# Reading options (data/beats.py READ_OPTIONS) the other database keeps as its own in external
# validation: fs comes from the checkpoint's facts; beat positions, record length and
# annotation checks are the target's. Beside the rest, the inputs built on the windows carry.
TARGET_OWN = ("fs", "beats", "max_seconds", "check_annotations")
INPUT_OPTIONS = ("label_scheme", "rr_features", "rr_scaling", "spectrogram", "pca_components")


MISSING = inspect.Parameter.empty


def constructor_default(cls: type, option: str):
    """The default of ``option`` in the ``__init__`` of ``cls`` or of a class it extends (the
    beat datamodules pass their beat options on to ``BeatDataModule``); ``MISSING`` if none."""
    for klass in cls.__mro__:
        parameter = inspect.signature(klass.__init__).parameters.get(option)
        if parameter is not None and parameter.default is not MISSING:
            return parameter.default
    return MISSING


def external_data(trained: DictConfig, target: DictConfig, facts: dict) -> dict:
    """Values of ``target`` (another beat database's data config) that make it read windows
    as the checkpoint's were: the shaping options, the checkpoint's sampling rate (the
    datamodule resamples with wfdb), its leads by name mapped through ``LEAD_EQUIVALENTS``
    (MLII -> ECG1, V1 -> ECG2; ``all`` and ``first`` stay), and ``split=external`` (every
    record tests)."""
    from hydra.utils import get_class

    from ecg_lightning.data.beats import LEAD_EQUIVALENTS, READ_OPTIONS, resolve_leads

    # what shapes a window and its inputs: the model sees what it was trained on
    shaping = [*(option for option in READ_OPTIONS if option not in TARGET_OWN), *INPUT_OPTIONS]

    trained_class = get_class(trained.data._target_)
    # An option the checkpoint's config lacks did not exist when it was trained: it was read
    # at the datamodule's default then (e.g. record_template_beats=all), not at the target's.
    values = {}
    for key in (key for key in shaping if key in target):
        value = trained.data[key] if key in trained.data else constructor_default(trained_class, key)
        if value is not MISSING:
            values[key] = value
    values["fs"] = facts["sampling_rate_hz"]
    leads = facts.get("lead_names") or resolve_leads(
        trained.data.get("lead"), trained.data.get("leads"), trained_class.default_lead)
    if isinstance(leads, str):  # all | first
        values.update(lead=None, leads=leads)
    else:  # renamed only into the other naming: SVDB and NSRDB call their leads ECG1, ECG2
        holter = get_class(target._target_).default_lead.startswith("ECG")

        def renamed(lead: str) -> str:
            return lead if lead.startswith("ECG") == holter else LEAD_EQUIVALENTS.get(lead, lead)

        values.update(lead=None, leads=[renamed(lead) for lead in leads])
    values["split"] = "external"
    return values


def evaluation_config(checkpoint: dict, path: Path, overrides: list[str],
                      source_run: str | None) -> DictConfig:
    """The training config of ``checkpoint``, pointed at this project and the chosen data.

    ``data=<another beat database>`` is external validation: see ``external_data``; single
    ``data.<key>=`` overrides still win over what it carries.
    """
    trained = OmegaConf.create(checkpoint["hyper_parameters"]["run_config"])
    data_group = [o for o in overrides if o.startswith("data=")]
    data_values = [o for o in overrides if o.startswith("data.")]
    others = [o for o in overrides if not o.startswith("data")]
    cfg = compose_config([*data_group, *others])  # this project's paths, logger, callbacks...
    OmegaConf.set_struct(cfg, False)
    for section in ("model", "loss", "optimizer", "scheduler", "fusion"):
        cfg[section] = trained.get(section)
    if not data_group:
        cfg.data = OmegaConf.merge(trained.data, {"root": None, "cache_dir": cfg.paths.cache_dir,
                                                  "data_dir": cfg.paths.data_dir})
    elif is_other_beat_database(trained.data, cfg.data):
        facts = checkpoint["hyper_parameters"].get("data_facts") or {}
        cfg.data = OmegaConf.merge(cfg.data, external_data(trained, cfg.data, facts))
    for override in data_values:  # single values on top of the checkpoint's (or the group's) data
        key, _, value = override.partition("=")
        OmegaConf.update(cfg, key, yaml.safe_load(value), merge=True)
    if not any(o.startswith("monitor") for o in others):  # e.g. an autoencoder's val/loss
        cfg.monitor = trained.get("monitor", cfg.monitor)
    cfg.train, cfg.test, cfg.ckpt_path = False, True, str(path)
    cfg.optimized_metric = str(cfg.monitor.metric).replace("val/", "test/", 1)  # no validation here
    cfg.experiment_name = trained.get("experiment_name", cfg.experiment_name)
    cfg.run_name = f"evaluate {source_run or path.name}"
    cfg.evaluates = {"checkpoint": str(path), "run": source_run}
    # Not a Hydra app: the run folder is made here, as Hydra would for a training run.
    cfg.paths.output_dir = str(Path(cfg.paths.outputs_dir) / "evaluations"
                               / time.strftime("%Y-%m-%d_%H-%M-%S"))
    return cfg


def is_other_beat_database(trained: DictConfig, target: DictConfig) -> bool:
    """Whether ``target`` is a beat database other than the checkpoint's."""
    from hydra.utils import get_class

    from ecg_lightning.data.beats import BeatDataModule

    classes = [get_class(config._target_) for config in (trained, target)]
    return classes[0] is not classes[1] and all(issubclass(c, BeatDataModule) for c in classes)


def datamodule_state(checkpoint: dict) -> dict | None:
    """The fitted transforms the checkpoint's datamodule saved (Lightning files them under the
    datamodule's class name)."""
    trained = OmegaConf.create(checkpoint["hyper_parameters"]["run_config"])
    return checkpoint.get(str(trained.data._target_).rsplit(".", 1)[-1], {})


def evaluate(ckpt: str, overrides: list[str] = ()) -> tuple[float, dict]:
    path, source_run = local_checkpoint(ckpt)
    checkpoint = read_checkpoint(path)
    cfg = evaluation_config(checkpoint, path, list(overrides), source_run)
    return train(cfg, datamodule_state=datamodule_state(checkpoint))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ckpts = [a for a in argv if a.startswith("ckpt=")]
    if len(ckpts) != 1:
        sys.exit("usage: python -m ecg_lightning.evaluate ckpt=<path or runs:/<run_id>/<path>> "
                 "[data=<config>] [data.<key>=<value> ...]")
    _, metrics = evaluate(ckpts[0].split("=", 1)[1], [a for a in argv if a not in ckpts])
    for name in sorted(k for k in metrics if k.count("/") == 1):
        print(f"{name:>28}  {metrics[name]:.4f}")


if __name__ == "__main__":
    main()
