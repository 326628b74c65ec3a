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
* ``record``: random whole subjects to train/val/test, seeded.
* ``kfold``: subject-disjoint k-fold (``fold`` of ``num_folds``; the next fold validates).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import wfdb
from neurodsp.filt.iir import apply_iir_filter, design_iir_filter
from wfdb.processing import resample_singlechan

from ecg_lightning.data.base import ECGDataModule
from ecg_lightning.data.labels import LABEL_SCHEMES, MITDB_SYMBOLS, encode_symbols, scheme_classes
from ecg_lightning.data.splits import group_kfold, group_split, stratified_split

DS1 = (101, 106, 108, 109, 112, 114, 115, 116, 118, 119, 122, 124, 201, 203, 205, 207, 208,
       209, 215, 220, 223, 230)
DS2 = (100, 103, 105, 111, 113, 117, 121, 123, 200, 202, 210, 212, 213, 214, 219, 221, 222,
       228, 231, 232, 233, 234)
PACED = (102, 104, 107, 217)
SAME_SUBJECT = {202: 201}  # record -> the record whose subject it shares
SPLITS = ("inter_patient", "intra_patient", "record", "kfold")
NORMALIZATIONS = ("zscore", "minmax", "none")
SPLIT_PARADIGM = {"inter_patient": "inter_patient", "intra_patient": "intra_patient",
                  "record": "subject_disjoint_random", "kfold": "subject_disjoint_kfold"}


def subject_of(record: int) -> int:
    return SAME_SUBJECT.get(record, record)


def normalize_windows(windows: np.ndarray, method: str) -> np.ndarray:
    """Per-window normalisation (each beat window on its own scale)."""
    if method == "zscore":
        std = windows.std(axis=-1, keepdims=True)
        return (windows - windows.mean(axis=-1, keepdims=True)) / np.maximum(std, 1e-6)
    if method == "minmax":
        low, high = windows.min(axis=-1, keepdims=True), windows.max(axis=-1, keepdims=True)
        return (windows - low) / np.maximum(high - low, 1e-6)
    return windows


def read_beat_windows(path: Path, lead: str, fs: float | None, bandpass, pre_seconds: float,
                      post_seconds: float, normalize: str) -> dict | None:
    """Windows around every annotation of one record; ``None`` if it lacks ``lead``.

    Annotations too close to either end for a full window are dropped and counted.
    """
    try:
        record = wfdb.rdrecord(str(path), channel_names=[lead])
    except Exception as error:  # wfdb reports truncation as a numpy broadcast error
        size = path.with_suffix(".dat").stat().st_size if path.with_suffix(".dat").exists() else 0
        raise ValueError(f"record {path}: cannot read its signal ({error}); the header promises "
                         f"{wfdb.rdheader(str(path)).sig_len} samples, the data file has {size} "
                         "bytes - truncated or corrupt?") from error
    if record.sig_name is None:  # wfdb returns no signal when the record lacks the lead
        return None
    try:
        annotation = wfdb.rdann(str(path), "atr")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"record {path}: annotation file {path}.atr is missing") from error

    signal = record.p_signal[:, 0]
    if not np.isfinite(signal).all():
        raise ValueError(f"record {path}: lead {lead} holds NaN or infinite samples")
    rate = record.fs
    samples = annotation.sample
    if fs is not None and fs != rate:
        signal, samples = resample_singlechan(signal, annotation, rate, fs)
        samples, rate = samples.sample, fs
    if bandpass is not None:  # zero-phase Butterworth, so beats do not shift in time
        signal = apply_iir_filter(signal, design_iir_filter(rate, "bandpass", tuple(bandpass), 2))

    pre, post = round(pre_seconds * rate), round(post_seconds * rate)
    symbols = np.asarray(annotation.symbol)
    inside = (samples - pre >= 0) & (samples + post <= len(signal))
    starts = samples[inside] - pre
    windows = np.lib.stride_tricks.sliding_window_view(signal, pre + post)[starts]
    return {"windows": normalize_windows(windows.astype(np.float32), normalize),
            "symbols": symbols[inside], "samples": samples[inside].astype(np.int64),
            "dropped_at_edges": int((~inside).sum()), "fs": float(rate)}


