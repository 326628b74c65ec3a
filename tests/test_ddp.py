"""trainer=ddp on CPU: two gloo processes, one run folder, one MLflow run, one set of checkpoints.

What "consistent" means here: every process tests its own half of the test split
(DistributedSampler), and the epoch metrics are torchmetrics states summed over both processes
before they are computed, so the DDP run's test metrics must equal those of a single process
testing the saved best checkpoint on the whole split. DistributedSampler pads an odd split with
a repeated item; the split here is even, and the test checks that it is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ecg_lightning.evaluate import evaluate

REPO = Path(__file__).resolve().parents[1]
RUN_ID = re.compile(r"MLflow run id: ([0-9a-f]{32})")
COMPARED = ("test/accuracy", "test/f1_macro", "test/f1_weighted", "test/auroc_macro",
            "test/sensitivity/N")


def tiny(root: Path, records: Path) -> list[str]:
    return [f"paths.root_dir={root}", f"data.root={records}", "data.split=intra_patient",
            "data.max_seconds=300", "data.batch_size=32", "model.net.width=8",
            "trainer.max_epochs=2", "+trainer.limit_train_batches=4",
            "callbacks.progress_bar.refresh_rate=0", "bootstrap_resamples=10"]


def run_cli(root: Path, *overrides: str, flags: tuple[str, ...] = ()
            ) -> subprocess.CompletedProcess:
    env = {**os.environ, "ECG_CACHE_DIR": str(root / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "ecg_lightning.run", *flags, *overrides],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=900)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path, small_mitdb, monkeypatch):
    records = small_mitdb()
    run_dir = tmp_path / "run"
    result = run_cli(tmp_path, *tiny(tmp_path, records), "trainer=ddp", "trainer.accelerator=cpu",
                     "trainer.devices=2", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "MEMBER: 1/2" in output and "MEMBER: 2/2" in output  # both ranks joined (gloo)
    assert len(RUN_ID.findall(result.stdout)) == 1  # only rank zero reports a run

    # One output folder: rank 1 ran in it too (its Hydra log), and no other run folder exists.
    assert (run_dir / "train_ddp_process_1.log").exists()
    assert not (tmp_path / "outputs" / "runs").exists()
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints  # one best, one last

    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("ecg-lightning").experiment_id])
    assert run.info.run_id == RUN_ID.search(result.stdout).group(1)
    assert run.info.status == "FINISHED"
    assert (run.data.params["trainer/strategy"], run.data.params["trainer/devices"]) == ("ddp", "2")
    assert len(client.get_metric_history(run.info.run_id, "val/f1_macro")) == 2  # once per epoch

    # Consistent: the whole test split, once, and the metrics of one process on the same data.
    report = json.loads((run_dir / "metrics_test.json").read_text())
    tested = sum(map(sum, report["confusion"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    best = next((run_dir / "checkpoints").glob("best-*.ckpt"))
    _, single = evaluate(str(best), [f"data.root={records}", f"paths.root_dir={tmp_path}",
                                     f"paths.cache_dir={tmp_path / 'cache'}", "logger=none",
                                     "callbacks.progress_bar.refresh_rate=0",
                                     "bootstrap_resamples=10"])
    single_report = json.loads(next((tmp_path / "outputs" / "evaluations").glob(
        "*/metrics_test.json")).read_text())
    assert tested == sum(map(sum, single_report["confusion"]))
    assert tested % 2 == 0  # no padding item: the two halves are the split exactly
    for name in COMPARED:
        assert run.data.metrics[name] == pytest.approx(single[name], abs=1e-6), name


@pytest.mark.slow
def test_ddp_inside_a_local_multirun_is_refused(tmp_path, small_mitdb):
    """Lightning would start the whole sweep again in each DDP process: the job fails, clearly."""
    result = run_cli(tmp_path, *tiny(tmp_path, small_mitdb()), "trainer=ddp",
                     "trainer.accelerator=cpu", "trainer.devices=2", "seed=1", flags=("-m",))
    assert result.returncode == 1
    assert "trainer=ddp with several devices cannot run inside a local multirun" in result.stderr
    assert "1 of 1 jobs of the multirun failed" in result.stderr
    assert "MEMBER: 2/2" not in result.stdout + result.stderr  # no second process was started
