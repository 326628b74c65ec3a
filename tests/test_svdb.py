"""SVDB, MIT-BIH + SVDB, sliding windows, SMOTE and the sampler boost.

Short records with mixed N/S/V/F beats are written with ``wfdb.wrsamp``/``wfdb.wrann``, served
by a loopback PhysioNet mirror and downloaded by ``prepare_data`` as the real database would
be. MIT-BIH records are the real ones; the real SVDB (``$ECG_DATA_DIR/svdb``, when there) is
read whole once, for its record 860 whose last annotation lies at the record's end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from conftest import make_small_mitdb, serve_folder, write_checksums

from ecg_lightning.data.beats import read_beat_windows
from ecg_lightning.data.labels import AAMI_CLASSES, BEAT_SYMBOLS
from ecg_lightning.data.mitdb import MITBIHDataModule
from ecg_lightning.data.mitdb_svdb import MITDBSVDBDataModule
from ecg_lightning.data.svdb import SVDBDataModule
from ecg_lightning.summary import main as summary_main

FS = 128
SVDB_RECORDS = ("800", "801", "802", "803", "804")
SECONDS = 120
PAUSE = (60.0, 64.0)  # record 801: no beat in these seconds (sinus arrest)
AAMI_OF = {s: c for c, symbols in AAMI_CLASSES.items() for s in symbols}
SLIDING = {"segmentation": "sliding", "window_seconds": 2.5, "stride_seconds": 0.5}
SPECTROGRAM = {"nperseg": 64, "hop": 16}


def beat_plan(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Beat times (s) and symbols of one written record: mostly N, with S, V and F beats."""
    rng = np.random.default_rng(100 + index)
    times = np.cumsum(rng.uniform(0.7, 0.9, size=SECONDS * 2)) + 0.3
    times = times[times < SECONDS - 0.6]
    if index == 1:
        times = times[(times < PAUSE[0]) | (times > PAUSE[1])]
    symbols = rng.choice(["N", "N", "N", "N", "A", "S", "V", "F"], size=len(times))
    symbols[5:15] = "F"  # every record holds F beats, whichever split it lands in
    return times, symbols


def write_svdb(folder: Path, records=SVDB_RECORDS) -> Path:
    """SVDB-like records: leads ECG1 and ECG2 at 128 Hz, ``.atr`` beats plus rhythm/noise marks."""
    folder.mkdir(parents=True)
    t = np.arange(SECONDS * FS) / FS
    for i, name in enumerate(records):
        times, symbols = beat_plan(i)
        signal = 0.02 * np.random.default_rng(i).normal(size=len(t))
        for b, s in zip(times, symbols):  # wide QRS for V and F, narrow otherwise
            width = 0.03 if s in "VF" else 0.012
            signal += (1.2 if s != "V" else -1.0) * np.exp(-((t - b) / width) ** 2)
            signal += 0.25 * np.exp(-((t - b - 0.28) / 0.05) ** 2)
        wfdb.wrsamp(name, fs=FS, units=["mV", "mV"], sig_name=["ECG1", "ECG2"],
                    p_signal=np.stack([signal, -0.7 * signal], axis=1), fmt=["212", "212"],
                    write_dir=str(folder))
        samples = np.round(times * FS).astype(int)
        marks = np.array([round(10.2 * FS), round(30.1 * FS)])  # a rhythm change, noise
        order = np.argsort(np.concatenate([samples, marks]), kind="stable")
        all_samples = np.concatenate([samples, marks])[order]
        all_symbols = np.concatenate([symbols, ["+", "~"]])[order]
        aux = ["(AFL" if s == "+" else "" for s in all_symbols]
        wfdb.wrann(name, "atr", all_samples, symbol=list(all_symbols), aux_note=aux,
                   write_dir=str(folder))
    (folder / "RECORDS").write_text("".join(f"{r}\n" for r in records))
    write_checksums(folder)
    return folder


@pytest.fixture(scope="module")
def svdb_mirror(tmp_path_factory):
    """A loopback PhysioNet mirror serving ``files/svdb/1.0.0``."""
    root = tmp_path_factory.mktemp("svdb-mirror")
    write_svdb(root / "files" / "svdb" / "1.0.0")
    with serve_folder(root) as base_url:
        yield f"{base_url}/files"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, mitdb_dir):
    """A data folder with mitdb/ (real records 100, 201, 202, 208) and svdb/ (written)."""
    root = tmp_path_factory.mktemp("data")
    make_small_mitdb(root / "mitdb", records=("100", "201", "202", "208"))
    write_svdb(root / "svdb")
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("svdb-cache")


