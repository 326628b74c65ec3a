"""Bad input gives one clear error, and nothing is lost or half-written.

Damaged records are real MIT-BIH files copied into a small mitdb folder (``small_mitdb``) and
then truncated or removed; damaged cache entries are real entries with a file overwritten.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecg_lightning.data.cache import MANIFEST, read_cache
from ecg_lightning.data.download import DataUnavailableError
from ecg_lightning.data.mitdb import MITBIHDataModule

REPO = Path(__file__).resolve().parents[1]


def closed_port_url() -> str:
    """Base URL of a local port on which nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/files"


def assert_no_cache_written(cache: Path) -> None:
    """No complete entry and no ``.partial-`` leftover anywhere under ``cache``."""
    if cache.exists():
        assert not list(cache.rglob(MANIFEST))
        assert not [p for p in cache.rglob("*") if ".partial-" in p.name]


# ---------------------------------------------------------------------------- missing data
@pytest.mark.parametrize("via", ["data.root", "ECG_DATA_DIR"])
def test_missing_folder_offline(tmp_path, monkeypatch, via):
    """No data and no mirror: one error naming the folder and both fixes; nothing created."""
    monkeypatch.setenv("ECG_PHYSIONET_URL", closed_port_url())
    nowhere = tmp_path / "nowhere"
    if via == "data.root":
        dm = MITBIHDataModule(root=str(nowhere / "mitdb"), cache_dir=str(tmp_path / "cache"))
    else:
        monkeypatch.setenv("ECG_DATA_DIR", str(nowhere))
        dm = MITBIHDataModule(cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataUnavailableError) as excinfo:
        dm.prepare_data()
    message = str(excinfo.value)
    for part in (str(nowhere / "mitdb"), "ECG_DATA_DIR", "data.root", "unreachable"):
        assert part in message
    assert sorted(tmp_path.iterdir()) == []


def test_missing_folder_with_download_off(tmp_path):
    """data.download=false: the error names the folder, both fixes and the switch."""
    dm = MITBIHDataModule(root=str(tmp_path / "mitdb"), cache_dir=str(tmp_path / "cache"),
                          download=False)
    with pytest.raises(DataUnavailableError) as excinfo:
        dm.prepare_data()
    for part in (str(tmp_path / "mitdb"), "ECG_DATA_DIR", "data.root", "data.download=false"):
        assert part in str(excinfo.value)
    assert sorted(tmp_path.iterdir()) == []


def test_folder_without_records_file(small_mitdb, tmp_path):
    """A folder of records without RECORDS is not taken for mitdb."""
    root = small_mitdb(("100",))
    (root / "RECORDS").unlink()
    dm = MITBIHDataModule(root=str(root), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="RECORDS is missing"):
        dm.prepare_data()
    assert_no_cache_written(tmp_path / "cache")


# ---------------------------------------------------------------------------- damaged records
@pytest.mark.parametrize("keep", [0.5, 0.0], ids=["truncated", "zero_length"])
def test_damaged_dat_names_the_record(small_mitdb, tmp_path, mitdb_dir, keep):
    """A truncated or empty .dat: an error naming the record; no cache entry is left."""
    root = small_mitdb(("100", "101"), copy=("101",))
    data = (root / "101.dat").read_bytes()
    (root / "101.dat").write_bytes(data[:int(len(data) * keep)])
    cache = tmp_path / "cache"
    dm = MITBIHDataModule(root=str(root), cache_dir=str(cache))
    with pytest.raises(ValueError) as excinfo:
        dm.prepare_data()
    message = str(excinfo.value)
    assert f"record {root / '101'}" in message and "truncated" in message
    assert "650000 samples" in message and f"{int(len(data) * keep)} bytes" in message
    assert_no_cache_written(cache)
    assert (mitdb_dir / "101.dat").stat().st_size == len(data)  # the shared copy is untouched


def test_missing_atr_names_the_file(small_mitdb, tmp_path):
    """A record without its .atr: an error naming the record's annotation file."""
    root = small_mitdb(("100", "101"))
    (root / "101.atr").unlink()
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError) as excinfo:
        MITBIHDataModule(root=str(root), cache_dir=str(cache)).prepare_data()
    assert f"{root / '101'}.atr is missing" in str(excinfo.value)
    assert_no_cache_written(cache)


def test_no_record_has_the_lead(small_mitdb, tmp_path):
    """Only records without MLII (102, 104): a clear error naming the lead, not a numpy one."""
    root = small_mitdb(("102", "104"))
    cache = tmp_path / "cache"
    dm = MITBIHDataModule(root=str(root), cache_dir=str(cache), exclude_paced=False)
    with pytest.raises(ValueError, match=r"no mitdb record in .* has the leads \['MLII'\] "
                                         r"\(records and their leads: \{'102': \['V5', 'V2'\], "
                                         r"'104': \['V5', 'V2'\]\}\)"):
        dm.prepare_data()
    assert_no_cache_written(cache)


