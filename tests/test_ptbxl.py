"""PTB-XL: labels, splits, leads, training-split statistics, bad input, download, the three presets.

The real 500-record subset in ``$ECG_DATA_DIR/ptb-xl`` (100 Hz only) is read as it is; small
copies (a cut CSV, records symlinked or rewritten with ``wfdb.wrsamp``) test the bad inputs, and
a loopback PhysioNet mirror serving such a copy (with 500 Hz records written by wfdb) tests
the download.
"""

from __future__ import annotations

import ast
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from conftest import serve_folder, write_checksums
from mlflow.tracking import MlflowClient

from ecg_lightning import summary
from ecg_lightning.data.beats import filter_signal
from ecg_lightning.data.download import DataUnavailableError
from ecg_lightning.data.ptbxl import LEADS, PTBXLDataModule, lead_name
from ecg_lightning.data.transforms import steps_of
from ecg_lightning.evaluate import evaluate
from ecg_lightning.models.fusion import AuxiliaryFusion
from ecg_lightning.models.ptbxl import PTBXLCNNGRU, PTBXLGRU, PTBXLLSTM
from ecg_lightning.run import build_model, train
from ecg_lightning.summary import compose_config

SEED_LEADS = ["I", "II", "V2"]
SEED = {"leads": SEED_LEADS, "bandpass": [1, 45]}  # the presets' leads and band-pass: one cache


@pytest.fixture(scope="module")
def ptbxl_dir(data_dir) -> Path:
    folder = data_dir / "ptb-xl"
    if not (folder / "ptbxl_database.csv").is_file():
        pytest.skip(f"PTB-XL not found at {folder} (set ECG_DATA_DIR)")
    return folder


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ptbxl-cache")


def make(root, cache_dir, **options) -> PTBXLDataModule:
    dm = PTBXLDataModule(root=str(root), cache_dir=str(cache_dir), **options)
    dm.prepare_data()
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def dm(ptbxl_dir, cache_dir) -> PTBXLDataModule:
    """The presets' data (leads I, II, V2, 1-45 Hz), the 5 superclasses, the recommended split,
    the four tabular columns; the whole module shares its cache entry."""
    return make(ptbxl_dir, cache_dir, **SEED, tabular=["age", "sex", "height", "weight"])


def fitted(dm: PTBXLDataModule, name: str) -> list:
    """The fitted scikit-learn estimators of one of the datamodule's transforms (pipeline steps)."""
    (transform,) = [t for t in dm.transforms if t.name == name]
    assert transform.fitted
    return steps_of(transform.estimator)


def stored(step_state: dict, attribute: str) -> np.ndarray:
    """A fitted attribute as the state_dict stores it (plain lists: weights_only-safe)."""
    value = step_state[attribute]
    return np.asarray(value["ndarray"], dtype=value["dtype"]).reshape(value["shape"])


def csv_rows(folder: Path) -> dict[int, dict]:
    with open(folder / "ptbxl_database.csv", newline="") as handle:
        return {int(row["ecg_id"]): row for row in csv.DictReader(handle)}


def superclasses_by_hand(folder: Path) -> dict[int, set[str]]:
    """The superclasses of every record, read again with csv and ast (no pandas, no project code)."""
    with open(folder / "scp_statements.csv", newline="") as handle:
        classes = {row[""]: row["diagnostic_class"] for row in csv.DictReader(handle)
                   if row["diagnostic"] == "1.0"}
    return {ecg_id: {classes[code] for code in ast.literal_eval(row["scp_codes"]) if code in classes}
            for ecg_id, row in csv_rows(folder).items()}


