"""Shared fixtures: where the real databases live, a session-wide mitdb cache, small mitdb copies.

The shared data folder comes from ``ECG_DATA_DIR``, else ``/work/shared/data`` next to the
repository. The variable is set at import so that subprocesses started by any test inherit it;
a relative value (``ECG_DATA_DIR=../shared/data make test``) is made absolute by importing
``ecg_lightning`` first, against the directory pytest was started in.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

import ecg_lightning  # noqa: F401  makes a relative ECG_DATA_DIR (and cache, root) absolute

# tests/ -> main/ -> work/: the shared data lives next to the repository, in /work/shared/data.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("ECG_DATA_DIR", str(DEFAULT_DATA_DIR))
DATA_DIR = Path(os.environ["ECG_DATA_DIR"])  # absolute: read before any test changes directory

# `make test` runs the suite in two pytest-xdist workers, one per core of the 2-core CI machine
# (most tests wait on single-threaded work: imports, subprocess start-up, MLflow's sqlite). Each
# worker, and every run it starts, uses one torch thread, so the two do not oversubscribe the
# cores, and a subprocess run still uses the thread count of an in-process one.
if "PYTEST_XDIST_WORKER" in os.environ:
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

MITDB_FILES = ("hea", "dat", "atr")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding the real databases (one sub-folder per PhysioNet slug)."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared ECG data not found at {DATA_DIR} (set ECG_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def mitdb_dir(data_dir) -> Path:
    """The full MIT-BIH Arrhythmia Database (48 records)."""
    mitdb = data_dir / "mitdb"
    if not (mitdb / "RECORDS").is_file():
        pytest.skip(f"MIT-BIH database not found at {mitdb} (set ECG_DATA_DIR)")
    return mitdb


@pytest.fixture(scope="session")
def mitdb_cache_dir(tmp_path_factory) -> Path:
    """A preprocessing cache folder shared by the whole session (built once, ~2-4 s)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def mitdb_datamodule(mitdb_dir, mitdb_cache_dir):
    """The default mitdb datamodule (inter_patient, aami, paced excluded), set up for all stages."""
    from ecg_lightning.data.mitdb import MITBIHDataModule

    datamodule = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir))
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def make_small_mitdb(dest: Path, records=("100", "101"), copy=()) -> Path:
    """A mitdb folder at ``dest`` with only ``records`` and its own RECORDS file.

    Files are symlinks to the shared database, except every file of the records in ``copy``,
    which are real copies that a test may truncate or overwrite without touching the original.
    """
    source = DATA_DIR / "mitdb"
    dest.mkdir(parents=True)
    for record in records:
        for ext in MITDB_FILES:
            if record in copy:
                shutil.copyfile(source / f"{record}.{ext}", dest / f"{record}.{ext}")
            else:
                (dest / f"{record}.{ext}").symlink_to(source / f"{record}.{ext}")
    (dest / "RECORDS").write_text("".join(f"{record}\n" for record in records))
    return dest


@pytest.fixture
def small_mitdb(tmp_path, mitdb_dir):
    """Factory: ``small_mitdb(records=("100", "101"), copy=("100",))`` -> a fresh small mitdb folder."""
    made = []

    def make(records=("100", "101"), copy=()) -> Path:
        made.append(make_small_mitdb(tmp_path / f"mitdb{len(made)}" / "mitdb", records, copy))
        return made[-1]

    return make


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output clean
        pass


def write_checksums(folder: Path) -> None:
    """PhysioNet's ``SHA256SUMS.txt`` for every file under ``folder`` (paths relative to it)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS.txt")
    (folder / "SHA256SUMS.txt").write_text("".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}\n"
        for p in files))


@contextlib.contextmanager
def serve_folder(root: Path):
    """Serve ``root`` over HTTP on a free 127.0.0.1 port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