def test_header_that_disagrees_with_its_data_file(small_mitdb, tmp_path):
    """A header promising fewer samples than the .dat holds (wfdb would read it silently)."""
    root = small_mitdb(("100", "101"), copy=("101",))
    header = root / "101.hea"
    header.write_bytes(header.read_bytes().replace(b" 650000", b" 640000", 1))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError) as excinfo:
        MITBIHDataModule(root=str(root), cache_dir=str(cache)).prepare_data()
    message = str(excinfo.value)
    assert f"record {root / '101'}: the header {root / '101'}.hea promises 640000 samples" in message
    assert "(1920000 bytes)" in message and "has 1950000 bytes" in message
    assert "header of another record?" in message
    assert_no_cache_written(cache)


def test_annotation_file_of_another_record(small_mitdb, tmp_path):
    """101.atr replaced by 100.atr: its beats miss 101's QRS complexes."""
    root = small_mitdb(("100", "101"), copy=("101",))
    (root / "101.atr").write_bytes((root / "100.atr").read_bytes())
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=rf"record {root / '101'}: the beats of {root / '101'}.atr "
                                         r"do not fall on its QRS complexes .*another record\? "
                                         r".*data.check_annotations=false"):
        MITBIHDataModule(root=str(root), cache_dir=str(cache)).prepare_data()
    assert_no_cache_written(cache)
    MITBIHDataModule(root=str(root), cache_dir=str(cache), check_annotations=False).prepare_data()


def rewrite_record(root: Path, name: str, edit) -> tuple[np.ndarray, wfdb.Annotation]:
    """Record ``name`` in ``root`` rewritten (wfdb.wrsamp/wrann) from its first 2 minutes of
    MLII with ``edit(signal)`` applied; returns the new signal and annotation."""
    source = str(root / name)
    record = wfdb.rdrecord(source, sampto=2 * 360 * 60, channel_names=["MLII"])
    annotation = wfdb.rdann(source, "atr", sampto=2 * 360 * 60)
    for ext in ("hea", "dat", "atr"):
        (root / f"{name}.{ext}").unlink()
    signal = edit(record.p_signal.copy())
    wfdb.wrsamp(name, fs=360, units=["mV"], sig_name=["MLII"], p_signal=signal, fmt=["16"],
                adc_gain=[200.0], baseline=[0], write_dir=str(root))
    wfdb.wrann(name, "atr", annotation.sample, annotation.symbol, write_dir=str(root))
    return signal[:, 0], annotation


def test_nan_samples_name_the_record_and_sample(small_mitdb, tmp_path):
    root = small_mitdb(("100", "101"), copy=("101",))

    def with_gap(signal):
        signal[36000:36360] = np.nan  # one second at 100 s: wfdb writes its "invalid" value
        return signal
    rewrite_record(root, "101", with_gap)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=rf"record {root / '101'}: lead MLII holds 360 NaN or "
                                         r"infinite samples, the first at sample 36000 \(100.00 s\)"):
        MITBIHDataModule(root=str(root), cache_dir=str(cache)).prepare_data()
    assert_no_cache_written(cache)


def test_flat_line_windows_are_dropped_and_counted(small_mitdb, tmp_path):
    """A 20 s flat line (lead off) under annotated beats: those windows are not items; the
    dataset card counts them."""
    root = small_mitdb(("100", "101"), copy=("101",))

    def lead_off(signal):
        signal[18000:25200] = signal[18000, 0]  # 50-70 s
        return signal
    _, annotation = rewrite_record(root, "101", lead_off)
    dm = MITBIHDataModule(root=str(root), cache_dir=str(tmp_path / "cache"),
                          split="intra_patient", label_scheme="binary")
    dm.prepare_data()
    dm.setup("fit")
    pre, post = round(0.25 * 360), round(0.45 * 360)
    inside = [s for s, symbol in zip(annotation.sample, annotation.symbol)
              if symbol in "NLRejAaJSVEF/fQ" and s - pre >= 18000 and s + post <= 25200]
    assert len(inside) > 15 and dm.info["flat_windows"] == {"100": 0, "101": len(inside)}
    assert dm.describe_preprocessing()["flat_line_windows_dropped"] == len(inside)
    kept = dm.samples[dm.records.astype(str) == "101"]
    assert not set(inside) & set(kept.tolist())