# ---------------------------------------------------------------------------- labels
def test_labels_match_the_csv(dm, ptbxl_dir):
    expected = superclasses_by_hand(ptbxl_dir)
    assert dm.class_names == ["NORM", "MI", "STTC", "CD", "HYP"] and dm.task == "multilabel"
    for item, ecg_id in enumerate(dm.ecg_ids):
        assert {c for c, on in zip(dm.class_names, dm.targets[item]) if on} == expected[ecg_id]
    # A few by name: 1 is normal, 8 a myocardial infarction; 17 has no diagnostic statement.
    row = {int(e): i for i, e in enumerate(dm.ecg_ids)}
    assert dm.targets[row[1]].tolist() == [1, 0, 0, 0, 0]
    assert dm.targets[row[8]].tolist() == [0, 1, 0, 0, 0]
    assert (dm.targets.sum(axis=1) >= 2).any()  # multilabel indeed
    dropped = sorted(e for e, classes in expected.items() if not classes)
    assert dm.dropped_without_superclass == dropped and len(dropped) == 12
    assert 17 in dropped and 17 not in row and len(dm.targets) == 500 - 12
    card = dm.describe()
    assert card["dropped_without_superclass"]["count"] == 12 and card["records_read"] == 500


def test_four_labels_make_normal_all_zeros(dm, ptbxl_dir, cache_dir):
    four = make(ptbxl_dir, cache_dir, **SEED, label_scheme="superdiagnostic4")
    assert four.class_names == ["MI", "STTC", "CD", "HYP"]
    np.testing.assert_array_equal(four.ecg_ids, dm.ecg_ids)  # the same records are dropped
    np.testing.assert_array_equal(four.targets, dm.targets[:, 1:])
    only_normal = dm.targets.tolist().index([1, 0, 0, 0, 0])
    assert four.targets[only_normal].tolist() == [0, 0, 0, 0]
    assert four.cache_path == dm.cache_path  # labels never rebuild the cache


# ---------------------------------------------------------------------------- splits
def test_recommended_split_uses_strat_folds(dm, ptbxl_dir):
    fold = {e: int(r["strat_fold"]) for e, r in csv_rows(ptbxl_dir).items()}
    folds = {name: {fold[e] for e in dm.ecg_ids[idx]} for name, idx in dm.splits.items()}
    assert folds == {"train": set(range(1, 9)), "val": {9}, "test": {10}}
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 352, "val": 72, "test": 64}
    assert dm.describe()["split_paradigm"] == "subject_disjoint_fixed"


@pytest.mark.parametrize("fold", [0, 4, 9])
def test_kfold_is_patient_disjoint(ptbxl_dir, cache_dir, fold):
    dm = make(ptbxl_dir, cache_dir, **SEED, split="kfold", fold=fold)
    assert set(dm.strat_folds[dm.splits["test"]]) == {fold + 1}
    assert set(dm.strat_folds[dm.splits["val"]]) == {(fold + 1) % 10 + 1}
    patients = {name: set(dm.groups[idx]) for name, idx in dm.splits.items()}
    assert not patients["train"] & patients["val"] and not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert sum(len(i) for i in dm.splits.values()) == len(dm.targets)
    assert dm.split_paradigm == "subject_disjoint_kfold"


# ---------------------------------------------------------------------------- leads and statistics
def test_leads_are_selected_by_name(dm, ptbxl_dir, cache_dir):
    chosen = make(ptbxl_dir, cache_dir, leads=["i", "Ii", "v2"], bandpass=[1, 45], standardize=False)
    assert chosen.leads == SEED_LEADS and chosen.cache_path == dm.cache_path  # header spelling
    assert lead_name("aVR") == "AVR" and dm.seq_len == 1000
    # in_channels counts the leads only: the tabular values are their own named input.
    assert dm.in_channels == 3 and dm.auxiliary_inputs == {"tabular": 4}
    assert chosen.in_channels == 3 and chosen.auxiliary_inputs == {} and not chosen.transforms
    item = int(np.flatnonzero(chosen.ecg_ids == 8)[0])
    signal, fields = wfdb.rdsamp(str(ptbxl_dir / "records100/00000/00008_lr"))
    for channel, lead in enumerate(SEED_LEADS):  # band-passed one lead at a time, as mitdb
        expected = filter_signal(signal[:, fields["sig_name"].index(lead)], 100, [1.0, 45.0])
        np.testing.assert_allclose(chosen.inputs["signal"][item, channel], expected, atol=1e-5)
    with pytest.raises(ValueError, match="data.leads: 'V7' is not a PTB-XL lead; valid: I, II"):
        PTBXLDataModule(root=str(ptbxl_dir), leads=["I", "V7"])


