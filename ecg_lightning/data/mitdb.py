"""MIT-BIH Arrhythmia Database (PhysioNet ``mitdb``): beat windows around annotations.

48 half-hour two-lead records of 47 subjects (201 and 202 are one person) at 360 Hz, with
reference beat and rhythm annotations in ``.atr`` files. Every annotation (beat or not) is
cut into a window of ``pre_seconds + post_seconds`` around its sample and cached; the label
scheme and the split are applied afterwards, so changing them never rebuilds the cache.

Splits:

* ``inter_patient`` (default): de Chazal et al. 2004, IEEE TBME 51(7): train on DS1 minus
  ``val_records`` (validation), test on DS2. Subject-disjoint.
* ``intra_patient``: stratified random windows; the same patient lands on both sides, as in
  most papers that report 97-100 %. Patient-leaky: logged as such.
* ``records``: fixed record lists (``train_records``, ``val_records``, ``test_records``), e.g.
  a paper's own split; lists that share a subject are refused.
* ``record``: random whole subjects to train/val/test, seeded.
* ``kfold``: subject-disjoint k-fold (``fold`` of ``num_folds``; the next fold validates).
* ``time``: within each subject, earlier beats train and later beats test; with
  ``label_scheme=identification`` (47 classes, one per person) this is Kim & Pyun 2020's task.

Reading, filtering and windowing are shared with the other beat databases (``beats.py``).
"""

from __future__ import annotations

import numpy as np

from ecg_lightning.data.beats import BeatDataModule

DS1 = (101, 106, 108, 109, 112, 114, 115, 116, 118, 119, 122, 124, 201, 203, 205, 207, 208,
       209, 215, 220, 223, 230)
DS2 = (100, 103, 105, 111, 113, 117, 121, 123, 200, 202, 210, 212, 213, 214, 219, 221, 222,
       228, 231, 232, 233, 234)
PACED = (102, 104, 107, 217)
SAME_SUBJECT = {202: 201}  # record -> the record whose subject it shares


def subject_of(record: int) -> int:
    return SAME_SUBJECT.get(record, record)


class MITBIHDataModule(BeatDataModule):
    """Beat windows of the MIT-BIH Arrhythmia Database with AAMI, binary, symbol or subject labels."""

    slug = "mitdb"
    physionet_version = "1.0.0"
    splits_offered = ("inter_patient", "records", "intra_patient", "record", "kfold", "time")

    def __init__(self, exclude_paced: bool = True, split: str = "inter_patient",
                 val_records: tuple[int, ...] = (106, 118, 223),
                 train_records: tuple[int, ...] | None = None,
                 test_records: tuple[int, ...] | None = None, **beat) -> None:
        super().__init__(split=split, **beat)
        self.exclude_paced = exclude_paced
        self.val_records = tuple(int(r) for r in val_records)
        self.train_records = tuple(int(r) for r in train_records or ())
        self.test_records = tuple(int(r) for r in test_records or ())
        if split == "records":
            self.check_record_lists()

    def check_record_lists(self) -> None:
        """``split=records``: three non-empty lists that share no subject."""
        sides = {"train_records": self.train_records, "val_records": self.val_records,
                 "test_records": self.test_records}
        empty = [name for name, records in sides.items() if not records]
        if empty:
            raise ValueError(f"data.split=records needs data.{', data.'.join(empty)} (lists of "
                             "mitdb record numbers)")
        subjects = {name: {subject_of(r) for r in records} for name, records in sides.items()}
        for a, b in (("train_records", "val_records"), ("train_records", "test_records"),
                     ("val_records", "test_records")):
            shared = subjects[a] & subjects[b]
            if shared:
                raise ValueError(f"data.{a} and data.{b} share subjects {sorted(shared)} "
                                 "(201 and 202 are one person): the split would leak")

    def subject_of(self, record: str) -> str:
        return str(subject_of(int(record)))

    def selected_records(self) -> list[str]:
        return [r for r in self.record_names() if not (self.exclude_paced and int(r) in PACED)]

    def record_labels(self, names: list[str]) -> list[int]:
        return [int(n) for n in names]

    def setup_items(self, arrays: dict[str, np.ndarray], info: dict) -> None:
        super().setup_items(arrays, info)
        self.records = self.records.astype(np.int64)  # record numbers, as the DS1/DS2 lists

    def split_indices(self) -> dict[str, np.ndarray]:
        if self.split == "records":  # fixed lists, e.g. a paper's own record split
            sides = {"train": self.train_records, "val": self.val_records,
                     "test": self.test_records}
            return {name: np.flatnonzero(np.isin(self.records, members))
                    for name, members in sides.items()}
        if self.split != "inter_patient":
            return super().split_indices()
        val = set(self.val_records)
        if not val <= set(DS1):
            raise ValueError(f"data.val_records={sorted(val)} must be DS1 records: {DS1}")
        sides = {"train": [r for r in DS1 if r not in val], "val": sorted(val), "test": list(DS2)}
        return {name: np.flatnonzero(np.isin(self.records, members))
                for name, members in sides.items()}

    def describe_preprocessing(self) -> dict:
        return {**super().describe_preprocessing(), "exclude_paced": self.exclude_paced}
