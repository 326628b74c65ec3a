"""Fault tolerance and reproducibility: resume, determinism, outputs that cannot be written.

All runs train a small LSTM on two MIT-BIH records (100 and 101, their first 10 minutes) with
``trainer.deterministic=true``. Runs compared with each other run the same way (in this process,
or each in a subprocess), so that thread counts cannot differ between them.

What makes a resumed run equal to an uninterrupted one: ``last.ckpt`` is written after every
validation (``callbacks.last_checkpoint``) and carries the random number generators
(``callbacks.random_state``; Lightning saves model, optimiser, loops and callbacks but not the
RNGs), and training restarts at the next epoch boundary, where a fresh shuffle is drawn from
those restored generators. A run killed in the middle of an epoch loses that epoch's steps and
redoes them identically.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import make_small_mitdb
from ecg_lightning.run import train
from ecg_lightning.summary import compose_config

REPO = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 30


@pytest.fixture(scope="module")
def records(tmp_path_factory, mitdb_dir) -> Path:
    return make_small_mitdb(tmp_path_factory.mktemp("records") / "mitdb")


def setting(root: Path, records: Path, epochs: int) -> list[str]:
    return [f"paths.root_dir={root}", f"paths.cache_dir={root / 'cache'}", f"data.root={records}",
            "data.split=intra_patient", "data.max_seconds=600", "data.batch_size=32",
            "model.net.width=8", f"trainer.max_epochs={epochs}",
            f"+trainer.limit_train_batches={STEPS_PER_EPOCH}", "trainer.deterministic=true",
            "trainer.log_every_n_steps=1", "callbacks.early_stopping=null",
            "callbacks.progress_bar.refresh_rate=0", "bootstrap_resamples=10"]


def run_in_process(root: Path, records: Path, output_dir: Path, epochs: int, *extra: str) -> dict:
    cfg = compose_config([*setting(root, records, epochs), f"paths.output_dir={output_dir}",
                          *extra])
    try:
        return train(cfg)[1]
    finally:
        torch.use_deterministic_algorithms(False)  # Lightning sets it process-wide


def start_cli(root: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "ECG_CACHE_DIR": str(root / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, "-m", "ecg_lightning.run", *overrides], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def state_dicts_equal(a: Path, b: Path) -> bool:
    first, second = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    assert first.keys() == second.keys()
    for name in first:  # gmean_thresholds holds NaN for a class without validation positives
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0, equal_nan=True)
    return True


@pytest.fixture(scope="module")
def in_process(tmp_path_factory, records):
    """Two identical 2-epoch runs, and a 1-epoch run resumed to 2 epochs, in one MLflow store."""
    root = tmp_path_factory.mktemp("in_process")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        first = run_in_process(root, records, root / "first", 2)
        second = run_in_process(root, records, root / "second", 2)
        run_in_process(root, records, root / "resumed", 1, "test=false")
        resumed = run_in_process(root, records, root / "resumed", 2, "ckpt_path=last")
    return root, first, second, resumed


def test_same_config_and_seed_give_identical_test_metrics(in_process):
    root, first, second, _ = in_process
    test_metrics = {k: v for k, v in first.items() if k.startswith("test/")}
    assert len(test_metrics) > 20 and 0.0 < test_metrics["test/accuracy"] <= 1.0
    assert test_metrics == {k: v for k, v in second.items() if k.startswith("test/")}
    assert state_dicts_equal(root / "first/checkpoints/last.ckpt",
                             root / "second/checkpoints/last.ckpt")


def test_resume_from_last_continues_training_and_the_mlflow_run(in_process):
    """ckpt_path=last in the same folder: epoch 2 as the uninterrupted run had it, one run."""
    root, first, _, resumed = in_process
    assert {k: v for k, v in resumed.items() if k.startswith("test/")} == {
        k: v for k, v in first.items() if k.startswith("test/")}
    assert state_dicts_equal(root / "first/checkpoints/last.ckpt",
                             root / "resumed/checkpoints/last.ckpt")

    run_id = json.loads((root / "resumed" / "mlflow_run.json").read_text())["run_id"]
    client = MlflowClient(f"sqlite:///{root}/outputs/mlflow.db")
    experiment = client.get_experiment_by_name("ecg-lightning").experiment_id
    assert len(client.search_runs([experiment])) == 3  # first, second, resumed (one run)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["resumed_from"] == str(root / "resumed" / "checkpoints" / "last.ckpt")
    history = client.get_metric_history(run_id, "val/f1_macro")  # epoch 1 from the first part
    assert [m.step for m in history] == [STEPS_PER_EPOCH - 1, 2 * STEPS_PER_EPOCH - 1]
    first_run = json.loads((root / "first" / "mlflow_run.json").read_text())["run_id"]
    assert [m.value for m in history] == [
        m.value for m in client.get_metric_history(first_run, "val/f1_macro")]


def test_last_without_a_checkpoint_is_a_clear_error(tmp_path, records):
    with pytest.raises(FileNotFoundError, match="ckpt_path=last: no last.ckpt or on_exception.ckpt "
                                                f"in {tmp_path / 'new' / 'checkpoints'}"):
        run_in_process(tmp_path, records, tmp_path / "new", 1, "ckpt_path=last", "logger=none")


def test_a_new_run_in_a_used_run_folder_is_refused(tmp_path, records, in_process):
    """The same command twice into one hydra.run.dir, the second with another seed and no
    ckpt_path. Beside an OnExceptionCheckpoint, Lightning turns ``fit(ckpt_path=None)`` into
    ``"last"``: the second run would restore the first's last.ckpt, train nothing and test the
    first's best checkpoint. It is refused instead, naming the folder and the two ways out, and
    the first run's files stay as they were (Hydra itself rewrites ``.hydra/`` and appends to
    the log before any of our code runs). The first run is a copy of the module's in-process
    run (saves a subprocess run), the second goes through the command line."""
    run_dir = tmp_path / "run"
    shutil.copytree(in_process[0] / "first", run_dir)
    command = [*setting(tmp_path, records, 2), "logger=none", f"hydra.run.dir={run_dir}"]

    def files() -> dict:
        return {path.relative_to(run_dir): (path.stat().st_mtime_ns, path.read_bytes())
                for path in run_dir.rglob("*") if path.is_file()
                and ".hydra" not in path.relative_to(run_dir).parts and path.suffix != ".log"}

    before = files()
    assert {"last.ckpt", "metrics_test.json"} <= {path.name for path in before}
    assert any(path.name.startswith("best-epoch") for path in before)

    second = start_cli(tmp_path, *command, "seed=2")
    _, stderr = second.communicate(timeout=300)
    assert second.returncode == 1
    message = " ".join(stderr.split())
    assert (f"{run_dir / 'checkpoints'} already holds checkpoints of an earlier run" in message
            ), stderr[-3000:]
    assert "last.ckpt" in message and "ckpt_path=last" in message
    assert "hydra.run.dir=<a new folder>" in message
    assert "Restored all states" not in stderr
    assert files() == before


@pytest.mark.slow
def test_sigkill_in_the_middle_of_an_epoch_then_resume(tmp_path, records):
    """Kill -9 inside epoch 2 of 3, resume: the uninterrupted run's weights and test metrics."""
    uninterrupted = start_cli(tmp_path / "a", *setting(tmp_path / "a", records, 3),
                              f"hydra.run.dir={tmp_path / 'a' / 'run'}")
    assert uninterrupted.wait(timeout=900) == 0, uninterrupted.stderr.read()[-3000:]

    root, run_dir = tmp_path / "b", tmp_path / "b" / "run"
    command = [*setting(root, records, 3), f"hydra.run.dir={run_dir}"]
    killed = start_cli(root, *command)
    store = root / "outputs" / "mlflow.db"
    steps = 0
    deadline = time.monotonic() + 600
    while steps < STEPS_PER_EPOCH + 5 and time.monotonic() < deadline:  # well into epoch 2
        assert killed.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
        try:
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
                steps = db.execute("SELECT COUNT(*) FROM metrics WHERE key = 'train/loss_step'"
                                   ).fetchone()[0]
        except sqlite3.OperationalError:  # store or table not there yet
            continue
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=60) == -signal.SIGKILL

    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (0, STEPS_PER_EPOCH)  # end of epoch 1 only
    run_id = json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]
    client = MlflowClient(f"sqlite:///{store}")
    assert client.get_run(run_id).info.status == "RUNNING"  # SIGKILL: nobody could end it
    logged_before = {m.step: m.value for m in client.get_metric_history(run_id, "train/loss_step")}
    assert max(logged_before) >= STEPS_PER_EPOCH + 4  # it was inside epoch 2

    resumed = start_cli(root, *command, "ckpt_path=last")
    stdout, stderr = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, stderr[-3000:]
    assert f"MLflow run id: {run_id}" in stdout

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["resumed_from"] == str(run_dir / "checkpoints" / "last.ckpt")
    # Both parts are in the run: epoch 1 from the first, epochs 2-3 from the resumed part; the
    # steps of epoch 2 that the first part logged before it died were redone with equal values.
    history = client.get_metric_history(run_id, "val/f1_macro")
    assert [m.step for m in history] == [STEPS_PER_EPOCH * e - 1 for e in (1, 2, 3)]
    steps_logged = client.get_metric_history(run_id, "train/loss_step")
    assert {m.step for m in steps_logged} == set(range(3 * STEPS_PER_EPOCH))
    for m in steps_logged:
        assert m.value == logged_before.get(m.step, m.value), m.step

    expected = json.loads((tmp_path / "a" / "run" / "metrics_test.json").read_text())["metrics"]
    assert json.loads((run_dir / "metrics_test.json").read_text())["metrics"] == expected
    assert state_dicts_equal(tmp_path / "a" / "run" / "checkpoints" / "last.ckpt",
                             run_dir / "checkpoints" / "last.ckpt")


