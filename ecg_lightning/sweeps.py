"""What Hydra and Lightning leave to us for long runs: a summary of the failed jobs of a
multirun, the Optuna direction, resumable random state.

* A failing job raises, as a single run does: Hydra's ``run_job`` records it FAILED and the
  launcher goes on with the other jobs (basic, joblib and submitit launchers alike; the basic
  sweeper hands them all over as one batch). Afterwards Hydra's basic sweeper re-raises the
  first failure (exit status 1); the Optuna sweeper marks the trial FAIL in the study and, with
  ``max_failure_rate: 1.0`` (``conf/hparams_search/optuna.yaml``), goes on. Returning NaN
  instead would be worse: optuna 2.10 refuses a NaN value with an error that stops the study.
* ``FailedJobs`` (a Hydra callback, ``conf/hydra/default.yaml``) writes ``job_status.json`` in
  every job's folder from the process that ran the job (so joblib workers and submitit jobs
  report too) and, once the multirun is over, writes ``failed_jobs.json`` in the sweep folder
  and prints which jobs failed (number, overrides, error, MLflow run); the exit status is 1.
* ``MlflowStore`` (a Hydra callback) creates the MLflow store and experiment before parallel
  jobs race to create them.
* The ``direction`` resolver turns ``monitor.mode`` (max/min) into Optuna's direction.
* ``RandomState`` keeps the random number generators in Lightning checkpoints: Lightning saves
  model, optimiser, loops and callbacks but not the RNGs, so without it a run resumed from an
  epoch-end ``last.ckpt`` shuffles and drops out differently from the uninterrupted run.
"""

from __future__ import annotations

import atexit
import json
import logging
import random
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback as HydraCallback
from hydra.types import RunMode
from lightning.pytorch.callbacks import Callback
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

STATUS_FILE = "job_status.json"      # in every job's output folder
SUMMARY_FILE = "failed_jobs.json"    # in the sweep folder, when a job failed
RUN_FILE = "mlflow_run.json"         # in every run's output folder, written by run.py


def _direction(mode: str) -> str:
    directions = {"max": "maximize", "min": "minimize"}
    if mode not in directions:
        raise ValueError(f"monitor.mode={mode!r}: expected max or min")
    return directions[mode]


OmegaConf.register_new_resolver("direction", _direction, replace=True)


def failure_summary(sweep_dir: Path) -> str | None:
    """The failed jobs of the multirun in ``sweep_dir`` (also written to failed_jobs.json)."""
    records = sorted((json.loads(path.read_text())
                      for path in sweep_dir.glob(f"**/{STATUS_FILE}")), key=lambda r: r["job"])
    failed = [r for r in records if r["status"] == JobStatus.FAILED.name]
    if not failed:
        return None
    summary_file = sweep_dir / SUMMARY_FILE
    summary_file.write_text(json.dumps(failed, indent=1))
    lines = [f"{len(failed)} of {len(records)} jobs of the multirun failed "
             f"(tracebacks in {summary_file}):"]
    for r in failed:
        run = f" [MLflow run {r['mlflow_run_id']}, FAILED]" if "mlflow_run_id" in r else ""
        lines.append(f"  job {r['job']}: {' '.join(r['overrides'])}{run}\n    {r['error']}")
    return "\n".join(lines)


class FailedJobs(HydraCallback):
    """Record how every multirun job ended; at the end, list the failed ones."""

    def __init__(self) -> None:
        self.sweep_dir: Path | None = None  # set while a multirun is under way in this process

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(config.hydra.sweep.dir)
        for stale in self.sweep_dir.glob(f"**/{STATUS_FILE}"):  # a reused sweep folder
            stale.unlink()
        # Hydra's basic sweeper raises the first failed job's error once every job has run, and
        # then on_multirun_end never comes: the summary is printed when the process exits.
        atexit.register(self._print_summary)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        output_dir = Path(config.hydra.runtime.output_dir)
        record = {"job": int(config.hydra.job.num), "status": job_return.status.name,
                  "overrides": list(job_return.overrides or []), "output_dir": str(output_dir)}
        run_file = output_dir / RUN_FILE
        if run_file.exists():
            record["mlflow_run_id"] = json.loads(run_file.read_text())["run_id"]
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # Hydra keeps the job's exception here
            record["error"] = f"{type(error).__name__}: {' '.join(str(error).split())[:500]}"
            record["traceback"] = "".join(traceback.format_exception(error))
            log.error("job %s (%s) failed:\n%s", record["job"], " ".join(record["overrides"]),
                      record["traceback"])
        (output_dir / STATUS_FILE).write_text(json.dumps(record, indent=1))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = None  # reported here, not again at exit
        summary = failure_summary(Path(config.hydra.sweep.dir))
        if summary:
            # Hydra turns a callback's exception into a warning: exit here, with the summary.
            sys.stderr.write(summary + "\n")
            raise SystemExit(1)

    def _print_summary(self) -> None:
        if self.sweep_dir is not None and (summary := failure_summary(self.sweep_dir)):
            sys.stderr.write(summary + "\n")


class MlflowStore(HydraCallback):
    """Create the MLflow store and experiment once, in the process that launches the jobs.

    Jobs running in parallel (joblib, submitit) that find a new sqlite store both run MLflow's
    schema migrations ("sqlite3.OperationalError: duplicate column name") and both create the
    experiment; once both exist, concurrent writers only wait on sqlite's lock (MLflow sets a
    20 s busy timeout).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        node = OmegaConf.select(config, "logger.mlflow")
        if node is None:
            return
        client = MlflowClient(tracking_uri=node.tracking_uri)
        if client.get_experiment_by_name(node.experiment_name) is None:
            client.create_experiment(node.experiment_name,
                                     artifact_location=node.get("artifact_location"))


class RandomState(Callback):
    """Save the Python, NumPy and torch RNG states in every checkpoint and restore them on resume.

    Plain lists and tensors only, so that checkpoints still load with ``weights_only=True``.
    """

    def state_dict(self) -> dict[str, Any]:
        name, keys, position, has_gauss, gauss = np.random.get_state()
        return {"python": random.getstate(),
                "numpy": [name, keys.tolist(), position, has_gauss, gauss],
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        version, internal, gauss = state_dict["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, position, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
        torch.set_rng_state(state_dict["torch"])
        if torch.cuda.is_available() and len(state_dict["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
