"""`python -m ecg_lightning.predict`: every beat of a WFDB record classified from a checkpoint."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from scipy.signal import resample

from ecg_lightning.data.mitdb import MITBIHDataModule
from ecg_lightning.predict import load_for_prediction, predict
from ecg_lightning.run import train
from ecg_lightning.summary import compose_config

REPO = Path(__file__).resolve().parents[1]
BEATS = set("NLRejAaJSVEF/fQ")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, mitdb_cache_dir):
    root = tmp_path_factory.mktemp("predict")
    # data=mitdb: the single-lead beat database (the default run adds a lead and RR features,
    # whose predict path tests/test_rr_leads.py covers)
    cfg = compose_config(["data=mitdb", "model=lstm", "debug=limit", "logger=csv",
                          f"paths.root_dir={root}",
                          f"paths.output_dir={root}/run", f"paths.cache_dir={mitdb_cache_dir}",
                          "callbacks.progress_bar.refresh_rate=0", "bootstrap_resamples=10"])
    train(cfg)
    return next((root / "run" / "checkpoints").glob("best-*.ckpt"))


def test_annotated_record_gets_one_label_per_beat(checkpoint, mitdb_dir, mitdb_cache_dir, tmp_path):
    result = predict(str(checkpoint), str(mitdb_dir / "119"), str(tmp_path))
    assert result["beat_positions"] == "annotations"
    reference = wfdb.rdann(str(mitdb_dir / "119"), "atr")
    beats = {int(s) for s, sym in zip(reference.sample, reference.symbol) if sym in BEATS}
    assert set(result["samples"].tolist()) == beats  # every beat, the edge ones included

    written = wfdb.rdann(str(tmp_path / "119"), "pred")  # readable by wfdb as any annotation
    assert written.sample.tolist() == result["samples"].tolist()
    assert written.aux_note == result["labels"] and set(written.symbol) <= {"N", "S", "V", "F", "Q"}
    with (tmp_path / "119_predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result["labels"])
    assert abs(sum(float(rows[0][c]) for c in "NSVFQ") - 1.0) < 1e-4
    assert (tmp_path / "119_predictions.png").stat().st_size > 0

    # The same beats, taken from the datamodule the model was trained with, get the same labels.
    _, datamodule, model, _ = load_for_prediction(str(checkpoint))
    dm = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir))
    dm.setup("test")
    mine = np.flatnonzero(dm.records == 119)
    with torch.no_grad():
        signal = torch.from_numpy(np.ascontiguousarray(dm.inputs["signal"][mine]))
        expected = model({"signal": signal}).argmax(1).numpy()
    order = {int(s): i for i, s in enumerate(result["samples"])}
    got = [result["labels"][order[int(s)]] for s in dm.samples[mine]]
    assert got == [dm.class_names[i] for i in expected]


def copy_record(source: Path, dest: Path, extensions=("hea", "dat")) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for ext in extensions:
        shutil.copyfile(source.with_suffix(f".{ext}"), dest / f"{source.name}.{ext}")
    return dest / source.name


def test_record_without_annotations_uses_the_detector(checkpoint, mitdb_dir, tmp_path):
    record = copy_record(mitdb_dir / "100", tmp_path / "plain")
    result = predict(str(checkpoint), str(record), str(tmp_path / "out"))
    assert result["beat_positions"] == "detector"
    assert abs(len(result["labels"]) - 2273) <= 0.05 * 2273  # 100 holds 2273 reference beats


def test_record_at_another_rate_is_resampled(checkpoint, mitdb_dir, tmp_path):
    signal = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=360 * 60, channel_names=["MLII"]).p_signal
    at_250 = resample(signal[:, 0], 250 * 60)[:, None]
    wfdb.wrsamp("r250", fs=250, units=["mV"], sig_name=["MLII"], p_signal=at_250, fmt=["16"],
                write_dir=str(tmp_path))
    result = predict(str(checkpoint), str(tmp_path / "r250"), str(tmp_path / "out"))
    assert 60 <= len(result["labels"]) <= 90 and result["samples"].max() < 250 * 60


def test_record_without_the_lead_is_a_clear_error(checkpoint, mitdb_dir, tmp_path):
    record = copy_record(mitdb_dir / "102", tmp_path / "paced", ("hea", "dat", "atr"))
    with pytest.raises(ValueError, match=r"lacks leads \['MLII'\] \(its leads: V5, V2\)"):
        predict(str(checkpoint), str(record), str(tmp_path / "out"))


def test_command_line(checkpoint, mitdb_dir, tmp_path):
    result = subprocess.run([sys.executable, "-m", "ecg_lightning.predict", f"ckpt={checkpoint}",
                             f"record={mitdb_dir / '119'}", f"out={tmp_path}"],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "beats (annotations)" in result.stdout and (tmp_path / "119.pred").is_file()


def test_sliding_window_checkpoint_is_refused(mitdb_dir, tmp_path):
    """A window of the spectrogram study spans several beats: predict names the option instead
    of labelling beats with it."""
    cfg = compose_config(["data=mitdb", "debug=limit", "logger=none", f"paths.root_dir={tmp_path}",
                          f"paths.output_dir={tmp_path}/run", f"paths.cache_dir={tmp_path}/cache",
                          "callbacks.progress_bar.refresh_rate=0", "bootstrap_resamples=0",
                          "data.segmentation=sliding", "data.window_seconds=2.5",
                          "data.stride_seconds=0.5", "data.max_seconds=60", "trainer.max_epochs=1"])
    train(cfg)
    sliding = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    with pytest.raises(ValueError, match="data.segmentation=sliding windows.*segmentation=beats"):
        predict(str(sliding), str(mitdb_dir / "100"), str(tmp_path / "out"))
