"""`python -m ecg_lightning.evaluate`: a checkpoint re-tested, linked to its run, bad input refused."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from ecg_lightning.evaluate import evaluate
from ecg_lightning.run import train
from ecg_lightning.summary import compose_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mitdb_cache_dir):
    """A short training run logged to its own sqlite store; (root, cache, run id, best ckpt)."""
    root = tmp_path_factory.mktemp("evaluate")
    overrides = [f"paths.root_dir={root}", f"paths.cache_dir={mitdb_cache_dir}",
                 "callbacks.progress_bar.refresh_rate=0", "bootstrap_resamples=20",
                 "debug=limit", "trainer.limit_test_batches=8"]
    cfg = compose_config([f"paths.output_dir={root}/run", *overrides])
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        _, metrics = train(cfg)
    client = MlflowClient(f"sqlite:///{root}/outputs/mlflow.db")
    (run,) = client.search_runs(client.get_experiment_by_name("ecg-lightning").experiment_id)
    best = next((root / "run" / "checkpoints").glob("best-*.ckpt"))
    return root, overrides, run.info.run_id, best, metrics, client


def evaluation_runs(client):
    experiment = client.get_experiment_by_name("ecg-lightning").experiment_id
    return client.search_runs(experiment, "tags.evaluates_checkpoint != ''",
                              order_by=["attributes.start_time DESC"])


def test_checkpoint_path_reproduces_the_test_metrics(trained, monkeypatch):
    root, overrides, _, best, train_metrics, client = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _, metrics = evaluate(str(best), overrides)
    for name in ("test/accuracy", "test/f1_macro", "test/auroc_macro", "test/sensitivity/N"):
        assert metrics[name] == pytest.approx(train_metrics[name], abs=1e-6), name
    run = evaluation_runs(client)[0]
    assert run.info.status == "FINISHED" and run.data.tags["evaluates_checkpoint"] == str(best)
    assert "test/gmean_threshold/N" in run.data.metrics


def test_runs_uri_downloads_the_artifact_and_links_the_run(trained, monkeypatch):
    root, overrides, run_id, _, train_metrics, client = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/outputs/mlflow.db")

    def checkpoints(path=None):
        for item in client.list_artifacts(run_id, path):
            yield from checkpoints(item.path) if item.is_dir else [item.path]

    artifact = next(p for p in checkpoints() if Path(p).name.startswith("best-"))
    _, metrics = evaluate(f"runs:/{run_id}/{artifact}", overrides)
    assert metrics["test/accuracy"] == pytest.approx(train_metrics["test/accuracy"], abs=1e-6)
    assert evaluation_runs(client)[0].data.tags["evaluates_run"] == run_id


def test_data_override_tests_another_split(trained, monkeypatch):
    _, overrides, _, best, train_metrics, client = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _, metrics = evaluate(str(best), [*overrides, "data.split=record", "data.seed=3"])
    # other test beats: the loss differs (accuracy alone can coincide: a net trained for a few
    # batches may call every beat one class and score 0 on both splits)
    assert metrics["test/loss"] != pytest.approx(train_metrics["test/loss"], abs=1e-9)
    assert evaluation_runs(client)[0].data.tags["split"] == "subject_disjoint_random"


def test_incompatible_data_is_refused_and_the_run_ends_failed(trained, monkeypatch):
    _, overrides, _, best, _, client = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ValueError, match=r"trained on classes \['N', 'S', 'V', 'F', 'Q'\]"):
        evaluate(str(best), [*overrides, "data.label_scheme=binary"])
    assert evaluation_runs(client)[0].info.status == "FAILED"


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        evaluate(str(tmp_path / "missing.ckpt"))
    pickled = tmp_path / "object.ckpt"
    pickled.write_bytes(pickle.dumps(object()))  # arbitrary pickles are never executed
    with pytest.raises(ValueError, match=r"object.ckpt is not a checkpoint .*weights_only=True"):
        evaluate(str(pickled))
    other = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="not an ecg-lightning checkpoint"):
        evaluate(str(other))


@pytest.mark.slow  # 10-15 s; moved out of the fast suite to keep it under 10 minutes
def test_command_line(trained):
    root, overrides, _, best, train_metrics, _ = trained
    result = subprocess.run([sys.executable, "-m", "ecg_lightning.evaluate", f"ckpt={best}",
                             *overrides], capture_output=True, text=True, cwd=REPO, timeout=300,
                            env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{train_metrics['test/accuracy']:.4f}" in result.stdout
