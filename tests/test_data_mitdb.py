"""The mitdb datamodule checked against the raw MIT-BIH files, read independently with wfdb.

Nothing here reuses the module's own label tables, split lists or filters: the AAMI mapping,
the de Chazal record lists and the band-pass are written out again below, so a slip in the
module shows up as a disagreement with the raw annotations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import wfdb
from neurodsp.filt.iir import apply_iir_filter, design_iir_filter

from ecg_lightning.data.mitdb import MITBIHDataModule

REPO = Path(__file__).resolve().parents[1]

# AAMI EC57 classes of the MIT-BIH beat symbols; every other symbol is a non-beat annotation.
AAMI = {"N": "N", "L": "N", "R": "N", "e": "N", "j": "N",
        "A": "S", "a": "S", "J": "S", "S": "S",
        "V": "V", "E": "V",
        "F": "F",
        "/": "Q", "f": "Q", "Q": "Q"}
# de Chazal et al. 2004, IEEE TBME 51(7): DS1 trains, DS2 tests; the paced records are in neither.
DS1 = {101, 106, 108, 109, 112, 114, 115, 116, 118, 119, 122, 124, 201, 203, 205, 207, 208, 209,
       215, 220, 223, 230}
DS2 = {100, 103, 105, 111, 113, 117, 121, 123, 200, 202, 210, 212, 213, 214, 219, 221, 222, 228,
       231, 232, 233, 234}
PACED = {102, 104, 107, 217}
VAL_RECORDS = {106, 118, 223}  # conf/data/mitdb.yaml
PRE_SECONDS, POST_SECONDS = 0.25, 0.45  # conf/data/mitdb.yaml


@pytest.fixture(scope="module")
def raw(mitdb_dir):
    """Per record: header and ``atr`` annotations, read with wfdb alone."""
    out = {}
    for name in (mitdb_dir / "RECORDS").read_text().split():
        header = wfdb.rdheader(str(mitdb_dir / name))
        annotation = wfdb.rdann(str(mitdb_dir / name), "atr")
        out[int(name)] = {"fs": header.fs, "sig_len": header.sig_len, "sig_name": header.sig_name,
                          "sample": annotation.sample, "symbol": np.asarray(annotation.symbol)}
    return out


def expected_counts(raw: dict, label) -> dict[int, Counter]:
    """Per non-paced record, windows per class, where ``label(symbol)`` is the class or None."""
    counts = {}
    for record, rec in raw.items():
        if record in PACED:
            continue
        symbols = rec["symbol"]  # every annotation: edge windows are padded, not dropped
        counts[record] = Counter(c for c in map(label, symbols) if c is not None)
    return counts


def module_counts(dm) -> dict[int, Counter]:
    """Per record, items per class name, as the datamodule has them."""
    counts = {}
    for record in np.unique(dm.records):
        targets = dm.targets[dm.records == record]
        counts[int(record)] = Counter(dm.class_names[t] for t in targets)
    return counts


@pytest.fixture(scope="module")
def make_dm(mitdb_dir, mitdb_cache_dir, mitdb_datamodule):
    """Build and set up a datamodule on the shared, already warm session cache."""
    def make(**overrides):
        dm = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir), **overrides)
        dm.prepare_data()
        dm.setup("validate")  # splits for every stage, one small dataset
        return dm
    return make


def records_of(dm, split: str) -> set[int]:
    return set(map(int, np.unique(dm.records[dm.splits[split]])))


def subjects_of(dm, split: str) -> set[int]:
    return set(map(int, np.unique(dm.groups[dm.splits[split]])))


# ---------------------------------------------------------------------------- labels and counts
def test_aami_counts_per_record_match_raw_annotations(mitdb_datamodule, raw):
    """Default config: per record, every AAMI beat of the .atr is an item."""
    dm = mitdb_datamodule
    assert dm.class_names == ["N", "S", "V", "F", "Q"]
    expected = expected_counts(raw, AAMI.get)
    assert module_counts(dm) == expected
    assert set(expected) == DS1 | DS2  # 44 records: the paced four are left out
    assert (dm.inputs["signal"].shape[1], dm.seq_len) == (1, round(0.25 * 360) + round(0.45 * 360))


def test_split_totals_add_up(mitdb_datamodule):
    """Every item is in exactly one split, and the per-class counts of the splits add up."""
    dm = mitdb_datamodule
    everything = np.concatenate([dm.splits[name] for name in ("train", "val", "test")])
    assert np.array_equal(np.sort(everything), np.arange(len(dm.targets)))
    per_class = sum(dm.split_counts(name) for name in ("train", "val", "test"))
    assert per_class.tolist() == np.bincount(dm.targets, minlength=5).tolist()
    assert dm.class_counts == dm.split_counts("train").tolist()


def test_symbols_scheme_has_all_23_symbols(make_dm, raw):
    """label_scheme=symbols: one class per symbol found in the 48 .atr files, every annotation kept."""
    dm = make_dm(label_scheme="symbols")
    all_symbols = set().union(*(set(rec["symbol"]) for rec in raw.values()))
    assert dm.num_classes == 23
    assert set(dm.class_names) == all_symbols
    assert module_counts(dm) == expected_counts(raw, lambda s: s)


def test_binary_scheme_normal_is_symbol_n(make_dm, raw):
    """label_scheme=binary: N beats are normal, every other beat abnormal, non-beats dropped."""
    dm = make_dm(label_scheme="binary")
    assert dm.class_names == ["normal", "abnormal"]

    def binary(symbol):
        if symbol not in AAMI:
            return None
        return "normal" if symbol == "N" else "abnormal"

    assert module_counts(dm) == expected_counts(raw, binary)


# ---------------------------------------------------------------------------- windows
def test_windows_equal_filtered_signal_at_annotation(mitdb_datamodule, mitdb_dir, raw):
    """A few windows (one of record 114, whose MLII is channel 2) equal the raw signal there."""
    dm = mitdb_datamodule
    rng = np.random.default_rng(0)
    items = list(rng.choice(len(dm.targets), 3, replace=False))
    items.append(int(np.flatnonzero(dm.records == 114)[100]))
    assert raw[114]["sig_name"] == ["V5", "MLII"]  # so channel 0 would be the wrong lead

    for item in items:
        record, sample = int(dm.records[item]), int(dm.samples[item])
        rec = raw[record]
        position = np.flatnonzero(rec["sample"] == sample)
        assert len(position) == 1
        assert AAMI[rec["symbol"][position[0]]] == dm.class_names[dm.targets[item]]

        signal = wfdb.rdrecord(str(mitdb_dir / str(record))).p_signal[:, rec["sig_name"].index("MLII")]
        signal = apply_iir_filter(signal, design_iir_filter(rec["fs"], "bandpass", (0.5, 40.0), 2))
        pre, post = round(PRE_SECONDS * rec["fs"]), round(POST_SECONDS * rec["fs"])
        window = signal[sample - pre:sample + post]
        window = (window - window.mean()) / window.std()
        assert np.allclose(dm.inputs["signal"][item, 0], window, atol=1e-4), f"record {record} sample {sample}"


def test_windows_crossing_record_edges_are_padded_and_counted(small_mitdb, tmp_path, raw):
    """A window that just fits (first sample 0, last sample sig_len - 1) is not padded; one that
    crosses the edge (the 1st annotation's) is padded and counted, and still an item."""
    rec = raw[100]
    pre = int(rec["sample"][1])                     # the 2nd annotation's window starts at 0
    post = int(rec["sig_len"] - rec["sample"][-1])  # the last one's window ends at the last sample
    dm = MITBIHDataModule(root=str(small_mitdb(("100",))), cache_dir=str(tmp_path / "cache"),
                          pre_seconds=pre / rec["fs"], post_seconds=post / rec["fs"],
                          label_scheme="symbols", split="intra_patient")
    dm.setup()
    assert dm.seq_len == pre + post
    assert np.array_equal(np.sort(dm.samples), rec["sample"])  # every annotation is an item
    assert dm.info["padded_at_edges"] == {"100": 1}  # only the 1st crosses the edge


# ---------------------------------------------------------------------------- splits
def test_inter_patient_is_de_chazal(mitdb_datamodule):
    """inter_patient: DS1 minus val_records trains, val_records validate, DS2 tests."""
    dm = mitdb_datamodule
    assert records_of(dm, "train") == DS1 - VAL_RECORDS
    assert records_of(dm, "val") == VAL_RECORDS <= DS1
    assert records_of(dm, "test") == DS2
    assert dm.split_paradigm == "inter_patient"


def assert_subject_disjoint(dm) -> None:
    sides = {name: subjects_of(dm, name) for name in ("train", "val", "test")}
    assert not sides["train"] & sides["val"]
    assert not sides["train"] & sides["test"]
    assert not sides["val"] & sides["test"]
    # 201 and 202 are one subject: they must land on the same side.
    assert [name for name in sides if 201 in records_of(dm, name)] == \
           [name for name in sides if 202 in records_of(dm, name)]
    assert sum(len(dm.splits[name]) for name in sides) == len(dm.targets)


def test_record_split_is_subject_disjoint(make_dm):
    """split=record: whole subjects go to train, val or test, seeded."""
    dm = make_dm(split="record")
    assert_subject_disjoint(dm)
    assert dm.split_paradigm == "subject_disjoint_random"
    assert len(subjects_of(dm, "test")) == round(0.2 * 43)  # 44 records, 43 subjects
    again = make_dm(split="record")
    assert all(np.array_equal(dm.splits[n], again.splits[n]) for n in dm.splits)


def test_kfold_covers_every_subject_once_as_test(make_dm):
    """split=kfold: each fold subject-disjoint; folds 0..4 test every subject exactly once."""
    folds = []
    for fold in range(5):
        dm = make_dm(split="kfold", fold=fold)
        assert_subject_disjoint(dm)
        assert dm.split_paradigm == "subject_disjoint_kfold"
        folds.append({name: subjects_of(dm, name) for name in ("val", "test")})
    for fold in range(5):  # the next fold validates
        assert folds[fold]["val"] == folds[(fold + 1) % 5]["test"]
    all_subjects = set(map(int, np.unique(dm.groups)))
    assert len(all_subjects) == 43 and 202 not in all_subjects  # 202 is filed under subject 201
    assert sorted(s for f in folds for s in f["test"]) == sorted(all_subjects)


def test_intra_patient_is_stratified_and_leaky(make_dm):
    """split=intra_patient: class proportions kept in test; patients on both sides, and it says so."""
    dm = make_dm(split="intra_patient")
    overall = np.bincount(dm.targets, minlength=5)
    for split, fraction in (("train", 0.7), ("val", 0.1), ("test", 0.2)):  # conf/data/mitdb.yaml
        # Stratified: every class within one item of its share (a random split misses by ~10).
        assert np.abs(dm.split_counts(split) - fraction * overall).max() <= 1, split
    assert records_of(dm, "train") & records_of(dm, "test") == DS1 | DS2  # every patient leaks
    assert dm.split_paradigm == "intra_patient"
    assert dm.describe()["split_paradigm"] == "intra_patient"


# ---------------------------------------------------------------------------- leads
def test_paced_records_have_no_mlii(make_dm, raw):
    """exclude_paced=false with lead MLII: an error naming records 102 and 104 and the lead."""
    assert {r for r, rec in raw.items() if "MLII" not in rec["sig_name"]} == {102, 104}
    with pytest.raises(ValueError) as excinfo:
        make_dm(exclude_paced=False)
    message = str(excinfo.value)
    assert "102: V5, V2; 104: V5, V2" in message and "['MLII']" in message


def test_lead_is_chosen_by_name(small_mitdb, tmp_path, raw):
    """Records 102 and 104 hold V5 and V2, no V1: lead=V1 names them, lead=V5 reads them (and 114)."""
    assert raw[102]["sig_name"] == raw[104]["sig_name"] == ["V5", "V2"]
    assert "V1" not in raw[100]["sig_name"] and "V1" in raw[101]["sig_name"]
    root = small_mitdb(("100", "101", "102", "104"))
    dm = MITBIHDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), lead="V1",
                          exclude_paced=False, split="intra_patient")
    with pytest.raises(ValueError, match=r"\(their leads: 100: MLII, V5; 102: V5, V2; 104: V5, V2\)"):
        dm.setup()

    root = small_mitdb(("102", "104", "114"))
    dm = MITBIHDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), lead="V5",
                          exclude_paced=False, split="intra_patient")
    dm.setup()
    assert set(map(int, np.unique(dm.records))) == {102, 104, 114}


