"""Tests of ecg_lightning.data.download against a real HTTP server on 127.0.0.1.

The server serves a temporary folder laid out like PhysioNet (``files/<slug>/<version>/``)
whose ``mitdb/1.0.0`` is a symlink to the real MIT-BIH database in ``$ECG_DATA_DIR``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest
import wfdb
from conftest import serve_folder

from ecg_lightning.data.download import (
    SUMS_FILE,
    ChecksumError,
    DataUnavailableError,
    download_physionet,
    physionet_base_url,
    verify_sha256sums,
)

# tests/ -> main/ -> work/: the shared data lives next to the repository, in /work/shared/data.
DATA_DIR = Path(os.environ.get("ECG_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
MITDB = DATA_DIR / "mitdb"
if not (MITDB / SUMS_FILE).is_file():
    pytest.skip(f"MIT-BIH database not found at {MITDB} (set ECG_DATA_DIR)", allow_module_level=True)

TWO_RECORDS = [f"{rec}.{ext}" for rec in ("100", "101") for ext in ("hea", "dat", "atr")]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """(served root folder, base URL of its ``files/`` tree) of a live local PhysioNet mirror."""
    root = tmp_path_factory.mktemp("mirror")
    (root / "files" / "mitdb").mkdir(parents=True)
    (root / "files" / "mitdb" / "1.0.0").symlink_to(MITDB, target_is_directory=True)
    with serve_folder(root) as base_url:
        yield root, f"{base_url}/files"


def assert_nothing_left(dest: Path) -> None:
    assert not dest.exists()
    if dest.parent.exists():
        assert not [p.name for p in dest.parent.iterdir() if ".partial-" in p.name]


def _closed_port_url() -> str:
    """Base URL of a local port on which nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/files"


def test_download_two_records_reads_with_wfdb(mirror, tmp_path):
    _, url = mirror
    dest = download_physionet("mitdb", "1.0.0", tmp_path / "mitdb", base_url=url, files=TWO_RECORDS,
                              progress=False)
    assert dest == tmp_path / "mitdb"
    assert sorted(p.name for p in dest.iterdir()) == sorted(TWO_RECORDS + [SUMS_FILE])
    assert verify_sha256sums(dest) == []
    assert [p.name for p in tmp_path.iterdir()] == ["mitdb"]  # the temporary folder is gone

    record = wfdb.rdrecord(str(dest / "100"))
    annotation = wfdb.rdann(str(dest / "100"), "atr")
    assert (record.fs, record.n_sig, record.sig_len) == (360, 2, 650000)
    assert len(annotation.sample) > 2000


def test_download_full_database(mirror, tmp_path, capsys):
    _, url = mirror
    dest = download_physionet("mitdb", "1.0.0", tmp_path / "data" / "mitdb", base_url=url)
    records = (MITDB / "RECORDS").read_text().split()
    assert len(records) == 48
    for rec in records:
        for ext in ("hea", "dat", "atr"):
            assert (dest / f"{rec}.{ext}").is_file()
    assert (dest / SUMS_FILE).read_text().split() == (MITDB / SUMS_FILE).read_text().split()
    assert verify_sha256sums(dest) == []
    assert "146/146" in capsys.readouterr().err  # the progress line counts files


def test_existing_folder_is_returned_without_download(tmp_path):
    dest = tmp_path / "mitdb"
    dest.mkdir()
    (dest / "100.hea").write_text("already here")
    # Nothing listens on this URL: returning at all proves no request was made.
    assert download_physionet("mitdb", "1.0.0", dest, base_url=_closed_port_url()) == dest
    assert [p.name for p in dest.iterdir()] == ["100.hea"]


def test_empty_existing_folder_is_filled(mirror, tmp_path):
    _, url = mirror
    dest = tmp_path / "mitdb"
    dest.mkdir()
    download_physionet("mitdb", "1.0.0", dest, base_url=url, files=["100.hea"], progress=False)
    assert sorted(p.name for p in dest.iterdir()) == ["100.hea", SUMS_FILE]


