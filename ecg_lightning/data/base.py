"""The shared datamodule base: data root, download, cache, splits, class counts, loaders.

A database subclass supplies four things:

* ``slug`` (its PhysioNet slug, also its folder name) and ``physionet_version``;
* ``preprocessing_config()``: everything that changes the cached arrays (hashed into the key);
* ``build_arrays()``: read the raw files and return ``(arrays, info)`` to cache;
* ``setup_items(arrays, info)``: set ``inputs`` [N, C, T], ``targets``, ``groups`` (subject of
  every item) and ``class_names``; and ``split_indices()``: the train/val/test index arrays.

Shared preprocessing after the splits: ``pca_components=K`` fits a PCA on the training split's
flattened inputs only and projects every item onto it, so inputs become ``[N, 1, K]``: one
channel whose "time" axis is the sequence of principal-component scores. The fitted PCA is
the datamodule's ``state_dict()`` (plain lists of floats), which Lightning stores in every
checkpoint and restores with ``load_state_dict()``, so a checkpoint is tested on the same
projection it was trained on.

Data-root contract: ``data.root``, else ``$ECG_DATA_DIR/<slug>``, else ``<data_dir>/<slug>``.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from ecg_lightning.data.cache import CorruptCacheError, config_hash, read_cache, write_cache
from ecg_lightning.data.download import DataUnavailableError, download_physionet

log = logging.getLogger(__name__)

STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                "predict": ("test",)}


class ECGDataModule(L.LightningDataModule):
    """Base class of every database's LightningDataModule (see the module docstring)."""

    slug: ClassVar[str]
    physionet_version: ClassVar[str | None] = None
    task: ClassVar[str] = "multiclass"  # or "multilabel"

    def __init__(self, root: str | None = None, data_dir: str = "data",
                 cache_dir: str = "outputs/cache", split: str = "record", seed: int = 0,
                 batch_size: int = 256, num_workers: int = 0, download: bool = True,
                 pca_components: int | None = None) -> None:
        super().__init__()
        if pca_components is not None and pca_components < 1:
            raise ValueError(f"data.pca_components={pca_components} must be a positive integer or null")
        self._root = root
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.split = split
        self.seed = seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.download = download
        self.pca_components = pca_components
        self._pca: dict | None = None  # fitted (or loaded) PCA, see state_dict()
        # Filled by setup().
        self.inputs: np.ndarray | None = None
        self.targets: np.ndarray | None = None
        self.groups: np.ndarray | None = None
        self.class_names: list[str] = []
        self.splits: dict[str, np.ndarray] | None = None
        self._raw_inputs: np.ndarray | None = None  # inputs before PCA
        self._datasets: dict[str, TensorDataset] = {}

    # ------------------------------------------------------------------ subclass hooks
    def preprocessing_config(self) -> dict:
        raise NotImplementedError

    def build_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        raise NotImplementedError

    def setup_items(self, arrays: dict[str, np.ndarray], info: dict) -> None:
        raise NotImplementedError

    def split_indices(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def describe_preprocessing(self) -> dict:
        """Facts for the dataset card beyond the generic ones (rate, window, leads...)."""
        return {}

    # ------------------------------------------------------------------ data root
    @property
    def root(self) -> Path:
        if self._root is not None:
            return Path(self._root)
        if os.environ.get("ECG_DATA_DIR"):
            return Path(os.environ["ECG_DATA_DIR"]) / self.slug
        return Path(self.data_dir) / self.slug

    def has_raw_data(self) -> bool:
        return self.root.is_dir() and any(self.root.iterdir())

    def prepare_data(self) -> None:
        """Download the database when its folder is missing, then build the cache once."""
        if not self.has_raw_data():
            if self.physionet_version is None or not self.download:
                raise DataUnavailableError(
                    f"{self.slug}: no data in {self.root} and download is "
                    f"{'not available for this database' if self.physionet_version is None else 'off (data.download=false)'}. "
                    f"Set ECG_DATA_DIR to a folder that holds {self.slug}/, or pass "
                    f"data.root=/path/to/{self.slug}")
            download_physionet(self.slug, self.physionet_version, self.root)
        self.cached_arrays()

    # ------------------------------------------------------------------ cache
    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) / self.slug / config_hash(self.preprocessing_config())

    def cached_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays for the current preprocessing config: read from the cache, else built."""
        path = self.cache_path
        try:
            cached = read_cache(path)
        except CorruptCacheError as error:
            log.warning("%s; rebuilding it", error)
            shutil.rmtree(path, ignore_errors=True)
            cached = None
        if cached is not None:
            return cached
        log.info("preprocessing %s from %s into %s", self.slug, self.root, path)
        arrays, info = self.build_arrays()
        info = {**info, "preprocessing": self.preprocessing_config()}
        write_cache(path, arrays, info)
        return read_cache(path)

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.setup_items(*self.cached_arrays())
            self.splits = {name: np.asarray(idx, dtype=np.int64)
                           for name, idx in self.split_indices().items()}
            self._raw_inputs = self.inputs
            if self.pca_components is not None:
                if self._pca is None:  # a state loaded before setup is used as it is
                    self._pca = self.fit_pca()
                self.apply_pca()
        for name in STAGE_SPLITS.get(stage, ("train", "val", "test")):
            self.dataset(name)

    # ------------------------------------------------------------------ PCA
    def fit_pca(self) -> dict:
        """Fit ``pca_components`` principal components on the training split only."""
        from sklearn.decomposition import PCA

        train = self._raw_inputs[self.splits["train"]].reshape(len(self.splits["train"]), -1)
        if self.pca_components > train.shape[1]:
            raise ValueError(f"data.pca_components={self.pca_components} exceeds the input length "
                             f"{train.shape[1]} (channels x samples per item); choose at most that")
        pca = PCA(n_components=self.pca_components, random_state=self.seed).fit(train)
        return {"components": pca.components_.tolist(), "mean": pca.mean_.tolist(),
                "explained_variance_ratio": pca.explained_variance_ratio_.tolist()}

    def apply_pca(self) -> None:
        """Project every item onto the fitted components: ``inputs`` becomes ``[N, 1, K]``."""
        components = np.asarray(self._pca["components"], dtype=np.float32)
        mean = np.asarray(self._pca["mean"], dtype=np.float32)
        flat = self._raw_inputs.reshape(len(self._raw_inputs), -1)
        if flat.shape[1] != components.shape[1]:
            raise ValueError(f"the PCA state expects inputs of length {components.shape[1]}, "
                             f"these items have {flat.shape[1]}: a checkpoint of other preprocessing?")
        self.inputs = ((flat - mean) @ components.T)[:, None, :].astype(np.float32)
        self._datasets = {}  # rebuilt from the projected inputs

    def state_dict(self) -> dict:
        """The fitted PCA as plain lists of floats (checkpoints load with ``weights_only=True``)."""
        return {"pca": self._pca} if self._pca is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Use a saved PCA instead of refitting; re-projects the items if setup already ran."""
        if not state_dict.get("pca"):
            return
        if self.pca_components is None:
            raise ValueError("the checkpoint holds a PCA but data.pca_components is null; "
                             f"set it to {len(state_dict['pca']['components'])}")
        self._pca = state_dict["pca"]
        if self._raw_inputs is not None:
            self.apply_pca()

    def dataset(self, name: str) -> TensorDataset:
        """The TensorDataset of one split, built on first use."""
        if self.splits is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its datasets are used")
        if name not in self._datasets:
            index = self.splits.get(name)
            if index is None or len(index) == 0:
                raise ValueError(f"the {name!r} split of {self.slug} is empty "
                                 f"(data.split={self.split}); choose another split or records")
            inputs = torch.from_numpy(np.ascontiguousarray(self.inputs[index], dtype=np.float32))
            self._datasets[name] = TensorDataset(inputs, torch.from_numpy(self.targets[index]))
        return self._datasets[name]

    # ------------------------------------------------------------------ facts for run.py
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def seq_len(self) -> int:
        return int(self.inputs.shape[2])

    def model_facts(self) -> dict:
        """What a model needs to know about the data, passed by run.py at instantiation."""
        return {"num_classes": self.num_classes, "in_channels": self.in_channels,
                "seq_len": self.seq_len}

    def split_counts(self, name: str) -> np.ndarray:
        """Items per class in one split (positives per label for multilabel data)."""
        targets = self.targets[self.splits[name]]
        if self.task == "multilabel":
            return targets.sum(axis=0).astype(np.int64)
        return np.bincount(targets, minlength=self.num_classes)

    @property
    def class_counts(self) -> list[int]:
        """Training-split class counts, from which losses derive their class weights."""
        return self.split_counts("train").tolist()

    def describe(self) -> dict:
        """The dataset card: what ``python -m ecg_lightning.summary`` prints."""
        card = {"database": self.slug, "root": str(self.root), "task": self.task,
                "split": self.split, "label_classes": self.class_names,
                "cache": str(self.cache_path), **self.describe_preprocessing(), "splits": {}}
        if self._pca is not None:
            ratios = self._pca["explained_variance_ratio"]
            card["pca"] = {"components": len(ratios), "fitted_on": "train",
                           "explained_variance": round(float(sum(ratios)), 4),
                           "explained_variance_ratio": [round(r, 4) for r in ratios]}
        for name, index in self.splits.items():
            card["splits"][name] = {
                "items": int(len(index)),
                "subjects": sorted({str(g) for g in np.unique(self.groups[index])}),
                "per_class": dict(zip(self.class_names, map(int, self.split_counts(name)))),
            }
        return card

    # ------------------------------------------------------------------ loaders
    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.dataset(name), batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
