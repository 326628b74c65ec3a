"""PTB-XL (PhysioNet ``ptb-xl``): 10 s 12-lead ECGs, diagnostic superclasses as a multilabel target.

Wagner et al. 2020, "PTB-XL, a large publicly available electrocardiography dataset",
Scientific Data 7:154: 21,799 records (version 1.0.3; 21,837 in 1.0.1) of 18,869 patients,
10 s each, 12 leads at 500 Hz (``records500/``) and downsampled to 100 Hz (``records100/``),
described by ``ptbxl_database.csv`` (one row per ``ecg_id``: patient, age, sex, height, weight,
SCP-ECG statements ``scp_codes``, ``strat_fold``, the two file names) and
``scp_statements.csv`` (what every statement means).

Labels (``label_scheme``). A record's diagnostic superclasses are its ``scp_codes`` keys whose
``scp_statements.csv`` row has ``diagnostic == 1``, mapped through ``diagnostic_class``;
every key counts whatever its likelihood value, as in the benchmark code of Strodthoff et al.
2021 and PTB-XL's own example. ``superdiagnostic5`` is the multilabel target NORM, MI, STTC, CD,
HYP; ``superdiagnostic4`` drops NORM (MI, STTC, CD, HYP: a normal ECG is all zeros, the
encoding of the DL_ECG_Classification seed). Records without any superclass (about 2 %: only
form or rhythm statements) are dropped and counted (log, dataset card).

Splits (``split``), both patient-disjoint: PTB-XL puts all records of a patient into one of
ten ``strat_fold``s, which this module checks. ``recommended``: folds 1-8 train, 9 validates,
10 tests (Wagner et al.'s recommendation; folds 9 and 10 hold only human-validated reports).
``kfold``: ``fold`` k in 0..9 tests on strat_fold k+1 and validates on the next fold.

Preprocessing, cached by the base (key: rate, leads, band-pass, the record list): the records
of ``fs`` (100 reads ``filename_lr``, 500 ``filename_hr``) read with wfdb, ``leads`` selected by
name (header spelling I, II, III, AVR, AVL, AVF, V1-V6; ``aVR`` etc. are accepted), an
optional zero-phase Butterworth band-pass (``bandpass=[1, 45]``, neurodsp, as the other
databases). Then, fitted on the training split only and stored in the datamodule's
``state_dict()`` (so every checkpoint is tested on its own statistics, also by ``evaluate``):

* ``standardize``: every lead minus its training mean, divided by its training standard
  deviation (over all training records and samples);
* ``tabular`` (``[age, sex, height, weight]`` or a subset; ``null`` for none): missing values
  filled with the training median, then standardised with the training mean and standard
  deviation; ages of 300 (PTB-XL's code for patients older than 89) count as 90. The values
  travel as the named input ``tabular`` ``[N, columns]`` beside ``signal``; the shared fusion
  (``models/fusion.py``) feeds them to the net's head.

Both are fitted transforms (``transforms.py``: scikit-learn's StandardScaler, and SimpleImputer
then StandardScaler), the one mechanism every fitted statistic of the project goes through.

Download: a missing folder is fetched from PhysioNet with its SHA256 checks
(``download_part``: ``records100`` = the metadata and the 100 Hz records, about a tenth of the
whole; ``records500``; ``all``; ``null`` = the part of ``fs``). A folder that lacks the records
of ``fs`` (the 100 Hz-only copy with ``fs=500``) is an error naming the file and the fixes.

Bad input: a record listed in the CSV but missing on disk is an error naming its file, or,
with ``skip_missing_records=true``, skipped and counted; NaN samples, a missing lead or another
sampling rate are errors naming the file.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb
from neurodsp.filt.iir import apply_iir_filter, design_iir_filter
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ecg_lightning.data.base import SIGNAL, ECGDataModule
from ecg_lightning.data.transforms import FittedTransform, steps_of
from ecg_lightning.data.download import DataUnavailableError, download_physionet

log = logging.getLogger(__name__)

LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
LABEL_SCHEMES = {"superdiagnostic5": SUPERCLASSES, "superdiagnostic4": SUPERCLASSES[1:]}
TABULAR = ("age", "sex", "height", "weight")
SPLIT_PARADIGM = {"recommended": "subject_disjoint_fixed", "kfold": "subject_disjoint_kfold"}
NUM_STRAT_FOLDS = 10
FILENAME_COLUMN = {100: "filename_lr", 500: "filename_hr"}
DOWNLOAD_PARTS = ("records100", "records500", "all")
AGE_OVER_89 = 300  # PTB-XL's anonymised age of patients older than 89
DATABASE_CSV, STATEMENTS_CSV = "ptbxl_database.csv", "scp_statements.csv"
BUTTERWORTH_ORDER = 2  # the seed's butter(2, [1, 45]) and the beat databases' band-pass


def lead_name(name: str) -> str:
    """A lead as PTB-XL headers spell it (``aVR`` -> ``AVR``); unknown names are an error."""
    spelled = str(name).upper()
    if spelled not in LEADS:
        raise ValueError(f"data.leads: {name!r} is not a PTB-XL lead; valid: {', '.join(LEADS)}")
    return spelled


def read_record(path: Path, leads: list[str], fs: int, sos: np.ndarray | None) -> np.ndarray:
    """One record's ``leads`` as float32 ``[leads, samples]``, band-passed with the second-order
    sections ``sos`` (zero-phase) when given; errors name the file."""
    try:
        record = wfdb.rdrecord(str(path), channel_names=leads, return_res=32)
    except Exception as error:  # wfdb reports a truncated file as a numpy shape error
        raise ValueError(f"PTB-XL record {path}: cannot read it ({type(error).__name__}: "
                         f"{error}); truncated or corrupt?") from error
    if record.sig_name != leads:
        present = wfdb.rdheader(str(path)).sig_name
        raise ValueError(f"PTB-XL record {path} lacks leads "
                         f"{[lead for lead in leads if lead not in present]} (its leads: {present})")
    if record.fs != fs:
        raise ValueError(f"PTB-XL record {path} is sampled at {record.fs} Hz, data.fs={fs}")
    signal = record.p_signal.T
    bad = ~np.isfinite(signal)
    if bad.any():
        lead, sample = np.argwhere(bad)[0]
        raise ValueError(f"PTB-XL record {path}: lead {leads[lead]} holds {int(bad.sum())} NaN or "
                         f"infinite samples (first at sample {sample}); fix or remove the record")
    if sos is not None:
        signal = apply_iir_filter(signal, sos)  # every lead at once, along time
    return signal.astype(np.float32)


class PTBXLDataModule(ECGDataModule):
    """PTB-XL records with multilabel diagnostic superclasses (see the module docstring)."""

    slug = "ptb-xl"
    physionet_version = "1.0.3"
    task = "multilabel"

    def __init__(self, fs: int = 100, leads: list[str] | None = None,
                 bandpass: list[float] | None = None, standardize: bool = True,
                 tabular: list[str] | None = None, label_scheme: str = "superdiagnostic5",
                 split: str = "recommended", fold: int = 0, num_folds: int = NUM_STRAT_FOLDS,
                 skip_missing_records: bool = False, download_part: str | None = None,
                 **base) -> None:
        super().__init__(split=split, **base)
        for option, value, valid in (("fs", fs, tuple(FILENAME_COLUMN)),
                                     ("label_scheme", label_scheme, tuple(LABEL_SCHEMES)),
                                     ("split", split, tuple(SPLIT_PARADIGM)),
                                     ("download_part", download_part, (None, *DOWNLOAD_PARTS))):
            if value not in valid:
                raise ValueError(f"data.{option}={value!r} is unknown for ptb-xl; valid: "
                                 f"{', '.join(map(str, valid))}")
        if self.pca_components is not None or self.spectrogram is not None:
            raise ValueError("data.pca_components and data.spectrogram are not offered for ptb-xl: "
                             "its inputs are standardised multi-lead signals; set them to null")
        if num_folds != NUM_STRAT_FOLDS:
            raise ValueError(f"data.num_folds={num_folds}: PTB-XL's k-fold follows its "
                             f"{NUM_STRAT_FOLDS} strat_folds; use data.num_folds={NUM_STRAT_FOLDS}")
        if not 0 <= fold < NUM_STRAT_FOLDS:
            raise ValueError(f"data.fold={fold} is outside 0..{NUM_STRAT_FOLDS - 1} "
                             f"(fold k tests on strat_fold k+1)")
        if bandpass is not None:
            bandpass = [float(f) for f in bandpass]
            if len(bandpass) != 2 or not 0 < bandpass[0] < bandpass[1] < fs / 2:
                raise ValueError(f"data.bandpass={bandpass} must be [low, high] Hz with "
                                 f"0 < low < high < {fs / 2:g} (half of data.fs={fs}), or null")
        tabular = list(tabular or [])
        unknown = [c for c in tabular if c not in TABULAR]
        if unknown or len(set(tabular)) != len(tabular):
            raise ValueError(f"data.tabular={tabular}: choose distinct columns among "
                             f"{', '.join(TABULAR)}, or null")
        if download_part is not None and download_part != "all" and download_part != f"records{fs}":
            raise ValueError(f"data.download_part={download_part} lacks the records of "
                             f"data.fs={fs}; use records{fs}, all or null")
        self.fs = fs
        self.leads = list(LEADS) if leads is None else [lead_name(lead) for lead in leads]
        if not self.leads or len(set(self.leads)) != len(self.leads):
            raise ValueError(f"data.leads={leads}: list distinct leads, or null for all 12")
        self.bandpass = bandpass
        self.standardize = standardize
        self.tabular = tabular
        self.label_scheme = label_scheme
        self.fold, self.num_folds = fold, num_folds
        self.skip_missing_records = skip_missing_records
        self.download_part = download_part or f"records{fs}"
        self._listing: tuple[list[int], list[str], list[str]] | None = None  # see record_listing

    @property
    def split_paradigm(self) -> str:
        return SPLIT_PARADIGM[self.split]

    # ------------------------------------------------------------------ download
    def ensure_raw_data(self) -> None:
        """Download the part of PTB-XL that ``download_part`` names when the folder is missing."""
        if not self.has_raw_data() and self.download:
            part = self.download_part
            download_physionet(self.slug, self.physionet_version, self.root,
                               files=None if part == "all" else partial(_in_part, part=part))
        super().ensure_raw_data()  # the base's clear error when there is no folder and no download

    # ------------------------------------------------------------------ metadata
    def read_csv(self, name: str, **options) -> pd.DataFrame:
        path = self.root / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: {self.root} is not a PTB-XL folder "
                                    f"(it needs {DATABASE_CSV} and {STATEMENTS_CSV})")
        return pd.read_csv(path, **options)

    def metadata(self) -> pd.DataFrame:
        """``ptbxl_database.csv`` indexed by ``ecg_id``, with each record's set of superclasses."""
        table = self.read_csv(DATABASE_CSV, index_col="ecg_id")
        statements = self.read_csv(STATEMENTS_CSV, index_col=0)
        diagnostic = statements[statements["diagnostic"] == 1]["diagnostic_class"].to_dict()
        table["superclasses"] = [{diagnostic[code] for code in ast.literal_eval(codes)
                                  if code in diagnostic} for codes in table["scp_codes"]]
        return table

    def record_listing(self) -> tuple[list[int], list[str], list[str]]:
        """``ecg_id``s and record files of ``fs`` in ``ecg_id`` order, and the files missing on disk."""
        if self._listing is None:
            column = FILENAME_COLUMN[self.fs]
            rows = self.read_csv(DATABASE_CSV, usecols=["ecg_id", column]).sort_values("ecg_id")
            files = rows[column].astype(str).tolist()
            missing = [f for f in files if not (self.root / f"{f}.hea").is_file()
                       or not (self.root / f"{f}.dat").is_file()]
            self._listing = (rows["ecg_id"].astype(int).tolist(), files, missing)
        return self._listing

    # ------------------------------------------------------------------ cache
    def preprocessing_config(self) -> dict:
        _, files, missing = self.record_listing()
        # The record list (and, when skipping, the missing ones) is part of the key: another
        # CSV or a completed download never reads a stale cache.
        return {"fs": self.fs, "leads": self.leads, "bandpass": self.bandpass,
                "records": hashlib.sha256("\n".join(files).encode()).hexdigest()[:16],
                "missing": hashlib.sha256("\n".join(missing).encode()).hexdigest()[:16]
                if self.skip_missing_records else None, "version": 1}

    def check_missing(self, files: list[str], missing: list[str]) -> None:
        """A clear error for records listed in the CSV but absent, unless they are skipped."""
        if not missing:
            return
        column = FILENAME_COLUMN[self.fs]
        first = next(path for path in (self.root / f"{missing[0]}.{ext}" for ext in ("hea", "dat"))
                     if not path.is_file())
        if len(missing) == len(files):
            raise DataUnavailableError(
                f"ptb-xl: data.fs={self.fs} reads the {column} records, and none is in "
                f"{self.root} (first: {first}). This copy lacks the {self.fs} Hz records: use "
                f"data.fs={100 if self.fs == 500 else 500} if it has the others, or let "
                f"prepare_data download them into a new folder (data.root=/new/folder, "
                f"data.download_part=records{self.fs} or all)")
        if not self.skip_missing_records:
            raise FileNotFoundError(
                f"ptb-xl: {len(missing)} of the {len(files)} records listed in "
                f"{self.root / DATABASE_CSV} ({column}) are missing on disk, first {first}. "
                f"Restore them, or set data.skip_missing_records=true to leave "
                f"them out (they are counted on the dataset card)")
        log.warning("ptb-xl: skipping %d records listed in %s but missing on disk (first %s)",
                    len(missing), DATABASE_CSV, first)

    def build_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        ecg_ids, files, missing = self.record_listing()
        self.check_missing(files, missing)
        absent = set(missing)
        kept = [(ecg_id, f) for ecg_id, f in zip(ecg_ids, files) if f not in absent]
        sos = None if self.bandpass is None else design_iir_filter(
            self.fs, "bandpass", tuple(self.bandpass), BUTTERWORTH_ORDER)
        read = partial(read_record, leads=self.leads, fs=self.fs, sos=sos)
        paths = [self.root / f for _, f in kept]
        if len(paths) < 256:  # a process pool costs more than it saves on a few records
            signals = [read(p) for p in paths]
        else:
            with ProcessPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                signals = list(pool.map(read, paths, chunksize=64))
        lengths = {s.shape[1] for s in signals}
        if len(lengths) > 1:
            raise ValueError(f"ptb-xl records at {self.fs} Hz differ in length ({sorted(lengths)} "
                             "samples); PTB-XL records are 10 s each: check the files")
        arrays = {"signals": np.stack(signals), "ecg_id": np.array([e for e, _ in kept], np.int64)}
        info = {"fs": self.fs, "leads": self.leads,
                "skipped_missing": [e for e, f in zip(ecg_ids, files) if f in absent]}
        return arrays, info

    # ------------------------------------------------------------------ items and splits
    def setup_items(self, arrays: dict[str, np.ndarray], info: dict) -> None:
        self.info = info
        table = self.metadata()
        ecg_ids = np.asarray(arrays["ecg_id"])
        table = table.loc[ecg_ids]  # the cache key holds the CSV's record list: every id is there
        self.records_read = len(ecg_ids)
        self.class_names = list(LABEL_SCHEMES[self.label_scheme])
        # Both schemes drop the same records: those without any of the five superclasses.
        labelled = table["superclasses"].map(bool).to_numpy()
        self.dropped_without_superclass = ecg_ids[~labelled].tolist()
        if self.dropped_without_superclass:
            log.info("ptb-xl: %d of %d records have no diagnostic superclass and are dropped",
                     len(self.dropped_without_superclass), len(ecg_ids))
        table = table[labelled]
        self.item_index = np.flatnonzero(labelled)  # row of every item in the cached arrays
        self.raw_inputs = {SIGNAL: np.asarray(arrays["signals"][self.item_index])}  # [N, leads, T]
        self.targets = np.array([[name in classes for name in self.class_names]
                                 for classes in table["superclasses"]], dtype=np.int64)
        self.ecg_ids = table.index.to_numpy()
        self.groups = table["patient_id"].astype(np.int64).astype(str).to_numpy()
        self.strat_folds = table["strat_fold"].astype(np.int64).to_numpy()
        values = table[self.tabular].to_numpy(dtype=np.float64, copy=True)
        if "age" in self.tabular:
            age = values[:, self.tabular.index("age")]
            age[age == AGE_OVER_89] = 90.0
        self.tabular_values = values  # raw, NaN where missing; imputed by a fitted transform
        if self.tabular:
            self.raw_inputs["tabular"] = values.astype(np.float32)

    def split_indices(self) -> dict[str, np.ndarray]:
        spread = pd.Series(self.strat_folds).groupby(self.groups).nunique()
        if (spread > 1).any():
            patient = spread.index[spread > 1][0]
            raise ValueError(f"patient {patient} has records in several strat_folds of "
                             f"{self.root / DATABASE_CSV}: the folds would not be patient-disjoint")
        if self.split == "recommended":
            test_fold, val_fold = 10, 9
        else:  # fold k tests on strat_fold k + 1 and validates on the next one
            test_fold = self.fold + 1
            val_fold = test_fold % NUM_STRAT_FOLDS + 1
        sides = {"train": ~np.isin(self.strat_folds, (test_fold, val_fold)),
                 "val": self.strat_folds == val_fold, "test": self.strat_folds == test_fold}
        splits = {name: np.flatnonzero(mask) for name, mask in sides.items()}
        if self.tabular:  # the imputer would have no median to fill them with
            values = self.tabular_values[splits["train"]]
            empty = [c for c, v in zip(self.tabular, values.T) if np.isnan(v).all()]
            if empty:
                raise ValueError(f"data.tabular: the training split has no value of {empty}; "
                                 "leave those columns out")
        return splits

    # ------------------------------------------------------------------ fitted on the training split
    def fitted_transforms(self) -> list[FittedTransform]:
        transforms = []
        if self.standardize:  # per lead, over every training record and sample
            transforms.append(FittedTransform("lead_standardization", SIGNAL, StandardScaler(),
                                              layout="channels", option="data.standardize=true"))
        if self.tabular:
            transforms.append(FittedTransform(
                "tabular_imputation", "tabular",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                option=f"data.tabular={self.tabular}"))
        return transforms

    # ------------------------------------------------------------------ facts and card
    def data_facts(self) -> dict:
        return {**super().data_facts(), "sampling_rate_hz": float(self.fs), "leads": self.leads,
                "tabular": self.tabular}

    def describe_preprocessing(self) -> dict:
        fitted = {t.name: steps_of(t.estimator) for t in self.transforms if t.fitted}
        card = {"split_paradigm": self.split_paradigm, "label_scheme": self.label_scheme,
                "sampling_rate_hz": self.fs, "leads": self.leads,
                "samples_per_record": int(self.raw_inputs[SIGNAL].shape[2]), "bandpass_hz": self.bandpass,
                "records_read": self.records_read,
                "dropped_without_superclass": {
                    "count": len(self.dropped_without_superclass),
                    "ecg_ids": self.dropped_without_superclass[:50]},
                "skipped_missing_records": {"count": len(self.info["skipped_missing"]),
                                            "ecg_ids": self.info["skipped_missing"][:50]},
                "strat_folds_per_split": {name: sorted(set(self.strat_folds[idx].tolist()))
                                          for name, idx in self.splits.items()}}
        if "lead_standardization" in fitted:
            scaler, = fitted["lead_standardization"]
            card["standardize"] = {"fitted_on": "train",
                                   "lead_mean": np.round(scaler.mean_, 5).tolist(),
                                   "lead_std": np.round(scaler.scale_, 5).tolist()}
        if self.tabular:
            card["tabular"] = {"columns": self.tabular, "fitted_on": "train",
                               "as": "the named input 'tabular' beside the signal",
                               "missing_per_column": dict(zip(self.tabular, np.isnan(
                                   self.tabular_values).sum(axis=0).astype(int).tolist()))}
            if "tabular_imputation" in fitted:
                imputer, scaler = fitted["tabular_imputation"]
                card["tabular"].update(tabular_fill=np.round(imputer.statistics_, 3).tolist(),
                                       tabular_mean=np.round(scaler.mean_, 3).tolist(),
                                       tabular_std=np.round(scaler.scale_, 3).tolist())
        return card


def _in_part(name: str, part: str) -> bool:
    """Whether a file of the PhysioNet listing belongs to a download part (the other rate's
    records are left out; metadata and documentation always come)."""
    other = {"records100": "records500/", "records500": "records100/"}[part]
    return not name.startswith(other)
