"""Multiruns: a failing job, parallel jobs on one sqlite store, Optuna, submitit, the configs.

Every multirun is a real `python -m ecg_lightning.run -m ...` subprocess on two short MIT-BIH
records (``small_mitdb``: 100 and 101, their first 5 minutes), read back from the sqlite MLflow
store it wrote in its own temporary project folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from ecg_lightning.summary import CONFIG_DIR

REPO = Path(__file__).resolve().parents[1]


def tiny(root: Path, records: Path) -> list[str]:
    """A few batches of a small LSTM on two records: a whole job in seconds."""
    return [f"paths.root_dir={root}", f"data.root={records}", "data.split=intra_patient",
            "data.max_seconds=300", "data.batch_size=64", "model.net.width=8",
            "debug=limit", "callbacks.progress_bar.refresh_rate=0",
            "bootstrap_resamples=10"]


def multirun(root: Path, *overrides: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "ECG_CACHE_DIR": str(root / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "ecg_lightning.run", "-m", *overrides],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)


def runs_of(root: Path) -> list:
    client = MlflowClient(f"sqlite:///{root}/outputs/mlflow.db")
    experiment = client.get_experiment_by_name("ecg-lightning")
    return client.search_runs([experiment.experiment_id], order_by=["tags.sweep_job ASC"])


def sweep_dir_of(runs) -> Path:
    (folder,) = {r.data.tags["sweep_dir"] for r in runs}
    return Path(folder)


def compose_with_hydra(*overrides: str):
    """The config with its ``hydra`` node, as a multirun sees it (resolvers registered)."""
    import ecg_lightning.sweeps  # noqa: F401  (the ${direction:...} resolver)
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_failing_job_does_not_stop_the_others(tmp_path, small_mitdb):
    """Job 0 raises (negative learning rate), job 1 still runs; exit 1 and a summary."""
    result = multirun(tmp_path, *tiny(tmp_path, small_mitdb()), "optimizer.lr=-1,0.001")
    assert result.returncode == 1, result.stderr[-3000:]

    runs = runs_of(tmp_path)
    assert [(r.data.tags["sweep_job"], r.info.status) for r in runs] == [
        ("0", "FAILED"), ("1", "FINISHED")]
    assert "test/f1_macro" in runs[1].data.metrics and "test/f1_macro" not in runs[0].data.metrics

    stderr = result.stderr
    assert "1 of 2 jobs of the multirun failed" in stderr
    assert "job 0:" in stderr and "optimizer.lr=-1" in stderr
    assert "ValueError: Invalid learning rate: -1" in stderr
    assert f"MLflow run {runs[0].info.run_id}, FAILED" in stderr

    sweep_dir = sweep_dir_of(runs)
    (failed,) = json.loads((sweep_dir / "failed_jobs.json").read_text())
    assert failed["job"] == 0 and "optimizer.lr=-1" in failed["overrides"]
    assert failed["mlflow_run_id"] == runs[0].info.run_id
    assert "Invalid learning rate" in failed["traceback"]
    finished = json.loads((sweep_dir / "1" / "job_status.json").read_text())
    assert finished["status"] == "COMPLETED" and finished["mlflow_run_id"] == runs[1].info.run_id


@pytest.mark.slow
def test_joblib_four_jobs_two_at_a_time_share_one_sqlite_store(tmp_path, small_mitdb):
    """hydra/launcher=joblib, n_jobs=2: four jobs, two processes writing one sqlite file."""
    result = multirun(tmp_path, *tiny(tmp_path, small_mitdb()), "hydra/launcher=joblib",
                      "hydra.launcher.n_jobs=2", "seed=1,2,3,4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "database is locked" not in result.stderr

    runs = runs_of(tmp_path)
    assert [r.data.tags["sweep_job"] for r in runs] == ["0", "1", "2", "3"]
    assert sorted(r.data.tags["seed"] for r in runs) == ["1", "2", "3", "4"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["sweep_dir"] for r in runs}) == 1
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    for run in runs:
        assert f"seed={run.data.tags['seed']}" in run.data.tags["overrides"]
        assert 0.0 <= run.data.metrics["test/accuracy"] <= 1.0
        assert len(client.get_metric_history(run.info.run_id, "val/f1_macro")) == 2  # 2 epochs
    # the jobs ran in two worker processes, not in the launching one
    statuses = [json.loads(p.read_text()) for p in sweep_dir_of(runs).glob("*/job_status.json")]
    assert len(statuses) == 4 and {s["status"] for s in statuses} == {"COMPLETED"}


@pytest.mark.slow
def test_optuna_trial_that_raises_is_failed_and_the_study_goes_on(tmp_path, small_mitdb):
    """Three trials over a space where lr=-1 raises: every trial is an MLflow run, the
    failing ones FAILED (and FAIL in the study), the others finish, the best is written."""
    result = multirun(tmp_path, *tiny(tmp_path, small_mitdb()), "hparams_search=optuna",
                      "hydra.sweeper.n_trials=3", "hydra.sweeper.params=null",
                      "optimizer.lr=choice(0.001,-1)", "model.net.width=choice(8,16)",
                      "seed=1")  # TPE seeded by `seed`: with 1, trials 0 and 2 draw lr=-1
    runs = runs_of(tmp_path)
    assert len(runs) == 3
    failing = [r for r in runs if "optimizer.lr=-1" in r.data.tags["overrides"].split()]
    passing = [r for r in runs if r not in failing]
    assert failing and passing, "the seeded sampler no longer draws both values: change seed"
    assert {r.info.status for r in failing} == {"FAILED"}
    assert {r.info.status for r in passing} == {"FINISHED"}
    assert result.returncode == 1
    assert f"{len(failing)} of 3 jobs of the multirun failed" in result.stderr

    results = OmegaConf.load(sweep_dir_of(runs) / "optimization_results.yaml")
    assert results.best_params["optimizer.lr"] == 0.001
    assert results.best_value == pytest.approx(max(r.data.metrics["val/f1_macro"] for r in passing))


@pytest.mark.slow
def test_submitit_local_launcher_runs_each_job_in_its_own_process(tmp_path, small_mitdb):
    """hydra/launcher=submitit_local: the SLURM launcher's plugin, local processes."""
    result = multirun(tmp_path, *tiny(tmp_path, small_mitdb()), "hydra/launcher=submitit_local",
                      "hydra.launcher.timeout_min=10", "seed=1,2")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = runs_of(tmp_path)
    assert [(r.data.tags["sweep_job"], r.data.tags["seed"], r.info.status) for r in runs] == [
        ("0", "1", "FINISHED"), ("1", "2", "FINISHED")]
    assert all("test/accuracy" in r.data.metrics for r in runs)
    logs = list((sweep_dir_of(runs) / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2  # one submitit job (process) per Hydra job


@pytest.mark.slow
def test_folds_and_seeds_sweep_then_report(tmp_path, small_mitdb):
    """-m data.fold=range(0,2) seed=1,2 (k-fold over 3 subjects): four runs, one report row."""
    from ecg_lightning.report import make_report

    records = small_mitdb(records=("100", "101", "103"))
    result = multirun(tmp_path, *tiny(tmp_path, records), "data.split=kfold",
                      "data.num_folds=3", "data.fold=range(0,2)", "seed=1,2")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = runs_of(tmp_path)
    assert sorted((r.data.tags["fold"], r.data.tags["seed"]) for r in runs) == [
        ("0/3", "1"), ("0/3", "2"), ("1/3", "1"), ("1/3", "2")]

    report = make_report([f"paths.root_dir={tmp_path}", f"out={tmp_path / 'reports'}"])
    (row,) = report.table.to_dict("records")
    assert (row["n"], row["seeds"], row["folds"]) == (4, "1, 2", "0/3, 1/3")
    accuracies = [r.data.metrics["test/accuracy"] for r in runs]
    assert row["test/accuracy mean"] == pytest.approx(sum(accuracies) / 4)


@pytest.mark.parametrize("mode, direction", [("max", "maximize"), ("min", "minimize")])
def test_optuna_direction_follows_the_monitored_metric(mode, direction):
    cfg = compose_with_hydra("hparams_search=optuna", f"monitor.mode={mode}")
    assert cfg.hydra.sweeper.direction == direction
    assert cfg.hydra.sweeper.storage is None  # in memory: optuna 2's sqlite storage, SQLAlchemy 2
    assert cfg.hydra.sweeper.max_failure_rate == 1.0
    assert "optimizer.lr" in cfg.hydra.sweeper.params
    assert cfg.optimized_metric == cfg.monitor.metric


def test_slurm_launcher_settings_follow_the_ddp_trainer():
    cfg = compose_with_hydra("hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4",
                             "trainer.num_nodes=2", "hydra.launcher.gpus_per_node=4",
                             "hydra.launcher.partition=gpu")
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu" and launcher.timeout_min > 0
    assert cfg.trainer.strategy == "ddp"