def test_unknown_slug_raises_data_unavailable(mirror, tmp_path):
    _, url = mirror
    dest = tmp_path / "out" / "nosuchdb"
    with pytest.raises(DataUnavailableError) as excinfo:
        download_physionet("nosuchdb", "1.0.0", dest, base_url=url, progress=False)
    message = str(excinfo.value)
    for part in ("nosuchdb", "ECG_DATA_DIR", "data.root", "404", "unknown",
                 f"{url}/nosuchdb/1.0.0/{SUMS_FILE}", str(dest)):
        assert part in message
    assert isinstance(excinfo.value, FileNotFoundError)
    assert_nothing_left(dest)
    assert not dest.parent.exists()  # not even the parent folder is created


def test_unreachable_mirror_raises_data_unavailable(tmp_path):
    dest = tmp_path / "mitdb"
    url = _closed_port_url()
    with pytest.raises(DataUnavailableError) as excinfo:
        download_physionet("mitdb", "1.0.0", dest, base_url=url, progress=False)
    message = str(excinfo.value)
    for part in ("mitdb", "ECG_DATA_DIR", "data.root", url, str(dest)):
        assert part in message
    assert_nothing_left(dest)


def test_file_not_listed_raises_data_unavailable(mirror, tmp_path):
    _, url = mirror
    dest = tmp_path / "mitdb"
    with pytest.raises(DataUnavailableError, match="999.dat"):
        download_physionet("mitdb", "1.0.0", dest, base_url=url, files=["100.hea", "999.dat"], progress=False)
    assert_nothing_left(dest)


def test_corrupted_file_raises_checksum_error_and_leaves_nothing(mirror, tmp_path):
    root, url = mirror
    # A second mirror where 100.dat has one flipped byte but SHA256SUMS.txt is PhysioNet's.
    bad = root / "corrupt" / "mitdb" / "1.0.0"
    bad.mkdir(parents=True)
    for name in (SUMS_FILE, "100.atr", "100.hea"):
        shutil.copy(MITDB / name, bad / name)
    data = bytearray((MITDB / "100.dat").read_bytes())
    data[1000] ^= 0xFF
    (bad / "100.dat").write_bytes(data)

    dest = tmp_path / "mitdb"
    # 100.atr comes first in SHA256SUMS.txt, so a good file is already written when 100.dat fails.
    with pytest.raises(ChecksumError) as excinfo:
        download_physionet("mitdb", "1.0.0", dest, base_url=url.replace("/files", "/corrupt"),
                           files=["100.atr", "100.dat", "100.hea"], progress=False)
    message = str(excinfo.value)
    expected = hashlib.sha256((MITDB / "100.dat").read_bytes()).hexdigest()
    assert "100.dat" in message and expected in message
    assert hashlib.sha256(data).hexdigest() in message
    assert_nothing_left(dest)


def test_verify_sha256sums_reports_tampered_and_missing_files(mirror, tmp_path):
    _, url = mirror
    dest = download_physionet("mitdb", "1.0.0", tmp_path / "mitdb", base_url=url, files=TWO_RECORDS,
                              progress=False)
    (dest / "100.hea").write_text("tampered")
    (dest / "101.atr").unlink()
    assert verify_sha256sums(dest) == ["100.hea", "101.atr"]


def test_env_var_selects_mirror(mirror, tmp_path, monkeypatch):
    _, url = mirror
    monkeypatch.setenv("ECG_PHYSIONET_URL", url + "/")
    assert physionet_base_url() == url  # trailing slash dropped
    dest = download_physionet("mitdb", "1.0.0", tmp_path / "mitdb", files=["100.hea"], progress=False)
    assert (dest / "100.hea").read_bytes() == (MITDB / "100.hea").read_bytes()

    monkeypatch.delenv("ECG_PHYSIONET_URL")
    assert physionet_base_url() == "https://physionet.org/files"


def test_progress_without_tqdm(mirror, tmp_path, monkeypatch, capsys):
    _, url = mirror
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `from tqdm import tqdm` raise ImportError
    download_physionet("mitdb", "1.0.0", tmp_path / "mitdb", base_url=url, files=["100.hea", "101.hea"])
    assert "mitdb 1.0.0: 2/2 files" in capsys.readouterr().err
