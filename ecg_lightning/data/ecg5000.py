"""ECG5000 (UCR archive): 5,000 single heartbeats of one patient, 140 samples each, 5 classes.

The beats come from the 20-hour record chf07 of the BIDMC Congestive Heart Failure Database
(PhysioNet ``chfdb``): each beat extracted and interpolated to 140 samples (Chen et al., "A
general framework for never-ending learning from time series streams", DMKD 2015; the UCR
archive's description), then 5,000 drawn at random; every row is z-normalised as shipped. The UCR documentation names the classes 1 Normal, 2 R-on-T PVC, 3 PVC,
4 SP/EB (supraventricular premature or ectopic beat), 5 Unclassified beat; ``class_names``
spells SP/EB "SP or EB" because a ``/`` would split the metric names (``test/f1/<class>``).
Official split: 500 beats in ``ECG5000_TRAIN``, 4,500 in ``ECG5000_TEST``.

Files: ``ECG5000_TRAIN`` and, when there, ``ECG5000_TEST`` under the data root, in any UCR
format (``.txt``, ``.tsv``, ``.ts``, ``.arff``; ``ucr.read_ucr``). ``format=auto`` takes, per
file, the first of txt, tsv, ts, arff that exists. A missing folder is downloaded from ``url``
(the archive's zip; ``sha256`` pins it).

Splits (``split``; the card and the MLflow tag ``split`` say which one ran):

* ``official`` (``split_paradigm=ucr_official``): TEST tests; a stratified ``val_fraction``
  of TRAIN (seeded) validates, the rest trains.
* ``stratified`` (``split_paradigm=stratified_random_of_train``): only TRAIN is used, split at
  random, stratified by class and seeded, into ``1 - val_fraction - test_fraction`` /
  ``val_fraction`` / ``test_fraction``. This is what runs on a machine with only the TRAIN file
  (500 beats: 350 / 50 / 100 at the defaults), and every figure from it says so.
* ``auto``: ``official`` when a TEST file exists, else ``stratified``.

Labels (``label_scheme``):

* ``classes``: the five UCR classes (5-class classification).
* ``anomaly``: ``normal`` (target 0) against ``abnormal`` (target 1: every other class), for
  anomaly detection by reconstruction: train and val keep only the normal beats of their split;
  test keeps its normal and abnormal beats and, with ``abnormal_to_test=true`` (default), also
  receives the abnormal beats of the train and val splits, which anomaly training never sees
  (the seed tests on every anomaly). ``normal_class`` is the UCR label of the normal class.
  Stratification uses the five classes in both schemes, so the same rows land in the same split.

Subjects: UCR gives no patient ids (and all 5,000 beats come from one patient anyway), so every
row is its own subject (``groups``): splits here are beat-level, not patient-disjoint.

Missing samples: ``on_nan=error`` (default) stops at the first row with a NaN, naming file and
line; ``on_nan=skip`` drops such rows and counts them on the dataset card
(``rows_skipped_for_nan``). A malformed row is always an error naming file and line.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from ecg_lightning.data.base import SIGNAL, ECGDataModule
from ecg_lightning.data.download import DataUnavailableError
from ecg_lightning.data.splits import pooled_strata, stratified_split
from ecg_lightning.data.ucr import FORMATS, ON_NAN, UCRFormatError, download_ucr, read_ucr

SPLITS = ("auto", "official", "stratified")
SPLIT_PARADIGM = {"official": "ucr_official", "stratified": "stratified_random_of_train"}
LABEL_SCHEMES = ("classes", "anomaly")
UCR_URL = "https://www.timeseriesclassification.com/aeon-toolkit/ECG5000.zip"


class ECG5000DataModule(ECGDataModule):
    """ECG5000 beats ``[N, 1, 140]`` with UCR class labels or normal-vs-abnormal targets."""

    slug = "ecg5000"
    ucr_name = "ECG5000"  # file names: ECG5000_TRAIN.<format>, ECG5000_TEST.<format>
    label_names = {"1": "Normal", "2": "R-on-T PVC", "3": "PVC", "4": "SP or EB",
                   "5": "Unclassified beat"}
    signal_array = "series"

    def __init__(self, label_scheme: str = "classes", split: str = "auto",
                 val_fraction: float = 0.1, test_fraction: float = 0.2, normal_class: str = "1",
                 abnormal_to_test: bool = True, format: str = "auto", on_nan: str = "error",
                 url: str = UCR_URL, sha256: str | None = None, **base) -> None:
        if label_scheme not in LABEL_SCHEMES:
            raise ValueError(f"data.label_scheme={label_scheme!r} is unknown for {self.slug}; "
                             f"valid: {', '.join(LABEL_SCHEMES)}")
        if split not in SPLITS:
            raise ValueError(f"data.split={split!r} is unknown for {self.slug}; valid: {', '.join(SPLITS)}")
        if format not in ("auto", *FORMATS):
            raise ValueError(f"data.format={format!r} is unknown; valid: auto, {', '.join(FORMATS)}")
        if on_nan not in ON_NAN:
            raise ValueError(f"data.on_nan={on_nan!r} is unknown; valid: {', '.join(ON_NAN)}")
        if str(normal_class) not in self.label_names:
            raise ValueError(f"data.normal_class={normal_class!r} is not a {self.ucr_name} class; "
                             f"valid: {', '.join(self.label_names)}")
        if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} "
                             "must be in (0, 1) and add up to less than 1")
        super().__init__(split=split, **base)
        self.label_scheme = label_scheme
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.normal_class = str(normal_class)
        self.abnormal_to_test = abnormal_to_test
        self.format = format
        self.on_nan = on_nan
        self.url = url
        self.sha256 = sha256
        self.info: dict = {}

    # ------------------------------------------------------------------ files
    def find_file(self, part: str):
        """``<root>/ECG5000_<part>.<format>``: the first format found, or ``None``."""
        for fmt in FORMATS if self.format == "auto" else (self.format,):
            path = self.root / f"{self.ucr_name}_{part}.{fmt}"
            if path.is_file():
                return path
        return None

    def has_raw_data(self) -> bool:
        return self.find_file("TRAIN") is not None

    def prepare_data(self) -> None:
        """Download the archive when the TRAIN file is missing, then build the cache once."""
        if not self.has_raw_data():
            if self.root.is_dir() and any(self.root.iterdir()):  # a folder, but not this data
                raise DataUnavailableError(
                    f"{self.root} holds no {self.ucr_name}_TRAIN."
                    f"{'|'.join(FORMATS) if self.format == 'auto' else self.format} file; it has: "
                    f"{', '.join(sorted(p.name for p in self.root.iterdir())[:10])}")
            if not self.download:
                raise DataUnavailableError(
                    f"{self.slug}: no data in {self.root} and download is off "
                    f"(data.download=false). Set ECG_DATA_DIR to a folder that holds "
                    f"{self.slug}/, or pass data.root=/path/to/{self.slug}")
            download_ucr(self.url, self.root, self.ucr_name, self.sha256)
        self.cached_arrays()

    @property
    def resolved_split(self) -> str:
        if self.split != "auto":
            return self.split
        return "official" if self.find_file("TEST") is not None else "stratified"

    @property
    def split_paradigm(self) -> str:
        return SPLIT_PARADIGM[self.resolved_split]

    # ------------------------------------------------------------------ cache
    def preprocessing_config(self) -> dict:
        # The file names and sizes: another file under the same root never reads a stale cache.
        files = {part: self.find_file(part) for part in ("TRAIN", "TEST")}
        return {"files": {part: [path.name, path.stat().st_size] for part, path in files.items()
                          if path is not None},
                "on_nan": self.on_nan}

    def build_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """Every row of TRAIN (and TEST): series, UCR label codes, source file and line."""
        codes = list(self.label_names)
        parts, info = [], {"files": {}, "skipped_for_nan": {}}
        for source, part in enumerate(("TRAIN", "TEST")):
            path = self.find_file(part)
            if path is None:
                continue
            series = read_ucr(path, on_nan=self.on_nan)
            unknown = [(line, label) for line, label in zip(series.lines, series.labels)
                       if label not in codes]
            if unknown:
                line, label = unknown[0]
                raise UCRFormatError(f"{path} line {line}: label {label!r} is not a "
                                     f"{self.ucr_name} class ({', '.join(codes)})")
            labels = np.array([codes.index(label) for label in series.labels], dtype=np.int64)
            parts.append((series.values, labels, np.full(len(labels), source, dtype=np.int64),
                          np.asarray(series.lines, dtype=np.int64)))
            info["files"][part] = {"name": path.name, "rows": len(labels)}
            info["skipped_for_nan"][part] = series.skipped
        if len(parts) == 2 and parts[0][0].shape[1] != parts[1][0].shape[1]:
            raise UCRFormatError(f"{self.root}: TRAIN rows have {parts[0][0].shape[1]} samples, "
                                 f"TEST rows {parts[1][0].shape[1]}")
        series, labels, source, lines = (np.concatenate(a) for a in zip(*parts))
        return {"series": series, "labels": labels, "source": source, "lines": lines}, info

    # ------------------------------------------------------------------ items and splits
    def setup_items(self, arrays: dict[str, np.ndarray], info: dict) -> None:
        self.info = info
        self.labels = np.asarray(arrays["labels"])  # UCR class codes 0..4, whatever the scheme
        self.source = np.asarray(arrays["source"])  # 0 = TRAIN file, 1 = TEST file
        self.raw_inputs = {SIGNAL: np.asarray(arrays["series"])[:, None, :]}  # [N, 1, 140]
        self.item_index = np.arange(len(self.labels))  # every cached row is an item
        names = ("TRAIN", "TEST")
        self.groups = np.array([f"{names[s]}:{line}" for s, line in zip(self.source, arrays["lines"])])
        normal = list(self.label_names).index(self.normal_class)
        if self.label_scheme == "anomaly":
            self.targets = (self.labels != normal).astype(np.int64)
            self.class_names = ["normal", "abnormal"]
        else:
            self.targets = self.labels.copy()
            self.class_names = list(self.label_names.values())

    def split_indices(self) -> dict[str, np.ndarray]:
        if self.resolved_split == "official":
            if not (self.source == 1).any():
                raise ValueError(f"data.split=official needs {self.ucr_name}_TEST in {self.root}; "
                                 "it has only TRAIN: use data.split=stratified (or auto)")
            train_file = np.flatnonzero(self.source == 0)
            train, val = train_test_split(train_file, test_size=self.val_fraction,
                                          random_state=self.seed,
                                          stratify=pooled_strata(self.labels[train_file], 2))
            splits = {"train": np.sort(train), "val": np.sort(val),
                      "test": np.flatnonzero(self.source == 1)}
        else:
            train_file = np.flatnonzero(self.source == 0)
            local = stratified_split(self.labels[train_file], self.val_fraction,
                                     self.test_fraction, self.seed)
            splits = {name: train_file[index] for name, index in local.items()}
        if self.label_scheme == "anomaly":  # train on normal beats only (see the module doc)
            unused = np.concatenate([splits[s][self.targets[splits[s]] == 1] for s in ("train", "val")])
            for name in ("train", "val"):
                splits[name] = splits[name][self.targets[splits[name]] == 0]
            if self.abnormal_to_test:
                splits["test"] = np.sort(np.concatenate([splits["test"], unused]))
        return splits

    def describe_preprocessing(self) -> dict:
        skipped = self.info.get("skipped_for_nan", {})
        return {"split_paradigm": self.split_paradigm, "label_scheme": self.label_scheme,
                "files": self.info.get("files", {}),
                "samples_per_beat": int(self.raw_inputs[SIGNAL].shape[2]),
                "normalisation": "z-normalised per beat by the UCR archive; none added",
                "subjects": "every row is its own subject (UCR gives no patient ids)",
                "rows_skipped_for_nan": {part: len(lines) for part, lines in skipped.items()},
                "lines_skipped_for_nan": skipped,
                **({"normal_class": self.label_names[self.normal_class],
                    "abnormal_to_test": self.abnormal_to_test}
                   if self.label_scheme == "anomaly" else {})}