# ---------------------------------------------------------------------------- cache
def test_cache_key_follows_preprocessing_only(make_dm, mitdb_datamodule, mitdb_dir, mitdb_cache_dir):
    """Label scheme and split reuse the cache entry; a preprocessing change gets its own folder."""
    default = mitdb_datamodule.cache_path
    entries = sorted((mitdb_cache_dir / "mitdb").iterdir())
    manifest_time = (default / "manifest.json").stat().st_mtime_ns

    dm = make_dm(label_scheme="binary", split="kfold", fold=3)
    assert dm.cache_path == default
    assert sorted((mitdb_cache_dir / "mitdb").iterdir()) == entries  # nothing rebuilt
    assert (default / "manifest.json").stat().st_mtime_ns == manifest_time

    for change in ({"post_seconds": 0.5}, {"pre_seconds": 0.3}, {"bandpass": None},
                   {"normalize": "minmax"}, {"lead": "V1"}, {"fs": 250}):
        other = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir), **change)
        assert other.cache_path.parent == default.parent
        assert other.cache_path != default, change


def test_changed_window_builds_a_second_entry(small_mitdb, tmp_path, mitdb_datamodule):
    """post_seconds=0.5 builds a new entry with longer windows; the first stays as it was."""
    root = small_mitdb(("100",))
    cache = tmp_path / "cache"
    first = MITBIHDataModule(root=str(root), cache_dir=str(cache), split="intra_patient")
    first.setup()
    second = MITBIHDataModule(root=str(root), cache_dir=str(cache), split="intra_patient",
                              post_seconds=0.5)
    second.setup()
    assert first.seq_len == 252 and second.seq_len == 90 + 180
    assert sorted(p.name for p in (cache / "mitdb").iterdir()) == \
           sorted([first.cache_path.name, second.cache_path.name])
    # Another record set is another entry too: a folder of one record never reads the full cache.
    assert first.cache_path.name != mitdb_datamodule.cache_path.name