# ------------------------------------------------------------------ outputs that cannot be written
# Tests run as root here, where chmod does not stop writes: a path under a regular file
# (ENOTDIR) cannot be written by anyone.

@pytest.fixture
def blocker(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("override, message", [
    ("paths.output_dir={blocker}/run", "cannot write the run's outputs to {blocker}/run"),
    ("callbacks.model_checkpoint.dirpath={blocker}/ckpt",
     "cannot write checkpoints (ModelCheckpoint) to {blocker}/ckpt"),
    ("paths.cache_dir={blocker}/cache", "could not write the preprocessing cache {blocker}/cache"),
])
def test_unwritable_folder_is_a_clear_error(tmp_path, records, blocker, override, message):
    cfg = compose_config([*setting(tmp_path, records, 1), "logger=none",
                          f"paths.output_dir={tmp_path / 'run'}", override.format(blocker=blocker)])
    with pytest.raises(OSError) as error:
        train(cfg)
    assert message.format(blocker=blocker) in str(error.value)
    assert "Not a directory" in str(error.value)
    assert not (tmp_path / "run" / "checkpoints").exists() or not any(
        (tmp_path / "run" / "checkpoints").iterdir())


def test_unwritable_outputs_folder_on_the_command_line(tmp_path, records, blocker):
    """Hydra makes the run folder before anything runs; its error names it."""
    process = start_cli(tmp_path, *setting(blocker, records, 1))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    assert f"Not a directory: '{blocker}" in stderr


@pytest.mark.slow
def test_full_disk_leaves_nothing_half_written(tmp_path, records):
    """A file-size limit (EFBIG, as a full disk gives ENOSPC) while writing the cache, then while
    writing a checkpoint: clear errors, and no partial cache entry or checkpoint file."""
    limit = 200_000  # bytes: the Hydra files and logs fit; the cache arrays and checkpoints do not

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    def run(*extra: str) -> subprocess.CompletedProcess:
        env = {**os.environ}
        env.pop("MLFLOW_TRACKING_URI", None)
        return subprocess.run([sys.executable, "-m", "ecg_lightning.run",
                               *setting(tmp_path, records, 1), "logger=none",
                               "model.net.width=64", *extra],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
                              preexec_fn=limited)

    result = run(f"hydra.run.dir={tmp_path / 'run1'}")
    assert result.returncode == 1
    assert f"could not write the preprocessing cache {tmp_path / 'cache'}" in result.stderr
    assert "paths.cache_dir" in result.stderr and "[Errno None]" not in result.stderr
    assert not any((tmp_path / "cache").rglob("*.npy"))  # neither an entry nor a partial one

    compose_cfg = compose_config([*setting(tmp_path, records, 1), "paths.output_dir=unused"])
    from hydra.utils import instantiate
    instantiate(compose_cfg.data).prepare_data()  # the cache, written without the limit

    result = run(f"hydra.run.dir={tmp_path / 'run2'}")
    assert result.returncode == 1
    assert "ran out of space writing the run's outputs" in result.stderr
    assert str(tmp_path / "run2") in result.stderr
    assert list((tmp_path / "run2" / "checkpoints").iterdir()) == []
