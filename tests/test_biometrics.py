"""ECG biometrics: the cross-session split, k-beat identification and verification rates.

The cross-session split is checked on the real ECG-ID database in ``$ECG_DATA_DIR``; its
refusals and the end-to-end run use small ECG-ID-like records written with ``wfdb.wrsamp``
(two persons on two days, one on one day).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb

from ecg_lightning.biometrics import (biometric_report, block_means, check_beats_per_decision,
                                      decision_blocks, equal_error_rate, verification_curve)
from ecg_lightning.data.ecgiddb import ECGIDDataModule
from ecg_lightning.run import train
from ecg_lightning.summary import compose_config


# ---------------------------------------------------------------------------- the split on ECG-ID
@pytest.fixture(scope="module")
def cross_session(data_dir, tmp_path_factory):
    dm = ECGIDDataModule(root=str(data_dir / "ecgiddb"), split="cross_session", fs=128,
                         cache_dir=str(tmp_path_factory.mktemp("ecgid-cross-session")))
    dm.prepare_data()
    dm.setup()
    return dm


def test_cross_session_trains_on_the_first_day_and_tests_on_later_days(cross_session, data_dir):
    dm = cross_session
    days = {}  # person -> record -> day, read from the headers here (not by the datamodule)
    for name in (data_dir / "ecgiddb" / "RECORDS").read_text().split():
        comment = next(c for c in wfdb.rdheader(str(data_dir / "ecgiddb" / name)).comments
                       if "ECG date" in c)
        day = datetime.datetime.strptime(comment.split(":")[1].strip(), "%d.%m.%Y").date()
        days.setdefault(name.split("/")[0], {})[name] = day
    several = {p for p, recs in days.items() if len(set(recs.values())) > 1}
    assert len(days) == 90 and len(several) == 20
    assert sum(len(set(recs.values())) for recs in days.values()) == 124
    item_day = np.array([days[str(r).split("/")[0]][str(r)] for r in dm.records])
    for person in days:
        first = min(days[person].values())
        mine = dm.groups == person
        for side in ("train", "val"):  # every person enrols on its earliest day only
            on_side = np.intersect1d(np.flatnonzero(mine), dm.splits[side])
            assert len(on_side) and set(item_day[on_side]) == {first}, (person, side)
        tested = np.intersect1d(np.flatnonzero(mine), dm.splits["test"])
        if person in several:  # every beat of every later day tests
            assert set(item_day[tested]) == set(days[person].values()) - {first}
            assert len(tested) == (mine & (item_day != first)).sum()
        else:
            assert len(tested) == 0
    assert dm.describe()["sessions_per_split"]["test"] == {
        "subjects": 20, "subject_days": 34, "items": len(dm.splits["test"])}
    assert dm.describe()["split_paradigm"] == "cross_session"


# ---------------------------------------------------------------------------- refusals
def write_ecgid_like(folder: Path, dates: dict[str, list[str | None]], seconds: int = 20,
                     fs: int = 500) -> Path:
    """``Person_XX/rec_N`` records (both ECG-ID leads), one per date, with ``.atr`` beats."""
    t = np.arange(seconds * fs) / fs
    names = []
    for p, (person, person_dates) in enumerate(dates.items()):
        (folder / person).mkdir(parents=True, exist_ok=True)
        for n, when in enumerate(person_dates, start=1):
            rng = np.random.default_rng(10 * p + n)
            beats = np.arange(0.5, seconds - 0.5, 0.8 + 0.05 * p)
            signal = sum((1.0 + 0.5 * p) * np.exp(-((t - b) / (0.01 + 0.004 * p)) ** 2)
                         + 0.3 * np.exp(-((t - b - 0.3) / 0.05) ** 2) for b in beats)
            signal = signal + 0.02 * rng.normal(size=len(t))
            wfdb.wrsamp(f"rec_{n}", fs=fs, units=["mV", "mV"], sig_name=["ECG I", "ECG I filtered"],
                        p_signal=np.stack([signal, signal], axis=1), fmt=["16", "16"],
                        comments=["Age: 30", "Sex: male"] + ([f"ECG date: {when}"] if when else []),
                        write_dir=str(folder / person))
            wfdb.wrann(f"rec_{n}", "atr", np.round(beats * fs).astype(int),
                       symbol=["N"] * len(beats), write_dir=str(folder / person))
            names.append(f"{person}/rec_{n}")
    (folder / "RECORDS").write_text("".join(f"{n}\n" for n in names))
    return folder


def small_module(root: Path, tmp_path: Path, **options) -> ECGIDDataModule:
    return ECGIDDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), download=False,
                           beats="annotations", split="cross_session", **options)


def test_cross_session_refuses_undated_records_and_single_days(tmp_path):
    undated = write_ecgid_like(tmp_path / "undated", {"Person_01": [None, None],
                                                      "Person_02": [None, None]})
    dm = small_module(undated, tmp_path)
    with pytest.raises(ValueError, match=r"cross_session needs the day.*4 ecgiddb records carry "
                                         r"none.*Person_01/rec_1"):
        dm.setup()
    one_day = write_ecgid_like(tmp_path / "one-day", {"Person_01": ["01.02.2005", "01.02.2005"],
                                                      "Person_02": ["03.02.2005"]})
    with pytest.raises(ValueError, match="no ecgiddb subject was recorded on two days"):
        small_module(one_day, tmp_path).setup()


def test_identification_beats_must_be_positive_integers():
    assert check_beats_per_decision([10, 1, 5, 5]) == [1, 5, 10]
    for bad in ([], [0], [2.5], ["5"]):
        with pytest.raises(ValueError, match="identification_beats="):
            check_beats_per_decision(bad)


# ---------------------------------------------------------------------------- the figures
def test_decision_blocks_stay_in_a_record_and_keep_every_beat():
    records = torch.tensor([0] * 7 + [1] * 3 + [2] * 10)
    blocks, short = decision_blocks(records, 5)
    # record 0: 7 beats -> one block of 7 (the 2 left over join it); record 1: 3 beats < 5 ->
    # one short block; record 2: two blocks of 5
    assert blocks.tolist() == [0] * 7 + [1] * 3 + [2] * 5 + [3] * 5 and short == 1
    assert decision_blocks(records, 1)[0].tolist() == list(range(20))
    probs = torch.tensor([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]])
    means, targets = block_means(probs, torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]))
    torch.testing.assert_close(means, torch.tensor([[0.6, 0.4], [0.1, 0.9]]))
    assert targets.tolist() == [0, 1]


def test_equal_error_rate_and_tar_at_far_on_known_scores():
    # two persons, four decisions: genuine scores 0.9, 0.6, 0.8, 0.3 (the last one low),
    # impostor scores 0.1, 0.4, 0.2, 0.7. At a threshold of 0.6: 1 of 4 impostors accepted,
    # 1 of 4 genuine rejected -> EER 25 %.
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3]], dtype=torch.float64)
    targets = torch.tensor([0, 0, 1, 1])
    far, tar = verification_curve(probs, targets)
    assert equal_error_rate(far, tar) == pytest.approx(0.25)
    flat, curves = biometric_report(probs, targets, torch.tensor([0, 0, 1, 1]), [1, 2])
    assert flat["test/verification/k1/eer"] == pytest.approx(0.25)
    assert flat["test/verification/k1/tar_at_far_1pct"] == pytest.approx(0.5)  # 0.9 and 0.8
    assert flat["test/identification/k1/accuracy"] == pytest.approx(0.75)  # the 4th is wrong
    # two beats per decision: person 0 -> [0.75, 0.25], person 1 -> [0.45, 0.55]: both right,
    # genuine 0.75, 0.55 above every impostor (0.25, 0.45): no error at all
    assert flat["test/identification/k2/accuracy"] == 1.0
    assert flat["test/verification/k2/eer"] == 0.0
    assert flat["test/verification/k2/tar_at_far_0.1pct"] == 1.0
    assert set(curves) == {1, 2}


def test_cross_session_run_logs_verification_figures_and_det_plot(tmp_path):
    root = write_ecgid_like(tmp_path / "ecgid", {
        "Person_01": ["01.02.2005", "01.02.2005", "09.03.2005"],
        "Person_02": ["02.02.2005", "02.02.2005", "10.03.2005"],
        "Person_03": ["02.02.2005", "02.02.2005"]})
    cfg = compose_config([
        "experiment=kim2020_ecgiddb_cross_session", f"data.root={root}", "data.beats=annotations",
        "data.download=false", "trainer.max_epochs=1", "data.batch_size=16", "logger=mlflow",
        f"logger.mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/run",
        f"paths.cache_dir={tmp_path}/cache", "callbacks.progress_bar.refresh_rate=0"])
    _, metrics = train(cfg)
    for k in (1, 5, 10):
        assert 0.0 <= metrics[f"test/verification/k{k}/eer"] <= 1.0
        assert 0.0 <= metrics[f"test/identification/k{k}/accuracy"] <= 1.0
    # test: the later day of persons 1 and 2, one record each of 24 and 23 beats
    assert metrics["test/identification/k1/decisions"] == 47
    assert metrics["test/identification/k10/decisions"] == 4  # blocks of 10 + 14, 10 + 13
    assert (tmp_path / "run" / "verification_det.png").stat().st_size > 0