# ---------------------------------------------------------------------------- damaged cache
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CORRUPTIONS = {
    "truncated_npy": lambda entry: _truncate(entry / "windows.npy"),
    "garbage_npy": lambda entry: (entry / "windows.npy").write_bytes(b"\x07garbage" * 100),
    "empty_npy": lambda entry: (entry / "symbols.npy").write_bytes(b""),
    "missing_npy": lambda entry: (entry / "samples.npy").unlink(),
    "truncated_manifest": lambda entry: _truncate(entry / MANIFEST),
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_cache_is_rebuilt(small_mitdb, tmp_path, caplog, corrupt):
    """A damaged cache entry is rebuilt with a warning; the data returned is the correct one."""
    root = small_mitdb(("100",))
    cache = tmp_path / "cache"
    first = MITBIHDataModule(root=str(root), cache_dir=str(cache), split="intra_patient")
    first.setup()
    inputs, targets, samples = (np.array(a) for a in (first.inputs["signal"], first.targets,
                                                       first.samples))

    corrupt(first.cache_path)
    with caplog.at_level(logging.WARNING, logger="ecg_lightning.data.base"):
        again = MITBIHDataModule(root=str(root), cache_dir=str(cache), split="intra_patient")
        again.setup()
    assert f"cache entry {first.cache_path} is damaged" in caplog.text and "rebuilding" in caplog.text
    assert np.array_equal(again.inputs["signal"], inputs)
    assert np.array_equal(again.targets, targets) and np.array_equal(again.samples, samples)
    assert read_cache(first.cache_path) is not None  # whole again
    assert [p.name for p in (cache / "mitdb").iterdir()] == [first.cache_path.name]


def test_entry_without_manifest_is_not_read(small_mitdb, tmp_path):
    """A folder left without its manifest (a crash) is never read: it is replaced by a full entry."""
    root = small_mitdb(("100",))
    dm = MITBIHDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), split="intra_patient")
    dm.cache_path.mkdir(parents=True)
    (dm.cache_path / "windows.npy").write_bytes(b"half-written")
    dm.setup()
    assert dm.seq_len == 252 and len(dm.targets) > 2000
    assert read_cache(dm.cache_path) is not None


# ---------------------------------------------------------------------------- bad options
@pytest.mark.parametrize("option, valid", [
    ("label_scheme", ("aami", "binary", "symbols")),
    ("split", ("inter_patient", "intra_patient", "record", "kfold")),
    ("normalize", ("zscore", "minmax", "none")),
])
def test_unknown_option_lists_valid_values(tmp_path, option, valid):
    """An unknown label scheme, split or normalisation names itself and the valid values."""
    with pytest.raises(ValueError) as excinfo:
        MITBIHDataModule(cache_dir=str(tmp_path / "cache"), **{option: "bogus"})
    message = str(excinfo.value)
    assert f"data.{option}='bogus'" in message
    assert all(value in message for value in valid)
    assert sorted(tmp_path.iterdir()) == []


def test_run_with_unknown_split_fails_clearly(tmp_path):
    """`python -m ecg_lightning.run data.split=bogus` exits non-zero and lists the valid splits."""
    env = {**os.environ, "ECG_PROJECT_ROOT": str(tmp_path), "ECG_CACHE_DIR": str(tmp_path / "cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    result = subprocess.run([sys.executable, "-m", "ecg_lightning.run", "data.split=bogus"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "data.split='bogus'" in output
    assert "inter_patient, records, intra_patient, record, kfold, time" in output
    assert not (tmp_path / "cache").exists()


def test_empty_split_is_a_clear_error(small_mitdb, tmp_path):
    """inter_patient on DS1 records only: fit works, the test loader names the empty split."""
    root = small_mitdb(("101", "106"))  # 101 trains, 106 validates, no DS2 record
    dm = MITBIHDataModule(root=str(root), cache_dir=str(tmp_path / "cache"))
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_dataloader().dataset) > 0 and len(dm.val_dataloader().dataset) > 0
    with pytest.raises(ValueError, match=r"the 'test' split of mitdb is empty \(data.split=inter_patient\)"):
        dm.test_dataloader()
    with pytest.raises(ValueError, match="'test' split"):
        dm.setup("test")


# ---------------------------------------------------------------------------- tracking server down
def test_tracking_server_down_fails_before_training(tmp_path):
    """MLFLOW_TRACKING_URI naming a server that does not answer: one clear error in seconds
    (MLflow's client alone retries for about 4 minutes), no data read, nothing trained."""
    url = closed_port_url().removesuffix("/files")
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "ECG_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "ecg_lightning.run", "debug=limit",
                             f"paths.root_dir={tmp_path}"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"the MLflow tracking server {url} does not answer" in result.stderr
    assert "unset MLFLOW_TRACKING_URI" in result.stderr
    assert not (tmp_path / "cache").exists() and not list(tmp_path.rglob("*.ckpt"))


def test_checkpoint_of_another_model_is_refused(tmp_path, mitdb_cache_dir, monkeypatch):
    """Testing an LSTM checkpoint with model=gru: an error that says the checkpoint does not
    fit, before any test batch; the MLflow run of the attempt ends FAILED, not RUNNING."""
    from mlflow.tracking import MlflowClient

    from ecg_lightning.run import train
    from ecg_lightning.summary import compose_config

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    common = ["data=mitdb", f"paths.root_dir={tmp_path}", f"paths.cache_dir={mitdb_cache_dir}",
              "debug=limit",
              "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0",
              "logger.mlflow.log_model=false"]
    train(compose_config([*common, "model=lstm", f"paths.output_dir={tmp_path}/lstm"]))
    checkpoint = tmp_path / "lstm" / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match=r"does not fit this model and data.*"
                                         r"\(256, 9\) in the checkpoint, \(192, 9\) here"):
        train(compose_config([*common, "model=gru", "train=false", f"ckpt_path={checkpoint}",
                              f"paths.output_dir={tmp_path}/gru"]))
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ecg-lightning").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]  # the gru test, the lstm
