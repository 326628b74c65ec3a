"""MIT-BIH Arrhythmia + Supraventricular Arrhythmia Databases as one datamodule (``mitdb_svdb``).

The data of the spectrogram-CNN study (``models/spectrogram_cnn.py``): MIT-BIH's 48 records of
47 subjects at 360 Hz and SVDB's 78 records of 78 subjects at 128 Hz, read by their own
datamodules (``mitdb.py``, ``svdb.py``) with the same preprocessing and put side by side:

* one rate: MIT-BIH is resampled to ``fs`` (128 Hz by default, SVDB's own rate) with wfdb's
  resampling, beat annotations moved with it (``beats.py``);
* one lead per database, chosen by name: ``mitdb_lead`` (MLII) and ``svdb_lead`` (ECG1);
* one namespace: records and subjects are prefixed by their database (``mitdb/201``,
  ``svdb/800``), so two databases' record names never collide and MIT-BIH's 201 and 202 stay
  one subject (``mitdb/201``);
* subject-disjoint splits over the 125 subjects of both: ``record`` (random whole subjects,
  seeded; default) or ``kfold``; ``intra_patient`` and ``time`` as in ``beats.py``.

Data root: ``data.root`` (a folder holding ``mitdb/`` and ``svdb/``), else ``$ECG_DATA_DIR``,
else ``paths.data_dir``; ``mitdb_root`` / ``svdb_root`` point at one database elsewhere.
``prepare_data`` downloads a missing database.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ecg_lightning.data.beats import READ_OPTIONS, BeatDataModule
from ecg_lightning.data.mitdb import MITBIHDataModule
from ecg_lightning.data.svdb import SVDBDataModule


class MITDBSVDBDataModule(BeatDataModule):
    """MIT-BIH and SVDB beat (or sliding) windows at one rate, subjects prefixed by database."""

    slug = "mitdb_svdb"
    splits_offered = ("record", "kfold", "intra_patient", "time")

    def __init__(self, mitdb_lead: str = "MLII", svdb_lead: str = "ECG1",
                 mitdb_root: str | None = None, svdb_root: str | None = None,
                 exclude_paced: bool = True, fs: float | None = 128.0, split: str = "record",
                 **beat) -> None:
        if fs is None:
            raise ValueError("data.fs=null would keep each database's rate (mitdb 360 Hz, svdb "
                             "128 Hz); mitdb_svdb needs one: set data.fs, e.g. 128")
        super().__init__(fs=fs, split=split, **beat)
        self.leads = {"mitdb": [mitdb_lead], "svdb": [svdb_lead]}  # one lead per database
        read = {option: getattr(self, option) for option in READ_OPTIONS}  # both read alike
        shared = {"data_dir": self.data_dir, "cache_dir": self.cache_dir,
                  "download": self.download}
        self.parts: dict[str, BeatDataModule] = {
            "mitdb": MITBIHDataModule(root=mitdb_root or str(self.root / "mitdb"), lead=mitdb_lead,
                                      exclude_paced=exclude_paced, **read, **shared),
            "svdb": SVDBDataModule(root=svdb_root or str(self.root / "svdb"), lead=svdb_lead,
                                   **read, **shared),
        }

    @property
    def root(self) -> Path:
        """The folder that holds both databases (``mitdb/``, ``svdb/``)."""
        if self._root is not None:
            return Path(self._root)
        return Path(os.environ.get("ECG_DATA_DIR") or self.data_dir)

    def has_raw_data(self) -> bool:
        return all(part.has_raw_data() for part in self.parts.values())

    def ensure_raw_data(self) -> None:
        for part in self.parts.values():  # each downloads itself into its own folder
            part.ensure_raw_data()

    # ------------------------------------------------------------------ records and subjects
    @staticmethod
    def split_name(record: str) -> tuple[str, str]:
        database, name = str(record).split("/", 1)
        return database, name

    def record_names(self) -> list[str]:
        return [f"{db}/{name}" for db, part in self.parts.items() for name in part.record_names()]

    def selected_records(self) -> list[str]:
        return [f"{db}/{name}" for db, part in self.parts.items()
                for name in part.selected_records()]

    def subject_of(self, record: str) -> str:
        database, name = self.split_name(record)
        return f"{database}/{self.parts[database].subject_of(name)}"

    def record_path(self, record: str) -> Path:
        database, name = self.split_name(record)
        return self.parts[database].record_path(name)

    # ------------------------------------------------------------------ cache
    def preprocessing_config(self) -> dict:
        return {"parts": {db: part.preprocessing_config() for db, part in self.parts.items()},
                "version": 1}

    def build_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays, info = {}, {"leads": {}, "missing_lead": {}, "padded_at_edges": {}}
        rates = {}
        for db, part in self.parts.items():
            part_arrays, part_info = part.build_arrays()
            for key in [k for k in part_arrays if k.endswith("records")]:
                part_arrays[key] = np.char.add(f"{db}/", part_arrays[key].astype(str))
            for key, values in part_arrays.items():
                arrays.setdefault(key, []).append(values)
            for key in ("leads", "padded_at_edges", "flat_windows", "windows_without_beat",
                        "annotations_past_end", "missing_lead"):
                if key in part_info:
                    info.setdefault(key, {}).update(
                        {f"{db}/{name}": value for name, value in part_info[key].items()})
            rates[db] = part_info["fs"]
        if len(set(rates.values())) != 1:  # the windows could not share one input shape
            raise ValueError(f"mitdb_svdb: the databases were read at different rates {rates}")
        info["fs"] = next(iter(rates.values()))
        return {key: np.concatenate(parts) for key, parts in arrays.items()}, info

    def describe_preprocessing(self) -> dict:
        subjects = {db: len({g for g in np.unique(self.groups) if g.startswith(f"{db}/")})
                    for db in self.parts}
        return {**super().describe_preprocessing(),
                "roots": {db: str(part.root) for db, part in self.parts.items()},
                "subjects_per_database": subjects}