# ---------------------------------------------------------------------------- summary
def test_summary_json_matches_datamodule(mitdb_datamodule, mitdb_cache_dir):
    """`python -m ecg_lightning.summary data=mitdb --json` reports the datamodule's counts (warm cache)."""
    dm = mitdb_datamodule
    entries = sorted((mitdb_cache_dir / "mitdb").iterdir())
    env = {**os.environ, "ECG_CACHE_DIR": str(mitdb_cache_dir)}
    result = subprocess.run([sys.executable, "-m", "ecg_lightning.summary", "data=mitdb", "--json"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    card = json.loads(result.stdout)
    assert card["cache"] == str(dm.cache_path)
    assert sorted((mitdb_cache_dir / "mitdb").iterdir()) == entries  # read, not rebuilt
    assert card["split"] == card["split_paradigm"] == "inter_patient"
    assert card["label_classes"] == ["N", "S", "V", "F", "Q"]
    assert card["window_samples"] == dm.seq_len
    for name in ("train", "val", "test"):
        split = card["splits"][name]
        assert split["items"] == len(dm.splits[name])
        assert split["per_class"] == dict(zip(dm.class_names, dm.split_counts(name).tolist()))
        assert set(card["records_per_split"][name]) == records_of(dm, name)
    assert sum(s["items"] for s in card["splits"].values()) == len(dm.targets)


def test_summary_text_has_split_table(mitdb_datamodule, mitdb_cache_dir, monkeypatch, capsys):
    """The plain card prints one row per split: subjects, items per class, items."""
    from ecg_lightning import summary

    dm = mitdb_datamodule
    monkeypatch.setenv("ECG_CACHE_DIR", str(mitdb_cache_dir))
    summary.main(["data=mitdb"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("mitdb")
    header = next(l for l in lines if l.split()[:2] == ["split", "subjects"]).split()
    assert header[2:] == ["N", "S", "V", "F", "Q", "items"]
    for name in ("train", "val", "test"):
        row = next(l for l in lines if l.split()[:1] == [name]).split()
        expected = [len(subjects_of(dm, name)), *dm.split_counts(name).tolist(), len(dm.splits[name])]
        assert list(map(int, row[1:])) == expected
    assert "  test records (22): " + " ".join(map(str, sorted(DS2))) in lines