class MITBIHDataModule(ECGDataModule):
    """Beat windows of the MIT-BIH Arrhythmia Database with AAMI, binary or symbol labels."""

    slug = "mitdb"
    physionet_version = "1.0.0"

    def __init__(self, lead: str = "MLII", fs: float | None = None,
                 bandpass: tuple[float, float] | None = (0.5, 40.0), pre_seconds: float = 0.25,
                 post_seconds: float = 0.45, normalize: str = "zscore",
                 label_scheme: str = "aami", exclude_paced: bool = True,
                 split: str = "inter_patient", val_records: tuple[int, ...] = (106, 118, 223),
                 val_fraction: float = 0.1, test_fraction: float = 0.2, fold: int = 0,
                 num_folds: int = 5, **base) -> None:
        super().__init__(split=split, **base)
        if label_scheme not in LABEL_SCHEMES:
            raise ValueError(f"data.label_scheme={label_scheme!r} is unknown; valid: {', '.join(LABEL_SCHEMES)}")
        if split not in SPLITS:
            raise ValueError(f"data.split={split!r} is unknown for mitdb; valid: {', '.join(SPLITS)}")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"data.normalize={normalize!r} is unknown; valid: {', '.join(NORMALIZATIONS)}")
        self.lead, self.fs = lead, fs
        self.bandpass = None if bandpass is None else [float(f) for f in bandpass]
        self.pre_seconds, self.post_seconds = pre_seconds, post_seconds
        self.normalize = normalize
        self.label_scheme = label_scheme
        self.exclude_paced = exclude_paced
        self.val_records = tuple(int(r) for r in val_records)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.fold, self.num_folds = fold, num_folds

    @property
    def split_paradigm(self) -> str:
        return SPLIT_PARADIGM[self.split]

    # ------------------------------------------------------------------ cache
    def preprocessing_config(self) -> dict:
        # The record list is part of the key: a folder holding other records (data.root) must
        # not read the arrays cached for this one.
        return {"lead": self.lead, "fs": self.fs, "bandpass": self.bandpass,
                "pre_seconds": self.pre_seconds, "post_seconds": self.post_seconds,
                "normalize": self.normalize, "records": self.record_names(), "version": 1}

    def record_names(self) -> list[str]:
        listing = self.root / "RECORDS"
        if not listing.exists():
            raise FileNotFoundError(f"{listing} is missing: {self.root} is not a mitdb folder")
        names = listing.read_text().split()
        if not names:
            raise ValueError(f"{listing} lists no record")
        return names

    def build_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        names = self.record_names()
        read = partial(read_beat_windows, lead=self.lead, fs=self.fs, bandpass=self.bandpass,
                       pre_seconds=self.pre_seconds, post_seconds=self.post_seconds,
                       normalize=self.normalize)
        # Records are independent: one process per core roughly halves a cold build.
        with ProcessPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1)) as pool:
            per_record = dict(zip(names, pool.map(read, [self.root / n for n in names])))
        kept = {name: r for name, r in per_record.items() if r is not None}
        if not kept:
            raise ValueError(f"no mitdb record in {self.root} has lead {self.lead!r} "
                             f"(records: {' '.join(names)}); choose another data.lead")
        arrays = {
            "windows": np.concatenate([r["windows"] for r in kept.values()]),
            "symbols": np.concatenate([r["symbols"] for r in kept.values()]).astype("<U1"),
            "records": np.concatenate([np.full(len(r["symbols"]), int(n), dtype=np.int32)
                                       for n, r in kept.items()]),
            "samples": np.concatenate([r["samples"] for r in kept.values()]),
        }
        info = {"fs": next(iter(kept.values()))["fs"],
                "missing_lead": sorted(int(n) for n, r in per_record.items() if r is None),
                "dropped_at_edges": {n: r["dropped_at_edges"] for n, r in kept.items()}}
        return arrays, info

    # ------------------------------------------------------------------ items and splits
    def selected_records(self) -> list[int]:
        records = [int(n) for n in self.record_names()]
        return [r for r in records if not (self.exclude_paced and r in PACED)]

    def setup_items(self, arrays: dict[str, np.ndarray], info: dict) -> None:
        self.info = info
        wanted = self.selected_records()
        missing = sorted(set(wanted) & set(info["missing_lead"]))
        if missing:
            raise ValueError(f"mitdb records {missing} have no lead {self.lead!r}; choose another "
                             "data.lead or leave them out (data.exclude_paced=true drops 102 and 104)")
        self.class_names = scheme_classes(self.label_scheme, MITDB_SYMBOLS)
        labels = encode_symbols(arrays["symbols"], self.label_scheme, self.class_names)
        keep = np.flatnonzero((labels >= 0) & np.isin(arrays["records"], wanted))
        self.item_index = keep  # position of each item in the cached arrays
        self.inputs = arrays["windows"][keep][:, None, :]  # [N, 1 lead, T]
        self.targets = labels[keep]
        self.records = arrays["records"][keep]
        self.samples = arrays["samples"][keep]
        self.groups = np.array([subject_of(r) for r in self.records])

    def split_indices(self) -> dict[str, np.ndarray]:
        if self.split == "inter_patient":
            val = set(self.val_records)
            sides = {"train": [r for r in DS1 if r not in val], "val": sorted(val & set(DS1)),
                     "test": list(DS2)}
            if not val <= set(DS1):
                raise ValueError(f"data.val_records={sorted(val)} must be DS1 records: {DS1}")
            return {name: np.flatnonzero(np.isin(self.records, members))
                    for name, members in sides.items()}
        if self.split == "intra_patient":
            return stratified_split(self.targets, self.val_fraction, self.test_fraction, self.seed)
        if self.split == "record":
            return group_split(self.groups, self.val_fraction, self.test_fraction, self.seed)
        return group_kfold(self.groups, self.fold, self.num_folds, self.seed)

    def describe_preprocessing(self) -> dict:
        return {"split_paradigm": self.split_paradigm, "label_scheme": self.label_scheme,
                "sampling_rate_hz": self.info["fs"], "lead": [self.lead],
                "window_seconds": {"pre": self.pre_seconds, "post": self.post_seconds},
                "window_samples": int(self._raw_inputs.shape[2]), "bandpass_hz": self.bandpass,
                "normalize": self.normalize, "exclude_paced": self.exclude_paced,
                "records_per_split": {name: sorted(map(int, np.unique(self.records[idx])))
                                      for name, idx in self.splits.items()},
                "annotations_dropped_at_record_edges": sum(self.info["dropped_at_edges"].values())}