@pytest.fixture(scope="module")
def combined(data_root, cache_dir):
    dm = MITDBSVDBDataModule(root=str(data_root), cache_dir=str(cache_dir), **SLIDING)
    dm.prepare_data()
    dm.setup()
    return dm


# ---------------------------------------------------------------------------- SVDB
def test_svdb_is_downloaded_with_aami_labels(svdb_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("ECG_PHYSIONET_URL", svdb_mirror)
    dm = SVDBDataModule(root=str(tmp_path / "svdb"), cache_dir=str(tmp_path / "cache"))
    dm.prepare_data()  # the folder did not exist: downloaded and checked against SHA256SUMS
    assert sorted(p.name for p in (tmp_path / "svdb").glob("*.hea")) == [f"{r}.hea" for r in SVDB_RECORDS]
    dm.setup()
    assert dm.class_names == ["N", "S", "V", "F", "Q"] and dm.info["fs"] == FS
    assert dm.leads == ["ECG1"] and dm.info["leads"] == {r: ["ECG1"] for r in SVDB_RECORDS}
    for i, name in enumerate(SVDB_RECORDS):  # every written beat, by its AAMI class (A, S -> S)
        _, symbols = beat_plan(i)
        expected = np.array([dm.class_names.index(AAMI_OF[s]) for s in symbols])
        np.testing.assert_array_equal(dm.targets[dm.records == name], expected)
    assert set(np.unique(dm.groups)) == set(SVDB_RECORDS)  # one subject per record
    card = dm.describe()
    assert card["split_paradigm"] == "subject_disjoint_random" and card["leads"] == ["ECG1"]
    assert card["annotations_past_record_end"] == {} and dm.inputs["signal"].shape[1] == 1


def test_real_svdb_loads_and_drops_the_annotation_at_the_end_of_860(data_dir, tmp_path):
    """The real SVDB: all 78 records load; 860's last beat mark, at sample 230,400 of its
    230,400 samples, is dropped and counted on the card, and no other annotation is."""
    root = data_dir / "svdb"
    if not (root / "RECORDS").is_file():
        pytest.skip(f"SVDB not found at {root} (set ECG_DATA_DIR)")
    records = (root / "RECORDS").read_text().split()
    assert len(records) == 78
    header = wfdb.rdheader(str(root / "860"))
    annotation = wfdb.rdann(str(root / "860"), "atr")
    assert header.sig_len == 230_400 and annotation.sample.max() == 230_400  # the slip itself
    dm = SVDBDataModule(root=str(root), cache_dir=str(tmp_path / "cache"))
    dm.prepare_data()  # cold: every record read (about 2 s on 2 cores)
    dm.setup()
    assert sorted(np.unique(dm.records)) == sorted(records) and dm.info["missing_lead"] == {}
    assert set(dm.info["leads"]) == set(records)
    assert all(leads == ["ECG1"] for leads in dm.info["leads"].values())
    card = dm.describe()
    assert card["annotations_past_record_end"] == {"860": 1}
    assert sorted(s for split in card["splits"].values() for s in split["subjects"]) == sorted(records)
    # 860's items: every beat mark before its end (less any flat-line window), none at the end.
    beats = np.isin(annotation.symbol, BEAT_SYMBOLS) & (annotation.sample < header.sig_len)
    mine = dm.records == "860"
    assert mine.sum() == beats.sum() - dm.info["flat_windows"]["860"]
    assert dm.samples[mine].max() == annotation.sample[beats].max() < header.sig_len
    assert dm.inputs["signal"].shape[1:] == (1, round(0.25 * 128) + round(0.45 * 128))


# ---------------------------------------------------------------------------- sliding windows
def expected_windows(length: int, beat_samples, width: int, stride: int) -> list[int | None]:
    """Independently: for each window start, the index of the beat nearest its centre inside it."""
    labels = []
    for start in range(0, length - width + 1, stride):
        centre = start + (width - 1) / 2
        inside = [i for i, s in enumerate(beat_samples) if start <= s < start + width]
        labels.append(min(inside, key=lambda i: (abs(beat_samples[i] - centre), i)) if inside else None)
    return labels


def test_sliding_windows_count_and_centre_beat_labels(data_root):
    path = data_root / "svdb" / "801"  # the record with a 4 s pause
    read = read_beat_windows(path, leads=["ECG1"], fs=None, bandpass=None, derivative=False,
                             smoothing_seconds=None, pre_seconds=0.25, post_seconds=0.45,
                             normalize="none", **SLIDING)
    length, width, stride = SECONDS * FS, 320, 64
    count = (length - width) // stride + 1  # floor((T - W) / S) + 1
    times, symbols = beat_plan(1)
    beat_samples = np.round(times * FS).astype(int)
    expected = expected_windows(length, beat_samples, width, stride)
    assert len(expected) == count
    named = [i for i in expected if i is not None]
    assert read["windows_without_beat"] == count - len(named) > 0  # windows inside the pause
    assert list(read["symbols"]) == [symbols[i] for i in named]
    np.testing.assert_array_equal(read["samples"], beat_samples[named])
    starts = np.array([s for s, i in zip(range(0, length - width + 1, stride), expected) if i is not None])
    np.testing.assert_array_equal(read["starts"], starts)
    signal = wfdb.rdrecord(str(path), channel_names=["ECG1"]).p_signal[:, 0]
    assert read["windows"].shape == (len(named), 1, width) and read["leads"] == ["ECG1"]
    np.testing.assert_allclose(read["windows"][7, 0], signal[starts[7]:starts[7] + width], rtol=1e-6)
    assert read["padded_at_edges"] == 0 and read["annotations_past_end"] == 0


def test_sliding_datamodule_drops_beatless_windows_and_keeps_labels(data_root, cache_dir):
    dm = SVDBDataModule(root=str(data_root / "svdb"), cache_dir=str(cache_dir), **SLIDING)
    dm.prepare_data()
    dm.setup()
    count = (SECONDS * FS - 320) // 64 + 1
    assert dm.inputs["signal"].shape[1:] == (1, 320)
    for i, name in enumerate(SVDB_RECORDS):
        times, symbols = beat_plan(i)
        labels = expected_windows(SECONDS * FS, np.round(times * FS).astype(int), 320, 64)
        named = [dm.class_names.index(AAMI_OF[symbols[j]]) for j in labels if j is not None]
        np.testing.assert_array_equal(dm.targets[dm.records == name], named)
        assert len(named) + dm.info["windows_without_beat"][name] == count
    window = dm.describe()["window_seconds"]
    assert window["segmentation"] == "sliding" and window["windows_without_beat_dropped"] > 0


def test_sliding_options_are_checked(data_root):
    with pytest.raises(ValueError, match="data.segmentation=sliding needs data.window_seconds > 0"):
        SVDBDataModule(root=str(data_root / "svdb"), segmentation="sliding", stride_seconds=0.5)
    with pytest.raises(ValueError, match="data.segmentation='windows' is unknown"):
        SVDBDataModule(root=str(data_root / "svdb"), segmentation="windows")


# ---------------------------------------------------------------------------- MIT-BIH + SVDB
def test_combined_resamples_mitdb_to_one_rate(combined, data_root):
    dm = combined
    assert dm.info["fs"] == 128.0 and dm.inputs["signal"].shape[1:] == (1, 320)
    assert dm.info["leads"]["mitdb/100"] == ["MLII"] and dm.info["leads"]["svdb/800"] == ["ECG1"]
    # every record's counts travel with its database prefix, flat-line windows included
    assert set(dm.info["flat_windows"]) == set(dm.info["leads"])
    assert dm.describe_preprocessing()["flat_line_windows_dropped"] == 0
    # MIT-BIH's beat positions moved from 360 Hz to 128 Hz as wfdb resamples annotations.
    annotation = wfdb.rdann(str(data_root / "mitdb" / "100"), "atr")
    beats = annotation.sample[np.isin(annotation.symbol, list(AAMI_OF))]
    resampled = (128 / 360 * beats).astype(np.int64)
    ours = np.unique(dm.samples[dm.records == "mitdb/100"])
    assert np.isin(ours, resampled).all()
    # Every beat names a window, except those nearer a record end than half a window.
    inner = resampled[(resampled >= 160) & (resampled <= 1805 * 128 - 160)]
    assert np.isin(inner, ours).all()
    assert dm.samples[dm.records == "mitdb/100"].max() < 1806 * 128


def test_combined_groups_are_prefixed_and_splits_subject_disjoint(combined, data_root, cache_dir):
    dm = combined
    subjects = set(np.unique(dm.groups))
    assert subjects == {"mitdb/100", "mitdb/201", "mitdb/208"} | {f"svdb/{r}" for r in SVDB_RECORDS}
    assert set(np.unique(dm.groups[dm.records == "mitdb/202"])) == {"mitdb/201"}  # one person
    kfold = MITDBSVDBDataModule(root=str(data_root), cache_dir=str(cache_dir), split="kfold",
                                fold=1, num_folds=4, **SLIDING)
    kfold.setup()
    for module in (dm, kfold):
        sides = {name: set(np.unique(module.groups[idx])) for name, idx in module.splits.items()}
        assert all(sides.values())
        assert not sides["train"] & sides["val"] and not sides["train"] & sides["test"]
        assert not sides["val"] & sides["test"]
        assert sides["train"] | sides["val"] | sides["test"] == subjects
    card = dm.describe()
    assert card["subjects_per_database"] == {"mitdb": 3, "svdb": 5}
    assert card["roots"] == {"mitdb": str(data_root / "mitdb"), "svdb": str(data_root / "svdb")}


def test_combined_passes_the_template_options_to_both_databases(data_root):
    # Each database reads its own windows and median beats: every option that shapes the
    # template must reach both, not only record_template (on_time's rule reads the RR options).
    dm = MITDBSVDBDataModule(root=str(data_root), record_template="subtract",
                             record_template_beats="on_time", rr_local_beats=20, rr_gap_seconds=2.0)
    for part in dm.parts.values():
        assert part.read_options()["template"] and part.record_template_beats == "on_time"
        assert (part.rr_local_beats, part.rr_gap_seconds) == (20, 2.0)


def test_combined_needs_one_rate(data_root):
    with pytest.raises(ValueError, match="mitdb_svdb needs one: set data.fs"):
        MITDBSVDBDataModule(root=str(data_root), fs=None)


# ---------------------------------------------------------------------------- SMOTE and boost
@pytest.fixture(scope="module")
def spectrogram_dm(data_root, cache_dir):
    """Three MIT-BIH records (208 holds F beats), intra-patient, sliding windows + spectrogram."""
    def make(**options):
        dm = MITBIHDataModule(root=str(data_root / "mitdb"), cache_dir=str(cache_dir), fs=128.0,
                              split="intra_patient", spectrogram=SPECTROGRAM, **SLIDING, **options)
        dm.prepare_data()
        dm.setup()
        return dm
    return make


def on_a_segment(point: np.ndarray, ends: np.ndarray, atol: float = 1e-3) -> bool:
    """Is ``point`` x_i + lam (x_j - x_i) for some rows i, j of ``ends`` and lam in [0, 1]?"""
    d = point[None, :] - ends  # [n, D]: point - x_i
    for i in np.argsort(np.linalg.norm(d, axis=1))[:20]:  # x_i is among the nearest ends
        e = ends - ends[i]  # x_j - x_i for every j
        norms = (e * e).sum(axis=1)
        lam = np.where(norms > 0, e @ d[i] / np.maximum(norms, 1e-12), 0.0)
        residual = np.linalg.norm(d[i][None, :] - lam[:, None] * e, axis=1)
        if ((residual < atol * (1 + np.linalg.norm(d[i]))) & (lam >= -1e-6) & (lam <= 1 + 1e-6)).any():
            return True
    return False


def test_smote_adds_f_items_to_train_only(spectrogram_dm):
    plain = spectrogram_dm()
    smote = spectrogram_dm(smote={"classes": ["F"], "k_neighbors": 5, "ratio": 0.2})
    f = plain.class_names.index("F")
    train_counts = plain.split_counts("train")
    goal = round(0.2 * train_counts.max())
    assert train_counts[f] < goal
    synthetic_inputs, synthetic_targets = smote._synthetic
    assert (synthetic_targets == f).all() and len(synthetic_targets) == goal - train_counts[f]
    assert smote.class_counts[f] == goal and smote.class_counts[:f] == plain.class_counts[:f]
    assert len(smote.dataset("train")) == len(plain.splits["train"]) + len(synthetic_targets)
    assert set(synthetic_inputs) == {"signal"}  # one entry per named input
    assert synthetic_inputs["signal"].shape == (len(synthetic_targets), *plain.inputs["signal"].shape[1:])
    for name in ("val", "test"):  # untouched: same items, same tensors
        ours, theirs = smote.dataset(name), plain.dataset(name)
        assert set(ours.inputs) == set(theirs.inputs) == {"signal"}
        assert torch.equal(ours.inputs["signal"], theirs.inputs["signal"])
        assert torch.equal(ours.targets, theirs.targets)
    np.testing.assert_array_equal(smote.splits["train"], plain.splits["train"])
    train = smote.dataset("train")  # the real training items, then the synthetic ones
    real = len(plain.splits["train"])
    assert torch.equal(train.inputs["signal"][:real], plain.dataset("train").inputs["signal"])
    assert torch.equal(train.inputs["signal"][real:], torch.from_numpy(synthetic_inputs["signal"]))
    assert (train.targets[real:] == f).all()
    # Every synthetic spectrogram lies between two F spectrograms of the training split.
    real_f = plain.inputs["signal"][plain.splits["train"][plain.targets[plain.splits["train"]] == f]]
    flat = real_f.reshape(len(real_f), -1).astype(np.float64)
    for item in synthetic_inputs["signal"][:5]:
        assert on_a_segment(item.reshape(-1).astype(np.float64), flat)
    card = smote.describe()
    assert card["smote"]["synthetic_per_class"]["F"] == len(synthetic_targets)
    assert card["smote"]["fitted_on"] == "train"
    # Seeded: the same items again.
    again = spectrogram_dm(smote={"classes": ["F"], "k_neighbors": 5, "ratio": 0.2})
    np.testing.assert_array_equal(again._synthetic[0]["signal"], synthetic_inputs["signal"])
    np.testing.assert_array_equal(again._synthetic[1], synthetic_targets)


def test_smote_refuses_classes_too_small_and_bad_options(spectrogram_dm, data_root):
    with pytest.raises(ValueError, match=r"class Q has \d+ training items, fewer than "
                                         r"k_neighbors \+ 1 = 6"):
        spectrogram_dm(smote={"classes": ["Q"]})
    with pytest.raises(ValueError, match="names 'X', which mitdb does not have"):
        spectrogram_dm(smote={"classes": ["X"]})
    root = str(data_root / "mitdb")
    with pytest.raises(ValueError, match="data.smote has unknown keys"):
        MITBIHDataModule(root=root, smote={"classes": ["F"], "neighbours": 3})
    with pytest.raises(ValueError, match=r"data.smote.ratio=2 must be in \(0, 1\]"):
        MITBIHDataModule(root=root, smote={"classes": ["F"], "ratio": 2})
    with pytest.raises(ValueError, match="choose one"):
        MITBIHDataModule(root=root, smote={"classes": ["F"]}, sampler="undersample")


def test_boost_multiplies_the_sampler_weights_of_its_classes(spectrogram_dm, data_root):
    dm = spectrogram_dm(sampler="weighted", sampler_boost={"F": 3.0})
    sampler = dm.weighted_sampler()
    targets = dm.targets[dm.splits["train"]]
    counts = np.bincount(targets, minlength=dm.num_classes)
    expected = np.where(targets == dm.class_names.index("F"), 3.0, 1.0) / counts[targets]
    np.testing.assert_allclose(sampler.weights.numpy(), expected)
    # Drawn: F three times as often as each other class present.
    drawn = np.bincount(targets[np.array(list(sampler))], minlength=dm.num_classes)
    present = counts > 0
    share = drawn / drawn.sum()
    f_share = 3.0 / (present.sum() - 1 + 3.0)
    assert abs(share[dm.class_names.index("F")] - f_share) < 0.03
    expected_draws = dm.describe()["train_drawn_per_epoch_expected"]
    assert expected_draws["F"] == round(len(targets) * f_share)
    # The loss sees balanced counts: the boost is kept, not corrected away.
    assert len(set(c for c in dm.class_counts if c > 0)) == 1
    with pytest.raises(ValueError, match="needs data.sampler=weighted"):
        MITBIHDataModule(root=str(data_root / "mitdb"), sampler_boost={"F": 2.0})
    with pytest.raises(ValueError, match=r"names classes \['Z'\]"):
        spectrogram_dm(sampler="weighted", sampler_boost={"Z": 2.0})


# ---------------------------------------------------------------------------- summary
@pytest.mark.parametrize("data", ["svdb", "mitdb_svdb"])
def test_summary_prints_the_card(data, data_root, cache_dir, capsys):
    root = data_root / "svdb" if data == "svdb" else data_root
    summary_main([f"data={data}", f"data.root={root}", f"paths.cache_dir={cache_dir}",
                  "data.split=kfold", "data.num_folds=4", "--json"])
    card = json.loads(capsys.readouterr().out)
    assert card["database"] == data and card["label_classes"] == ["N", "S", "V", "F", "Q"]
    assert card["split_paradigm"] == "subject_disjoint_kfold" and card["sampling_rate_hz"] == 128.0
    if data == "mitdb_svdb":  # the study's settings: sliding windows, spectrogram, SMOTE, boost
        assert card["window_seconds"]["window"] == 2.5 and card["spectrogram"]["frames"] == 23
        assert card["smote"]["classes"] == ["F"] and card["sampler_boost"] == {"F": 2.0}
