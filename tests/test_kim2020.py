"""Kim & Pyun 2020: the identification scheme, the time split, ECG-ID, NSRDB and the late-fusion BiLSTM.

ECG-ID and MIT-BIH are the real databases in ``$ECG_DATA_DIR``. NSRDB is not there: small
records are written with ``wfdb.wrsamp``/``wfdb.wrann``, served by a loopback PhysioNet
mirror, and downloaded by ``prepare_data`` as the real database would be.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from conftest import serve_folder, write_checksums
from scipy.signal import lfilter

from ecg_lightning.data.beats import filter_signal
from ecg_lightning.data.ecgiddb import ECGIDDataModule
from ecg_lightning.data.mitdb import MITBIHDataModule
from ecg_lightning.data.nsrdb import NSRDBDataModule
from ecg_lightning.models.kim2020 import LateFusionBiLSTM
from ecg_lightning.run import train
from ecg_lightning.summary import compose_config

REPO = Path(__file__).resolve().parents[1]
NSRDB_SUBJECTS = ("16265", "16272", "16273")
BEAT_SYMBOLS = set("NLRejAaJSVEF/fQ")  # AAMI beat symbols, written out again


# ---------------------------------------------------------------------------- the time split
def assert_time_ordered(dm) -> None:
    """Within every subject: all train beats precede all val beats, which precede all test beats."""
    rank = {name: i for i, name in enumerate(dm.record_names())}
    when = np.array([rank[str(r)] for r in dm.records]) * 10**9 + dm.samples
    for subject in np.unique(dm.groups):
        mine = dm.groups == subject
        times = {s: when[np.intersect1d(np.flatnonzero(mine), dm.splits[s])] for s in dm.splits}
        assert all(len(t) for t in times.values()), subject  # every subject on every side
        assert times["train"].max() < times["val"].min() and times["val"].max() < times["test"].min()


@pytest.fixture(scope="module")
def mitdb_identification(mitdb_dir, mitdb_cache_dir):
    cfg = compose_config(["experiment=kim2020_mitdb", f"paths.cache_dir={mitdb_cache_dir}"])
    dm = MITBIHDataModule(**{k: v for k, v in cfg.data.items() if k != "_target_"})
    dm.prepare_data()
    dm.setup()
    return dm


def test_mitdb_identification_has_one_class_per_subject(mitdb_identification, mitdb_dir):
    dm = mitdb_identification
    assert dm.num_classes == 47 and "202" not in dm.class_names  # 202 is 201's subject
    assert set(np.unique(dm.records)) == {int(n) for n in (mitdb_dir / "RECORDS").read_text().split()}
    subject_201 = dm.class_names.index("201")
    assert set(np.unique(dm.records[dm.targets == subject_201])) == {201, 202}
    # Beats only, as wfdb reads them: record 100's beat annotations at full windows.
    annotation = wfdb.rdann(str(mitdb_dir / "100"), "atr")
    beats = sum(s in BEAT_SYMBOLS for s in annotation.symbol)
    assert beats - 2 <= (dm.records == 100).sum() <= beats  # a beat may sit too near an end
    assert dm.inputs["signal"].shape[1:] == (1, 90)  # 0.7 s at 128 Hz
    assert dm.inputs["signal"].min() >= 0.0 and dm.inputs["signal"].max() <= 1.0  # min-max per beat


def test_time_split_orders_every_subject(mitdb_identification):
    assert_time_ordered(mitdb_identification)
    dm = mitdb_identification
    fractions = {s: len(i) / len(dm.targets) for s, i in dm.splits.items()}
    assert abs(fractions["test"] - 0.2) < 0.01 and abs(fractions["val"] - 0.1) < 0.01
    card = dm.describe()
    assert card["split_paradigm"] == "within_subject_time" and card["label_scheme"] == "identification"


def test_identification_refuses_subject_disjoint_splits(mitdb_dir, tmp_path):
    for split in ("record", "kfold", "inter_patient"):
        with pytest.raises(ValueError, match=f"identification needs data.split=time.*not '{split}'"):
            MITBIHDataModule(root=str(mitdb_dir), label_scheme="identification", split=split)


def test_identification_random_beats_is_the_leaky_intra_patient_protocol(mitdb_cache_dir):
    """Random beats (to test a paper's protocol): every subject on all three sides in the
    preset's proportions, and the card names the paradigm intra_patient."""
    cfg = compose_config(["experiment=kim2020_mitdb", "data.split=intra_patient",
                          f"paths.cache_dir={mitdb_cache_dir}"])
    dm = MITBIHDataModule(**{k: v for k, v in cfg.data.items() if k != "_target_"})
    dm.prepare_data()
    dm.setup()
    for side, fraction in (("val", 0.1), ("test", 0.2)):
        assert set(np.unique(dm.targets[dm.splits[side]])) == set(range(47)), side
        assert abs(len(dm.splits[side]) / len(dm.targets) - fraction) < 0.01
    assert dm.describe()["split_paradigm"] == "intra_patient"


def test_derivative_and_smoothing_match_their_definition():
    """Pan-Tompkins five-point derivative, then a centred moving average, on a random signal."""
    rng = np.random.default_rng(0)
    signal, fs = rng.normal(size=500), 128.0
    ours = filter_signal(signal, fs, derivative=True, smoothing_seconds=5 / fs)
    derivative = lfilter(np.array([1, 2, 0, -2, -1]) * fs / 8, [1.0], signal)[2:]  # centred on n
    smoothed = np.convolve(derivative, np.ones(5) / 5, mode="valid")  # smoothed[k] centred on k + 2
    np.testing.assert_allclose(ours[4:-4], smoothed[2:len(signal) - 6], rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------- ECG-ID
@pytest.fixture(scope="module")
def ecgid(data_dir, tmp_path_factory):
    if not (data_dir / "ecgiddb" / "RECORDS").is_file():
        pytest.skip("ECG-ID not found in ECG_DATA_DIR")
    dm = ECGIDDataModule(root=str(data_dir / "ecgiddb"),
                         cache_dir=str(tmp_path_factory.mktemp("ecgid-cache")))
    dm.prepare_data()
    dm.setup()
    return dm


def test_ecgid_has_90_persons_and_detected_beats(ecgid, data_dir):
    dm = ecgid
    assert dm.num_classes == 90 and dm.class_names[0] == "Person_01"
    assert len(np.unique(dm.records)) == 310
    assert dm.inputs["signal"].shape[2] == round(0.25 * 500) + round(0.45 * 500)
    # The detector finds the 10 beats the database marks per record, within 30 ms, in most
    # records (measured: 9 of 10 or more in 288 of 310; noisy records fall short).
    root, found_enough = data_dir / "ecgiddb", []
    for name in dm.record_names():
        annotation = wfdb.rdann(str(root / name), "atr")
        marked = annotation.sample[np.asarray(annotation.symbol) == "N"]
        found = dm.samples[dm.records == name]
        distance = np.abs(marked[:, None] - found[None, :]).min(axis=1)
        found_enough.append((distance <= 15).mean() >= 0.9)
    assert np.mean(found_enough) >= 0.9
    assert_time_ordered(dm)


def test_ecgid_refuses_unknown_lead_and_split(data_dir):
    with pytest.raises(ValueError, match="data.lead='MLII' is not an ECG-ID signal"):
        ECGIDDataModule(root=str(data_dir / "ecgiddb"), lead="MLII")
    with pytest.raises(ValueError, match="data.split='record' is unknown for ecgiddb"):
        ECGIDDataModule(root=str(data_dir / "ecgiddb"), split="record")


# ---------------------------------------------------------------------------- NSRDB
def write_nsrdb(folder: Path, subjects=NSRDB_SUBJECTS, seconds: int = 150, fs: int = 128) -> Path:
    """Small NSRDB-like records: two leads at 128 Hz, a subject-specific beat shape, ``.atr`` beats."""
    folder.mkdir(parents=True)
    t = np.arange(seconds * fs) / fs
    for i, name in enumerate(subjects):
        rng = np.random.default_rng(i)
        beats = np.cumsum(rng.uniform(0.75, 0.95, size=seconds * 2))
        beats = beats[beats < seconds - 1]
        signal = np.zeros_like(t)
        for b in beats:  # P, QRS and T waves whose widths and heights differ per subject
            signal += 0.15 * np.exp(-((t - b + 0.2) / 0.03) ** 2)
            signal += (1.0 + 0.4 * i) * np.exp(-((t - b) / (0.010 + 0.004 * i)) ** 2)
            signal += (0.3 - 0.1 * i) * np.exp(-((t - b - 0.3) / 0.06) ** 2)
        signal += 0.02 * rng.normal(size=len(t))
        wfdb.wrsamp(name, fs=fs, units=["mV", "mV"], sig_name=["ECG1", "ECG2"],
                    p_signal=np.stack([signal, 0.8 * signal], axis=1), fmt=["212", "212"],
                    write_dir=str(folder))
        wfdb.wrann(name, "atr", np.round(beats * fs).astype(int), symbol=["N"] * len(beats),
                   write_dir=str(folder))
    (folder / "RECORDS").write_text("".join(f"{s}\n" for s in subjects))
    write_checksums(folder)
    return folder


@pytest.fixture(scope="module")
def nsrdb_mirror(tmp_path_factory):
    """A loopback PhysioNet mirror serving ``files/nsrdb/1.0.0`` with three written records."""
    root = tmp_path_factory.mktemp("nsrdb-mirror")
    write_nsrdb(root / "files" / "nsrdb" / "1.0.0")
    with serve_folder(root) as base_url:
        yield f"{base_url}/files"


def test_nsrdb_is_downloaded_and_identifies_subjects(nsrdb_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("ECG_PHYSIONET_URL", nsrdb_mirror)
    dm = NSRDBDataModule(root=str(tmp_path / "nsrdb"), cache_dir=str(tmp_path / "cache"),
                         max_seconds=120)
    dm.prepare_data()  # downloads: the folder did not exist
    assert sorted(p.name for p in (tmp_path / "nsrdb").glob("*.hea")) == [f"{s}.hea" for s in NSRDB_SUBJECTS]
    dm.setup()
    assert dm.class_names == list(NSRDB_SUBJECTS)
    assert dm.samples.max() < 120 * 128  # max_seconds: only the start of each record
    annotation = wfdb.rdann(str(tmp_path / "nsrdb" / "16265"), "atr", sampto=120 * 128)
    assert (dm.records == "16265").sum() == len(annotation.sample)
    assert_time_ordered(dm)


# ---------------------------------------------------------------------------- the model
def test_late_fusion_is_a_weighted_average_of_step_predictions():
    torch.manual_seed(0)
    net = LateFusionBiLSTM(num_classes=5, in_channels=1, seq_len=40, hidden_size=8, fusion="mean")
    net.eval()
    x = torch.randn(3, 1, 40)
    assert len([m for m in net.modules() if isinstance(m, torch.nn.LSTM)]) == 1
    assert net.rnn.num_layers == 3 and net.rnn.bidirectional
    fused = net(x).exp()
    step_mean = net.step_log_probs(x).exp().mean(dim=1)
    torch.testing.assert_close(fused, step_mean)
    torch.testing.assert_close(fused.sum(dim=1), torch.ones(3))

    learned = LateFusionBiLSTM(num_classes=5, in_channels=1, seq_len=40, hidden_size=8)
    assert learned.fusion_scores.requires_grad and learned.fusion_scores.shape == (40,)
    learned(x).logsumexp(dim=1).sum().backward()
    with pytest.raises(ValueError, match="40"):
        learned(torch.randn(2, 1, 30))


# ---------------------------------------------------------------------------- presets
def compose(tmp_path, cache_dir, *overrides, logger="csv"):
    return compose_config([*overrides, f"logger={logger}", f"paths.root_dir={tmp_path}",
                           f"paths.output_dir={tmp_path}/run", f"paths.cache_dir={cache_dir}",
                           "callbacks.progress_bar.refresh_rate=0", "debug=fdr"])


def test_mitdb_preset_runs(tmp_path, mitdb_cache_dir, mitdb_identification):
    value, metrics = train(compose(tmp_path, mitdb_cache_dir, "experiment=kim2020_mitdb"))
    assert 0.0 <= metrics["test/accuracy"] <= 1.0


@pytest.mark.slow  # 23 s; the ECG-ID datamodule and summary tests stay fast
def test_ecgiddb_preset_runs(tmp_path, ecgid, data_dir):
    # logger=none: also checks that the LR monitor of the default callbacks steps aside
    value, metrics = train(compose(tmp_path, tmp_path / "cache", "experiment=kim2020_ecgiddb",
                                   "data.batch_size=16", logger="none"))
    assert 0.0 <= metrics["test/accuracy"] <= 1.0


@pytest.mark.slow  # 10-15 s; moved out of the fast suite to keep it under 10 minutes
def test_nsrdb_preset_runs_and_summary_prints_the_card(nsrdb_mirror, tmp_path, monkeypatch):
    root = write_nsrdb(tmp_path / "nsrdb")
    value, metrics = train(compose(tmp_path, tmp_path / "cache", "experiment=kim2020_nsrdb",
                                   f"data.root={root}"))
    assert 0.0 <= metrics["test/accuracy"] <= 1.0
    result = subprocess.run([sys.executable, "-m", "ecg_lightning.summary", "data=nsrdb",
                             f"data.root={root}", f"paths.cache_dir={tmp_path / 'cache'}", "--json"],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads(result.stdout)
    assert card["database"] == "nsrdb" and card["label_classes"] == list(NSRDB_SUBJECTS)
    assert card["split_paradigm"] == "within_subject_time"


def test_summary_of_ecgiddb(data_dir, tmp_path):
    result = subprocess.run([sys.executable, "-m", "ecg_lightning.summary", "data=ecgiddb",
                             "data.beats=annotations", f"paths.cache_dir={tmp_path}", "--json"],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads(result.stdout)
    assert card["database"] == "ecgiddb" and len(card["label_classes"]) == 90
    assert card["beat_positions"] == "annotations"