def test_standardisation_statistics_come_from_the_training_split(dm):
    train = dm.splits["train"]
    raw = np.asarray(dm.raw_inputs["signal"], dtype=np.float64)
    mean, std = raw[train].mean(axis=(0, 2)), raw[train].std(axis=(0, 2))
    (scaler,) = fitted(dm, "lead_standardization")  # one StandardScaler, one column per lead
    assert [t.name for t in dm.transforms] == ["lead_standardization", "tabular_imputation"]
    assert scaler.n_features_in_ == 3 and scaler.n_samples_seen_ == len(train) * 1000
    np.testing.assert_allclose(scaler.mean_, mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(scaler.scale_, std, rtol=1e-6)
    assert not np.allclose(std, raw.std(axis=(0, 2)), rtol=1e-3)  # all items would differ
    card = dm.describe()["standardize"]
    np.testing.assert_allclose(card["lead_mean"], mean, atol=1e-5)
    np.testing.assert_allclose(card["lead_std"], std, atol=1e-5)
    x = dm.dataset("train").inputs["signal"].double()  # the leads only: tabular is its own input
    assert x.shape == (len(train), 3, 1000)
    np.testing.assert_allclose(x.mean(dim=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(dim=(0, 2), correction=0), 1.0, atol=1e-4)
    test = dm.dataset("test").inputs["signal"][0, 2]
    np.testing.assert_allclose(test, (raw[dm.splits["test"][0], 2] - mean[2]) / std[2], atol=1e-4)


def test_tabular_inputs_are_imputed_and_standardised_on_train(dm, ptbxl_dir):
    assert dm.inputs["signal"].shape == (488, 3, 1000) and dm.in_channels == 3
    assert dm.inputs["tabular"].shape == (488, 4)  # age, sex, height, weight
    rows = csv_rows(ptbxl_dir)
    height = np.array([float(rows[e]["height"] or "nan") for e in dm.ecg_ids])
    train = dm.splits["train"]
    fill = np.nanmedian(height[train])
    filled = np.where(np.isnan(height), fill, height)
    mean, std = filled[train].mean(), filled[train].std()
    imputer, scaler = fitted(dm, "tabular_imputation")  # SimpleImputer(median), StandardScaler
    assert imputer.strategy == "median" and imputer.statistics_[2] == fill
    assert fill != np.nanmedian(height)  # the whole subset would give another value
    np.testing.assert_allclose([scaler.mean_[2], scaler.scale_[2]], [mean, std], rtol=1e-9)
    column = dm.inputs["tabular"][:, 2]  # age, sex, height, weight
    assert np.isfinite(dm.inputs["tabular"]).all()  # every missing value filled
    np.testing.assert_allclose(column, (filled - mean) / std, rtol=1e-5)
    no_height = np.flatnonzero(np.isnan(height))
    no_height = no_height[np.isin(no_height, dm.splits["test"])][0]
    assert column[no_height] == pytest.approx((fill - mean) / std, rel=1e-5)
    test = dm.dataset("test")  # the batches carry it as the named input "tabular"
    position = int(np.flatnonzero(dm.splits["test"] == no_height)[0])
    assert float(test.inputs["tabular"][position, 2]) == pytest.approx(float(column[no_height]))
    assert set(test.inputs) == {"signal", "tabular"}
    assert {"signal", "tabular", "target"} <= set(test[position])
    card = dm.describe()["tabular"]
    assert card["missing_per_column"]["height"] == int(np.isnan(height).sum())
    assert card["tabular_fill"][2] == pytest.approx(round(fill, 3))


def test_statistics_travel_in_the_state_dict(dm, ptbxl_dir, cache_dir):
    other = make(ptbxl_dir, cache_dir, **SEED, tabular=["age", "sex", "height", "weight"],
                 split="kfold", fold=3)
    assert not np.allclose(fitted(other, "lead_standardization")[0].mean_,
                           fitted(dm, "lead_standardization")[0].mean_)
    state = dm.state_dict()
    json.dumps(state)  # plain values: checkpoints load with weights_only=True
    assert set(state) == {"transforms"}
    assert set(state["transforms"]) == {"lead_standardization", "tabular_imputation"}
    (lead_state,) = state["transforms"]["lead_standardization"]
    imputer_state, tabular_state = state["transforms"]["tabular_imputation"]
    lead_mean, lead_std = stored(lead_state, "mean_"), stored(lead_state, "scale_")
    np.testing.assert_array_equal(lead_mean, fitted(dm, "lead_standardization")[0].mean_)
    other.load_state_dict(state)
    np.testing.assert_array_equal(fitted(other, "lead_standardization")[0].mean_, lead_mean)
    item = other.splits["test"][0]
    raw = np.asarray(other.raw_inputs["signal"][item], dtype=np.float64)
    expected = (raw - lead_mean[:, None]) / lead_std[:, None]
    test = other.dataset("test")  # rebuilt with the loaded statistics
    np.testing.assert_allclose(test.inputs["signal"][0], expected, atol=1e-4)
    age = ((other.tabular_values[item, 0] - stored(tabular_state, "mean_")[0])
           / stored(tabular_state, "scale_")[0])
    assert float(test.inputs["tabular"][0, 0]) == pytest.approx(age, rel=1e-5)
    assert stored(imputer_state, "statistics_").shape == (4,)
    without_tabular = make(ptbxl_dir, cache_dir, **SEED)
    with pytest.raises(ValueError, match=r"holds the fitted state of transform\(s\) "
                                         r"\['tabular_imputation'\], which this data config does "
                                         r"not use"):
        without_tabular.load_state_dict(state)
    with pytest.raises(ValueError, match=r"holds no fitted state of transform "
                                         r"'tabular_imputation' \(data.tabular="):
        other.load_state_dict({"transforms": {"lead_standardization": [lead_state]}})
    twelve = make(ptbxl_dir, cache_dir, tabular=["age", "sex", "height", "weight"])
    with pytest.raises(ValueError, match=r"'lead_standardization' .* was fitted on inputs "
                                         r"'signal' of width 3; these have 12"):
        twelve.load_state_dict(state)  # statistics of other leads are refused


# ---------------------------------------------------------------------------- bad input
def small_copy(source: Path, dest: Path, per_fold: int = 2, copy: tuple[int, ...] = (),
               edit=None) -> list[int]:
    """A PTB-XL folder with the first labelled ``per_fold`` records of every strat_fold: cut CSV,
    records symlinked (real copies for ``copy``); ``edit(rows)`` may change the CSV rows."""
    rows = csv_rows(source)
    labelled = {e for e, c in superclasses_by_hand(source).items() if c}
    chosen = []
    for fold in range(1, 11):
        chosen += [e for e in rows if int(rows[e]["strat_fold"]) == fold and e in labelled][:per_fold]
    chosen.sort()
    (dest / "records100" / "00000").mkdir(parents=True)
    for name in ("scp_statements.csv", "LICENSE.txt"):
        shutil.copyfile(source / name, dest / name)
    kept = [rows[e] for e in chosen]
    if edit is not None:
        edit(kept)
    with open(dest / "ptbxl_database.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    for e in chosen:
        for ext in ("hea", "dat"):
            name = f"{rows[e]['filename_lr']}.{ext}"
            if e in copy:
                shutil.copyfile(source / name, dest / name)
            else:
                (dest / name).symlink_to(source / name)
    return chosen


def test_a_listed_record_missing_on_disk_is_an_error_or_a_counted_skip(ptbxl_dir, tmp_path):
    chosen = small_copy(ptbxl_dir, tmp_path / "ptb-xl")
    gone = chosen[3]
    (tmp_path / "ptb-xl" / f"records100/00000/{gone:05d}_lr.dat").unlink()
    with pytest.raises(FileNotFoundError, match=rf"1 of the 20 records .* missing on disk, first "
                                                rf".*records100/00000/{gone:05d}_lr.dat\. .*"
                                                r"data.skip_missing_records=true"):
        make(tmp_path / "ptb-xl", tmp_path / "cache")
    assert not (tmp_path / "cache" / "ptb-xl").exists() or not any(
        (tmp_path / "cache" / "ptb-xl").glob("*/manifest.json"))  # nothing half-written
    dm = make(tmp_path / "ptb-xl", tmp_path / "cache", skip_missing_records=True)
    assert gone not in dm.ecg_ids and len(dm.ecg_ids) == 19
    # The defaults: all 12 leads as wfdb reads them, no filter.
    assert dm.leads == list(LEADS) and dm.in_channels == 12
    signal, fields = wfdb.rdsamp(str(tmp_path / "ptb-xl" / f"records100/00000/{chosen[0]:05d}_lr"))
    assert fields["sig_name"] == list(LEADS)
    np.testing.assert_allclose(dm.raw_inputs["signal"][0], signal.T, atol=1e-6)
    assert dm.describe()["skipped_missing_records"] == {"count": 1, "ecg_ids": [gone]}


def test_nan_samples_are_an_error_naming_the_record(ptbxl_dir, tmp_path):
    chosen = small_copy(ptbxl_dir, tmp_path / "ptb-xl")
    name = f"{chosen[5]:05d}_lr"
    folder = tmp_path / "ptb-xl" / "records100" / "00000"
    signal, fields = wfdb.rdsamp(str(folder / name))
    signal[100:110, 7] = np.nan  # V2
    (folder / f"{name}.hea").unlink()
    (folder / f"{name}.dat").unlink()
    wfdb.wrsamp(name, fs=100, units=fields["units"], sig_name=fields["sig_name"], p_signal=signal,
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))
    with pytest.raises(ValueError, match=rf"{name}: lead V2 holds 10 NaN or infinite samples "
                                         r"\(first at sample 100\)"):
        make(tmp_path / "ptb-xl", tmp_path / "cache")


def test_500_hz_records_missing_are_a_clear_error(ptbxl_dir, tmp_path):
    dm = PTBXLDataModule(root=str(ptbxl_dir), cache_dir=str(tmp_path), fs=500)
    with pytest.raises(DataUnavailableError, match=r"data.fs=500 reads the filename_hr records, and "
                                                   r"none is in .*records500/00000/00001_hr.hea.*"
                                                   r"data.fs=100.*data.download_part=records500"):
        dm.prepare_data()
    assert not list(tmp_path.rglob("manifest.json"))


def test_age_over_89_counts_as_90(ptbxl_dir, tmp_path):
    def make_old(rows):
        rows[0]["age"] = "300"  # PTB-XL's code for patients older than 89

    chosen = small_copy(ptbxl_dir, tmp_path / "ptb-xl", edit=make_old)
    dm = make(tmp_path / "ptb-xl", tmp_path / "cache", tabular=["age"])
    assert dm.tabular_values[list(dm.ecg_ids).index(chosen[0]), 0] == 90.0


@pytest.mark.parametrize("options, message", [
    ({"fs": 250}, "data.fs=250 is unknown for ptb-xl; valid: 100, 500"),
    ({"label_scheme": "diagnostic"}, "data.label_scheme='diagnostic' is unknown"),
    ({"split": "random"}, "data.split='random' is unknown"),
    ({"num_folds": 5}, "data.num_folds=5: PTB-XL's k-fold follows its 10 strat_folds"),
    ({"split": "kfold", "fold": 10}, r"data.fold=10 is outside 0..9"),
    ({"bandpass": [1, 60]}, r"data.bandpass=\[1.0, 60.0\] must be \[low, high\] Hz with 0 < low "
                            r"< high < 50"),
    ({"tabular": ["age", "bmi"]}, r"data.tabular=\['age', 'bmi'\]: choose distinct columns"),
    ({"fs": 500, "download_part": "records100"}, "data.download_part=records100 lacks the records"),
    ({"pca_components": 8}, "data.pca_components and data.spectrogram are not offered for ptb-xl"),
    ({"sampler": "weighted"}, "data.sampler=weighted balances single-label classes"),
])
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        PTBXLDataModule(root="/nowhere", **options)


# ---------------------------------------------------------------------------- download
@pytest.fixture(scope="module")
def mirror(ptbxl_dir, tmp_path_factory):
    """A loopback PhysioNet mirror of ``ptb-xl/1.0.3``: 20 real 100 Hz records, the same records
    at 500 Hz written with wfdb (each sample repeated 5 times), cut CSV, SHA256SUMS.txt."""
    served = tmp_path_factory.mktemp("ptbxl-mirror")
    folder = served / "files" / "ptb-xl" / "1.0.3"
    chosen = small_copy(ptbxl_dir, folder, copy=tuple(csv_rows(ptbxl_dir)))
    (folder / "records500" / "00000").mkdir(parents=True)
    for ecg_id in chosen:
        signal, fields = wfdb.rdsamp(str(folder / f"records100/00000/{ecg_id:05d}_lr"))
        wfdb.wrsamp(f"{ecg_id:05d}_hr", fs=500, units=fields["units"], sig_name=fields["sig_name"],
                    p_signal=np.repeat(signal, 5, axis=0), fmt=["16"] * 12,
                    adc_gain=[1000.0] * 12, baseline=[0] * 12,
                    write_dir=str(folder / "records500" / "00000"))
    write_checksums(folder)
    with serve_folder(served) as base_url:
        yield f"{base_url}/files", chosen


def test_download_of_the_100_hz_part(mirror, tmp_path, monkeypatch):
    url, chosen = mirror
    monkeypatch.setenv("ECG_PHYSIONET_URL", url)
    root = tmp_path / "ptb-xl"
    dm = make(root, tmp_path / "cache")  # fs=100: download_part records100
    assert not (root / "records500").exists()  # the 500 Hz part was not fetched
    assert sorted(p.name for p in (root / "records100" / "00000").glob("*.hea")) == [
        f"{e:05d}_lr.hea" for e in chosen]
    listed = (root / "SHA256SUMS.txt").read_text()
    assert "ptbxl_database.csv" in listed and "records500" not in listed
    assert sorted(dm.ecg_ids.tolist()) == chosen and dm.inputs["signal"].shape[1:] == (12, 1000)


def test_download_and_read_of_the_500_hz_part(mirror, tmp_path, monkeypatch):
    url, chosen = mirror
    monkeypatch.setenv("ECG_PHYSIONET_URL", url)
    root = tmp_path / "ptb-xl"
    dm = make(root, tmp_path / "cache", fs=500, leads=SEED_LEADS, standardize=False)
    assert not (root / "records100").exists() and (root / "records500").is_dir()
    assert dm.seq_len == 5000 and dm.data_facts()["sampling_rate_hz"] == 500.0
    signal, _ = wfdb.rdsamp(str(root / f"records500/00000/{chosen[0]:05d}_hr"),
                            channel_names=SEED_LEADS)
    np.testing.assert_allclose(dm.inputs["signal"][0], signal.T, atol=1e-6)


# ---------------------------------------------------------------------------- models
def test_recurrent_nets_read_the_final_states():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 50)
    for net_class in (PTBXLGRU, PTBXLLSTM):
        net = net_class(num_classes=4, in_channels=3, hidden_size=8, bidirectional=True).eval()
        assert net.rnn.num_layers == 2 and net(x).shape == (2, 4)
        states, _ = net.rnn(x.transpose(1, 2))
        # The seed's readout: forward direction's last step, backward direction's first step.
        seed = torch.cat([states[:, -1, :8], states[:, 0, 8:]], dim=1)
        torch.testing.assert_close(net(x), net.fc(seed))
    assert PTBXLLSTM(num_classes=5, in_channels=7).rnn.dropout == 0.2
    assert PTBXLGRU(num_classes=4, in_channels=3).rnn.hidden_size == 128


def test_cnn_gru_keeps_the_time_axis():
    """A change after sample 900 leaves the GRU's first steps alone; the seed's reshape would not."""
    torch.manual_seed(0)
    net = PTBXLCNNGRU(num_classes=4, in_channels=3, seq_len=1000).eval()
    x = torch.randn(1, 3, 1000)
    late = x.clone()
    late[..., 900:] += 1.0
    before, after = net.sequence(x), net.sequence(late)
    assert before.shape == (1, 121, 24)  # (1000 - 4) / 2 ... three times; 3 x 8 channels
    # Step s sees samples up to 8 s + 35: steps 0..108 precede the change.
    torch.testing.assert_close(before[:, :109], after[:, :109], rtol=0, atol=0)
    assert not torch.equal(before[:, 112:], after[:, 112:])
    features = net.features(x), net.features(late)
    reshaped = [f.reshape(1, 121, 24) for f in features]  # the seed's cnn_gru.py
    assert not torch.equal(reshaped[0][:, :109], reshaped[1][:, :109])
    assert net(x).shape == (1, 4)


# ---------------------------------------------------------------------------- presets, MLflow, summary
def compose(tmp_path, cache_dir, *overrides, logger="none"):
    return compose_config([*overrides, f"logger={logger}", f"paths.root_dir={tmp_path}",
                           f"paths.output_dir={tmp_path}/run", f"paths.cache_dir={cache_dir}",
                           "callbacks.progress_bar.refresh_rate=0"])


@pytest.mark.parametrize("preset, labels, tabular", [
    ("ptbxl_gru", 4, None), ("ptbxl_cnngru", 4, None), ("ptbxl_lstm", 5, 4)])
def test_preset_fast_dev_run(preset, labels, tabular, ptbxl_dir, cache_dir, tmp_path):
    # Batches of 8: a batch of 64 takes 10-20 s through 1000 recurrent steps on a busy CPU.
    cfg = compose(tmp_path, cache_dir, f"experiment={preset}", "debug=fdr", "data.batch_size=8")
    assert list(cfg.data.leads) == SEED_LEADS and list(cfg.data.bandpass) == [1.0, 45.0]
    assert cfg.model.net.hidden_size == 128
    assert cfg.monitor.metric == "val/loss" and cfg.loss.weighting == "inverse"
    assert (cfg.get("scheduler") is not None) == (preset == "ptbxl_lstm")
    # The nets read the 3 leads; the LSTM's tabular values join its head (models/fusion.py).
    data = make(ptbxl_dir, cache_dir, **{k: v for k, v in dict(cfg.data).items()
                                        if k in ("leads", "bandpass", "tabular", "label_scheme")})
    assert data.in_channels == 3 and data.num_classes == labels
    net = build_model(cfg, data).net
    if tabular is None:
        assert data.auxiliary_inputs == {} and not isinstance(net, AuxiliaryFusion)
    else:
        assert data.auxiliary_inputs == {"tabular": tabular} and isinstance(net, AuxiliaryFusion)
        assert net.input_names == ("signal", "tabular")
        assert net.embedding[0].in_features == tabular and net.backbone.rnn.input_size == 3
    _, metrics = train(cfg)
    names = ["MI", "STTC", "CD", "HYP"] if labels == 4 else ["NORM", "MI", "STTC", "CD", "HYP"]
    for name in names:  # counts at the G-mean thresholds of every label, on the one test batch
        counts = [metrics[f"test/{m}_at_gmean/{name}"] for m in ("tp", "fn", "fp", "tn")]
        assert sum(counts) == 8, name
        assert f"test/specificity/{name}" in metrics
    assert 0.0 <= metrics["test/auroc_macro"] <= 1.0  # over the labels present in the batch


def test_multilabel_run_in_mlflow_and_evaluate(ptbxl_dir, cache_dir, tmp_path, monkeypatch):
    """Fit + test a small GRU: per-label thresholds, counts, artifacts in a sqlite store; then
    ``evaluate`` re-tests the checkpoint with its own statistics and thresholds."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    overrides = ["experiment=ptbxl_gru", "model.net.hidden_size=8", "model.net.num_layers=1",
                 "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "bootstrap_resamples=20"]
    value, metrics = train(compose(tmp_path, cache_dir, *overrides, logger="mlflow"))
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    (run,) = client.search_runs(client.get_experiment_by_name("ptbxl_gru").experiment_id)
    assert run.info.status == "FINISHED" and value == pytest.approx(metrics["val/loss"])
    assert run.data.tags["split"] == "subject_disjoint_fixed"
    assert run.data.tags["label_scheme"] == "superdiagnostic4"
    thresholds = json.loads((tmp_path / "run" / "thresholds.json").read_text())["classes"]
    assert [row["class"] for row in thresholds] == ["MI", "STTC", "CD", "HYP"]
    for row in thresholds:
        name = row["class"]
        assert run.data.metrics[f"test/gmean_threshold/{name}"] == pytest.approx(row["threshold"])
        counts = [run.data.metrics[f"test/{m}_at_gmean/{name}"] for m in ("tp", "fn", "fp", "tn")]
        assert sum(counts) == 64 and counts == [row[m] for m in ("tp", "fn", "fp", "tn")]
        assert run.data.metrics[f"test/sensitivity_at_gmean/{name}"] == pytest.approx(
            row["tp"] / (row["tp"] + row["fn"]))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"thresholds.json", "thresholds.csv", "metrics_test.json", "roc_curves.png",
            "dataset_card.json", "config.yaml"} <= artifacts
    card = json.loads((tmp_path / "run" / "dataset_card.json").read_text())
    assert card["dropped_without_superclass"]["count"] == 12

    best = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    saved = torch.load(best, weights_only=True)["PTBXLDataModule"]["transforms"]
    assert set(saved) == {"lead_standardization"}  # the GRU preset has no tabular input
    assert stored(saved["lead_standardization"][0], "mean_").shape == (3,)  # leads I, II, V2
    _, again = evaluate(str(best), [f"paths.root_dir={tmp_path}", f"paths.cache_dir={cache_dir}",
                                    "logger=none", "bootstrap_resamples=20",
                                    "callbacks.progress_bar.refresh_rate=0"])
    for name in ("test/auroc_macro", "test/loss", "test/tp_at_gmean/MI", "test/fp_at_gmean/HYP"):
        assert again[name] == pytest.approx(metrics[name], abs=1e-5), name


def test_summary_prints_the_card(ptbxl_dir, cache_dir, dm, tmp_path, capsys):
    """``python -m ecg_lightning.summary data=ptbxl ... --json``, called in this process."""
    summary.main(["data=ptbxl", "data.leads=[I,II,V2]", "data.bandpass=[1,45]",
                  "data.label_scheme=superdiagnostic4", f"paths.cache_dir={cache_dir}", "--json"])
    card = json.loads(capsys.readouterr().out)
    assert card["database"] == "ptb-xl" and card["label_classes"] == ["MI", "STTC", "CD", "HYP"]
    assert card["leads"] == SEED_LEADS and card["dropped_without_superclass"]["count"] == 12
    assert card["splits"]["test"]["items"] == 64 and card["strat_folds_per_split"]["val"] == [9]
    assert card["splits"]["train"]["per_class"]["HYP"] == 25
    text = summary.format_card(card)  # the table the command prints without --json
    assert "MI" in text and "HYP" in text and "dropped_without_superclass" in text
    files = summary.write_plots(dm, tmp_path)  # summary --plots
    assert [f.name for f in files] == ["class_distribution.png", "input.png"]
    assert all(f.stat().st_size > 1000 for f in files)
