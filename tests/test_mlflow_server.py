"""A real MLflow tracking server: a short training logs to it and is read back over HTTP.

The server is `mlflow server` in a subprocess on a free loopback port, with its own sqlite store
and artifact folder. It is started with ``--artifacts-destination`` (``--serve-artifacts`` is
on by default): new experiments then get the artifact root ``mlflow-artifacts:/``, so the
training process uploads its artifacts through the server and this test lists and downloads
them through the server. ``--default-artifact-root <folder>`` would instead hand every client
that local folder to write into directly, and no artifact would travel over HTTP. With an
``http:`` tracking URI the run config's ``logger.mlflow.artifact_location`` resolves to null
(conf/logger/mlflow.yaml), so the experiment takes the server's root, not ``outputs/mlartifacts``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from test_run import RUN_ID, artifact_names  # pytest puts tests/ on sys.path

MLFLOW = Path(sys.executable).parent / "mlflow"  # the venv's own executable
MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Poll ``<url>/health`` until it answers; fail with the server's output if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server gave no /health answer in {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def mlflow_process(arguments: list[str], log: Path, cwd: Path | None = None,
                   timeout: float = 60):
    """Run ``mlflow <arguments> --host 127.0.0.1 --port <free>``; yield its URL once healthy.

    The process gets its own process group (its workers stop with it) and no background job
    runner (scorers, trace archival: nothing here uses it, and it slows start and stop).
    """
    port = free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(MLFLOW), *arguments, "--host", "127.0.0.1", "--port", str(port)],
            stdout=output, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log, timeout)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(URL, folder) of a running `mlflow server`; stopped at the end of the module."""
    folder = tmp_path_factory.mktemp("mlflow_server")
    with mlflow_process(["server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
                         "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
                        folder / "server.log") as url:
        yield url, folder


@pytest.mark.slow  # 10-15 s; moved out of the fast suite to keep it under 10 minutes
def test_training_logs_to_a_real_server_and_reads_back_over_http(server, tmp_path,
                                                                 mitdb_cache_dir):
    url, folder = server
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "ECG_CACHE_DIR": str(mitdb_cache_dir)}
    # debug=limit cut to one batch per stage (fast_dev_run would switch the loggers off).
    result = subprocess.run(
        [sys.executable, "-m", "ecg_lightning.run", f"paths.root_dir={tmp_path}", "seed=5",
         "debug=limit", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
         "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
         "callbacks.progress_bar.refresh_rate=0"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"tracking URI {url}" in result.stdout
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # nothing went to the local store

    client = MlflowClient(tracking_uri=url)
    run = client.get_run(RUN_ID.search(result.stdout).group(1))
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied by the server
    for name in ("test/accuracy", "test/f1_macro", "test/auroc_macro", "val/f1_macro"):
        assert 0.0 <= run.data.metrics[name] <= 1.0, name
    tags = run.data.tags
    assert (tags["data"], tags["model"], tags["loss"], tags["seed"]) == ("mitdb_interpatient", "beat_cnn", "ce", "5")

    artifacts = artifact_names(client, run.info.run_id)
    for name in ("config.yaml", "metrics_test.json", "confusion_matrix.png", "dataset_card.json"):
        assert name in artifacts, (name, artifacts)
    downloaded = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path)))
    config = OmegaConf.load(downloaded)
    assert config.seed == 5 and config.logger.mlflow.tracking_uri == url
    card = json.loads(Path(client.download_artifacts(
        run.info.run_id, "dataset_card.json", str(tmp_path))).read_text())
    assert card["database"] == "mitdb"
    # The bytes went through the server into its --artifacts-destination folder.
    assert list((folder / "artifacts").rglob("metrics_test.json"))


def test_make_ui_uses_flags_that_mlflow_ui_accepts():
    """`make ui`'s command line: every flag it passes is one `mlflow ui --help` lists."""
    ui_line = next(line for line in MAKEFILE.read_text().splitlines()
                   if "mlflow ui" in line and not line.startswith("#"))
    flags = re.findall(r"\s(--[a-z-]+)", ui_line)
    assert {"--backend-store-uri", "--host"} <= set(flags), ui_line
    help_text = subprocess.run([str(MLFLOW), "ui", "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    for flag in flags:
        assert re.search(rf"(^|[\s,]){flag}\b", help_text, re.M), flag
    assert "--host 127.0.0.1" in ui_line  # loopback only, as the issue asks
