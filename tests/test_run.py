"""End to end: `python -m ecg_lightning.run` in a subprocess, read back from MLflow.

Each run writes into its own temporary project folder (``paths.root_dir``), so the sqlite
store, the artifacts and the Hydra run folder are the ones this test created.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ecg_lightning.run import train
from ecg_lightning.summary import compose_config
from ecg_lightning.tracking import recipe_fingerprint

RUN_ID = re.compile(r"MLflow run id: ([0-9a-f]{32})")


def run_cli(root: Path, cache_dir: Path, *overrides: str, flags: tuple[str, ...] = ()
            ) -> subprocess.CompletedProcess:
    env = {**os.environ, "ECG_CACHE_DIR": str(cache_dir)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "ecg_lightning.run", *flags, f"paths.root_dir={root}",
                           "callbacks.progress_bar.refresh_rate=0", *overrides],
                          capture_output=True, text=True, env=env, timeout=600)


def client_for(root: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{root}/outputs/mlflow.db")


def artifact_names(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    names = set()
    for item in client.list_artifacts(run_id, path):
        names |= artifact_names(client, run_id, item.path) if item.is_dir else {item.path}
    return names


def test_short_run_is_recorded_in_mlflow(tmp_path, mitdb_cache_dir):
    """debug=limit: two short epochs, test, and everything a run must leave in MLflow."""
    result = run_cli(tmp_path, mitdb_cache_dir, "debug=limit", "seed=7")
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = RUN_ID.search(result.stdout).group(1)
    run = client_for(tmp_path).get_run(run_id)

    assert run.info.status == "FINISHED"
    for name in ("test/accuracy", "test/f1_macro", "test/auroc_macro", "test/sensitivity/N",
                 "test/f1/V", "val/f1_macro", "train/loss_epoch", "train/accuracy",
                 "train/f1_macro", "train/f1/N"):
        assert name in run.data.metrics, name
    assert 0.0 <= run.data.metrics["test/accuracy"] <= 1.0
    history = client_for(tmp_path).get_metric_history(run_id, "val/f1_macro")
    assert len(history) == 2  # one value per epoch

    tags = run.data.tags
    assert (tags["data"], tags["model"], tags["loss"]) == ("mitdb_interpatient", "beat_cnn", "ce")
    assert tags["split"] == "inter_patient" and tags["seed"] == "7"
    assert tags["git_commit"]
    # what the run computes, not its seed or folders: the same as the bare composition's
    assert tags["recipe"] == recipe_fingerprint(compose_config(["debug=limit"]))
    assert int(run.data.params["model/num_params"]) > 0
    assert run.data.params["data/split"] == "inter_patient"

    artifacts = artifact_names(client_for(tmp_path), run_id)
    for name in ("config.yaml", "dataset_card.json", "metrics_test.json",
                 "confusion_matrix.csv", "confusion_matrix.png", "thresholds.json",
                 "thresholds.csv", "roc_curves.png", "training_curves.png", "test_examples.png",
                 "confusion_matrix_normalised.csv"):
        assert name in artifacts, (name, artifacts)
    assert any(a.endswith(".ckpt") for a in artifacts), artifacts


def test_crash_ends_the_run_failed_with_a_clear_message(tmp_path, mitdb_cache_dir):
    """A wrong optimised metric fails after training; the MLflow run ends FAILED."""
    result = run_cli(tmp_path, mitdb_cache_dir, "debug=fdr", "optimized_metric=val/f2")
    assert result.returncode != 0
    assert "optimized_metric='val/f2'" in result.stderr and "val/f1_macro" in result.stderr
    runs = client_for(tmp_path).search_runs(
        [client_for(tmp_path).get_experiment_by_name("ecg-lightning").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_wrong_group_option_lists_valid_options(tmp_path, mitdb_cache_dir):
    result = run_cli(tmp_path, mitdb_cache_dir, "model=transformerxl")
    assert result.returncode != 0
    assert "lstm" in result.stderr and "gru" in result.stderr


@pytest.mark.slow  # 10-15 s; moved out of the fast suite to keep it under 10 minutes
def test_paper_preset_runs(tmp_path, mitdb_cache_dir):
    """experiment=satheeswaran2024_mitdb on one batch; its split is tagged intra_patient."""
    result = run_cli(tmp_path, mitdb_cache_dir, "experiment=satheeswaran2024_mitdb", "debug=fdr")
    assert result.returncode == 0, result.stderr[-3000:]
    run = client_for(tmp_path).get_run(RUN_ID.search(result.stdout).group(1))
    assert run.data.tags["split"] == "intra_patient"
    assert run.data.tags["preset"] == "satheeswaran2024_mitdb"


@pytest.mark.parametrize("overrides", [
    ["model=gru", "loss=bce", "loss.weighting=inverse"],
    ["model=lstm", "loss=ce", "loss.weighting=inverse_sqrt", "loss.label_smoothing=0.1",
     "optimizer=adamw", "scheduler=cosine"],
    ["data.label_scheme=binary", "data.split=record", "optimizer=sgd", "scheduler=plateau"],
    ["data.label_scheme=symbols", "data.split=kfold", "data.fold=2"],
])
def test_combinations_train_in_process(tmp_path, mitdb_cache_dir, overrides):
    """Any model x loss x optimiser x data option trains and tests (fast_dev_run)."""
    cfg = compose_config([*overrides, "debug=fdr", "logger=csv", f"paths.root_dir={tmp_path}",
                          f"paths.output_dir={tmp_path}/run", f"paths.cache_dir={mitdb_cache_dir}",
                          "callbacks.progress_bar.refresh_rate=0"])
    value, metrics = train(cfg)
    assert 0.0 <= value <= 1.0
    assert "test/f1_macro" in metrics
    assert (tmp_path / "run" / "confusion_matrix.csv").exists()


@pytest.mark.slow  # 19 s; tests/test_sweeps.py runs multiruns in the fast suite
def test_multirun_sweep_records_one_tagged_run_per_job(tmp_path, mitdb_cache_dir):
    """`-m model=lstm,gru`: two jobs, two MLflow runs in one experiment, tagged with the sweep."""
    result = run_cli(tmp_path, mitdb_cache_dir, "model=lstm,gru", "debug=fdr", flags=("-m",))
    assert result.returncode == 0, result.stderr[-3000:]
    client = client_for(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("ecg-lightning").experiment_id])
    assert sorted(r.data.tags["model"] for r in runs) == ["gru", "lstm"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["sweep_dir"] for r in runs}) == 1
    assert sorted(r.data.tags["sweep_job"] for r in runs) == ["0", "1"]


def test_sigterm_ends_the_run_failed_and_keeps_a_checkpoint(tmp_path, mitdb_cache_dir):
    """A scheduler's SIGTERM mid-training: a non-zero exit, the MLflow run FAILED (never
    RUNNING or FINISHED), and a last.ckpt that ``ckpt_path=last`` resumes from."""
    import signal
    import time

    env = {**os.environ, "ECG_CACHE_DIR": str(mitdb_cache_dir)}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "ecg_lightning.run", f"paths.root_dir={tmp_path}",
         "callbacks.progress_bar.refresh_rate=0", "debug=limit", "trainer.max_epochs=500"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("outputs/runs/*/checkpoints/last.ckpt")):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr[-3000:]
    assert "stopped by SIGTERM" in stderr and "ckpt_path=last" in stderr
    client = client_for(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("ecg-lightning").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert list(tmp_path.glob("outputs/runs/*/checkpoints/last.ckpt"))
