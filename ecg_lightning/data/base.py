"""The shared datamodule base: data root, download, cache, splits, named inputs, loaders.

A database subclass supplies:

* ``slug`` (its PhysioNet slug, also its folder name) and ``physionet_version``;
* ``preprocessing_config()``: everything that changes the cached arrays (hashed into the key);
* ``build_arrays()``: read the raw files and return ``(arrays, info)`` to cache;
* ``setup_items(arrays, info)``: set ``raw_inputs`` (named inputs of every item: ``signal``
  ``[N, C, T]``, and optionally ``rr``, ``tabular`` ... ``[N, F]``), ``targets``, ``groups``
  (subject of every item) and ``class_names``; and ``split_indices()``: the index arrays;
* optionally ``fitted_transforms()``: the statistics it fits on the training split.

Named inputs. A batch is a mapping ``{"signal": [B, C, T], "rr": [B, F], ..., "target": [B]}``
from the datamodule through the task to the net (``NamedInputs`` and torch's default collate:
one collate path). ``model_facts()["auxiliary_inputs"]`` tells the model the width of every
input beside ``signal``; ``models/fusion.py`` feeds them to any beat classifier.

Features, in order, after the splits:

1. ``spectrogram={nperseg, hop, nfft, window, log}`` replaces every window by its short-time
   Fourier magnitude (``features.py``), ``signal`` ``[N, C * F bins, frames]``; computed once
   for every cached row and cached next to the windows.
2. Fitted transforms (``transforms.py``): fitted on the training split only, saved in the
   datamodule's ``state_dict()`` (so in every checkpoint) and applied to every split,
   ``evaluate`` and ``predict``. The base offers ``pca_components=K`` (scikit-learn's PCA of
   the flattened windows: ``signal`` becomes ``[N, 1, K]``, the sequence of component
   scores); databases add theirs (PTB-XL's standardisation and tabular imputation, the beat
   databases' RR scaling).
3. Class imbalance on the training split (``imbalance.py``): ``sampler``, ``sampler_boost``,
   ``smote``.

Augmentation (``augment.py``, config group ``augment``): applied to the ``signal`` of training
batches only, after they reach their device (``on_after_batch_transfer``), seeded by the run's
seed, the process rank and the global step (so a resumed run draws what the uninterrupted one
would have).

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
from sklearn.decomposition import PCA
from torch.utils.data import DataLoader, Dataset

from ecg_lightning.data import imbalance
from ecg_lightning.data.cache import CorruptCacheError, config_hash, read_cache, write_cache
from ecg_lightning.data.download import DataUnavailableError, download_physionet
from ecg_lightning.data.features import spectrogram, spectrogram_config
from ecg_lightning.data.transforms import (FittedTransform, apply_transforms,
                                           load_transforms_state, transforms_state)

log = logging.getLogger(__name__)

STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                "predict": ("test",)}
SIGNAL = "signal"   # the waveform (or its spectrogram) every net reads
TARGET = "target"   # the label(s) in every batch
RECORD = "record"   # the code of every item's record (``record_names``), for per-record figures
ITEM = "item"       # the item's position in its split (time order within a record): its identity
                    # when batches come back from several processes (DDP) and for k-beat decisions


class NamedInputs(Dataset):
    """Items as mappings ``{input name: tensor, ..., "target": tensor}``.

    The DataLoader asks for a whole batch at once (``__getitems__``, which torch's fetcher
    prefers to one ``__getitem__`` per item): one fancy index per input instead of a Python
    loop over the batch, and the batch arrives already stacked (``collate_fn=keep_batch``).
    """

    def __init__(self, inputs: dict[str, np.ndarray], targets: np.ndarray,
                 records: np.ndarray | None = None) -> None:
        self.inputs = {name: torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
                       for name, values in inputs.items()}
        self.targets = torch.from_numpy(np.asarray(targets))
        self.extras = {} if records is None else {RECORD: torch.from_numpy(np.asarray(records)),
                                                  ITEM: torch.arange(len(self.targets))}

    def __len__(self) -> int:
        return len(self.targets)

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        return self[torch.as_tensor(indices, dtype=torch.long)]

    def __getitem__(self, index) -> dict[str, torch.Tensor]:
        return {**{name: values[index] for name, values in self.inputs.items()},
                TARGET: self.targets[index],
                **{name: values[index] for name, values in self.extras.items()}}


def keep_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The DataLoader's collate function: ``NamedInputs.__getitems__`` already stacked it."""
    return batch


class ECGDataModule(L.LightningDataModule):
    """Base class of every database's LightningDataModule (see the module docstring)."""

    slug: ClassVar[str]
    physionet_version: ClassVar[str | None] = None
    task: ClassVar[str] = "multiclass"  # or "multilabel"
    signal_array: ClassVar[str] = "windows"  # the cached array the spectrogram transforms

    def __init__(self, root: str | None = None, data_dir: str = "data",
                 cache_dir: str = "outputs/cache", split: str = "record", seed: int = 0,
                 batch_size: int = 256, num_workers: int = 0, download: bool = True,
                 pca_components: int | None = None, sampler: str = "none",
                 spectrogram: dict | None = None, sampler_boost: dict | None = None,
                 smote: dict | None = None, augment=None, rr_features=None) -> None:
        super().__init__()
        if rr_features:  # the beat databases (beats.py) take this option themselves
            raise ValueError(f"data.rr_features={list(rr_features)}: {self.slug} items are not "
                             "beats cut around annotated or detected positions, so they have no "
                             "RR intervals; RR features exist for the WFDB beat databases "
                             "(mitdb, svdb, nsrdb, ecgiddb). Set data.rr_features=null")
        if pca_components is not None and pca_components < 1:
            raise ValueError(f"data.pca_components={pca_components} must be a positive integer or null")
        if sampler not in imbalance.SAMPLERS:
            raise ValueError(f"data.sampler={sampler!r} is unknown; valid: "
                             f"{', '.join(imbalance.SAMPLERS)}")
        if sampler != "none" and self.task == "multilabel":
            raise ValueError(f"data.sampler={sampler} balances single-label classes, but {self.slug} "
                             "items carry several labels; use data.sampler=none (and a loss "
                             "weighting, e.g. loss=bce loss.weighting=inverse)")
        if sampler_boost and sampler != "weighted":
            raise ValueError(f"data.sampler_boost={dict(sampler_boost)} multiplies the weights of "
                             f"the weighted sampler: it needs data.sampler=weighted, not {sampler!r}")
        sampler_boost = {str(name): float(factor) for name, factor in (sampler_boost or {}).items()}
        bad = {name: factor for name, factor in sampler_boost.items() if not factor > 0}
        if bad:
            raise ValueError(f"data.sampler_boost factors must be positive numbers, got {bad}")
        spectrogram = spectrogram_config(spectrogram)
        if spectrogram is not None and pca_components is not None:
            raise ValueError("data.spectrogram and data.pca_components are both set: they are "
                             "alternative input features; set one of them to null")
        if augment is not None and (spectrogram is not None or pca_components is not None):
            raise ValueError("augment: augmentation works on waveform windows, and "
                             "data.spectrogram / data.pca_components turn them into other "
                             "features; use augment=none with them")
        self._root = root
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.split = split
        self.seed = seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.download = download
        self.pca_components = pca_components
        self.sampler = sampler
        self.sampler_boost = sampler_boost
        self.smote = imbalance.smote_config(smote, sampler, self.task)
        self.spectrogram = spectrogram
        self.augment = augment
        self._transforms: list[FittedTransform] | None = None
        # Filled by setup().
        self.raw_inputs: dict[str, np.ndarray] = {}  # named inputs as the database yields them
        self.inputs: dict[str, np.ndarray] = {}      # model inputs: features + fitted transforms
        self._features: dict[str, np.ndarray] | None = None  # after the spectrogram, before fits
        self.targets: np.ndarray | None = None
        self.groups: np.ndarray | None = None
        self.class_names: list[str] = []
        self.splits: dict[str, np.ndarray] | None = None
        self._train_before_sampling: np.ndarray | None = None  # train split before undersampling
        self._synthetic: tuple[dict, np.ndarray] | None = None  # SMOTE (inputs, targets)
        self._datasets: dict[str, NamedInputs] = {}
        self.item_record_names: list[str] = []  # batch["record"] codes -> names
        self.item_record_codes: np.ndarray | None = None

    # ------------------------------------------------------------------ subclass hooks
    def preprocessing_config(self) -> dict:
        raise NotImplementedError

    def build_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        raise NotImplementedError

    def setup_items(self, arrays: dict[str, np.ndarray], info: dict) -> None:
        raise NotImplementedError

    def split_indices(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def item_records(self) -> np.ndarray:
        """The record every item comes from (per-record figures and the record bootstrap);
        the subject where a database has no records of its own."""
        return self.groups

    def describe_preprocessing(self) -> dict:
        """Facts for the dataset card beyond the generic ones (rate, window, leads...)."""
        return {}

    def fitted_transforms(self) -> list[FittedTransform]:
        """The statistics fitted on the training split, in the order they apply."""
        if self.pca_components is None:
            return []
        return [FittedTransform("pca", SIGNAL, PCA(n_components=self.pca_components,
                                                   random_state=self.seed),
                                option=f"data.pca_components={self.pca_components}")]

    @property
    def sampling_rate_hz(self) -> float | None:
        """The rate of the ``signal`` windows (``None`` where the database has none)."""
        return None

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
        self.ensure_raw_data()
        self.cached_arrays()

    def ensure_raw_data(self) -> None:
        """Download the database when its folder is missing; a clear error when it cannot."""
        if not self.has_raw_data():
            if self.physionet_version is None or not self.download:
                raise DataUnavailableError(
                    f"{self.slug}: no data in {self.root} and download is "
                    f"{'not available for this database' if self.physionet_version is None else 'off (data.download=false)'}. "
                    f"Set ECG_DATA_DIR to a folder that holds {self.slug}/, or pass "
                    f"data.root=/path/to/{self.slug}")
            download_physionet(self.slug, self.physionet_version, self.root)

    # ------------------------------------------------------------------ cache
    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) / self.slug / config_hash(self.preprocessing_config())

    def cached_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays for the current preprocessing config: read from the cache, else built."""
        def build():
            log.info("preprocessing %s from %s into %s", self.slug, self.root, self.cache_path)
            arrays, info = self.build_arrays()
            return arrays, {**info, "preprocessing": self.preprocessing_config()}

        return read_or_build(self.cache_path, build)

    # ------------------------------------------------------------------ setup
    @property
    def transforms(self) -> list[FittedTransform]:
        if self._transforms is None:
            self._transforms = self.fitted_transforms()
        return self._transforms

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            arrays, info = self.cached_arrays()
            self.setup_items(arrays, info)
            self.splits = {name: np.asarray(idx, dtype=np.int64)
                           for name, idx in self.split_indices().items()}
            names, self.item_record_codes = np.unique(np.asarray(self.item_records()).astype(str),
                                                 return_inverse=True)
            self.item_record_names = names.tolist()
            self.boost_factors()  # an unknown class in data.sampler_boost fails here, not later
            if self.augment is not None and self.sampling_rate_hz is None:
                raise ValueError(f"augment: {self.slug} items carry no sampling rate, which the "
                                 "augmentations (wander in Hz, shifts in seconds) need; use "
                                 "augment=none")
            features = dict(self.raw_inputs)
            if self.spectrogram is not None:
                features[SIGNAL] = self.spectrogram_inputs(arrays)
            self._features = features
            self.apply_fitted_transforms()  # fitted on the whole training split
            if self.sampler == "undersample":
                self._train_before_sampling = self.splits["train"]
                self.splits["train"] = imbalance.undersample(
                    self.splits["train"], self.targets[self.splits["train"]], self.class_names,
                    self.seed)
        for name in STAGE_SPLITS.get(stage, ("train", "val", "test")):
            self.dataset(name)

    def apply_fitted_transforms(self) -> None:
        """Model inputs from the features: every transform fitted on train (unless loaded),
        then SMOTE on the result; the datasets are rebuilt from them."""
        self.inputs = apply_transforms(self.transforms, self._features, self.splits["train"])
        if self.smote is not None:
            train = self.splits["train"]
            self._synthetic = imbalance.smote_items(
                {name: values[train] for name, values in self.inputs.items()},
                self.targets[train], self.smote, self.class_names, self.seed, self.slug)
        self._datasets = {}

    def features(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Model inputs for new items (``signal`` ``[N, C, T]`` windows and any auxiliary
        input), transformed as the training items were: what ``predict`` feeds a checkpoint."""
        inputs = {name: np.asarray(values, dtype=np.float32) for name, values in inputs.items()}
        if self.spectrogram is not None:
            inputs[SIGNAL] = spectrogram(inputs[SIGNAL], self.spectrogram)
        return apply_transforms(self.transforms, inputs)

    def state_dict(self) -> dict:
        """The fitted transforms as plain data (checkpoints load with ``weights_only=True``)."""
        state = transforms_state(self.transforms)
        return {"transforms": state} if state else {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Use a checkpoint's fitted transforms instead of refitting; re-applied after setup."""
        load_transforms_state(self.transforms, state_dict.get("transforms", {}),
                              f"the checkpoint's {type(self).__name__} state")
        if self._features is not None:
            self.apply_fitted_transforms()

    # ------------------------------------------------------------------ spectrogram
    @property
    def spectrogram_cache_path(self) -> Path:
        key = {"preprocessing": self.preprocessing_config(), "spectrogram": self.spectrogram}
        return Path(self.cache_dir) / self.slug / f"stft-{config_hash(key)}"

    def build_spectrogram(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Spectrograms of every cached row (not only this config's items): ``[rows, C*F, frames]``."""
        signals = arrays[self.signal_array]
        if signals.ndim == 2:  # one lead: [rows, T] -> [rows, 1, T]
            signals = signals[:, None, :]
        return spectrogram(signals, self.spectrogram)

    def spectrogram_inputs(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The items' spectrograms, read from their cache entry, else computed and cached."""
        if self.signal_array not in arrays or getattr(self, "item_index", None) is None:
            raise NotImplementedError(
                f"data.spectrogram needs {type(self).__name__} to cache its windows as "
                f"{self.signal_array!r} and to set item_index (the cached row of every item)")

        def build():
            log.info("computing %s spectrograms into %s", self.slug, self.spectrogram_cache_path)
            return ({"spectrogram": self.build_spectrogram(arrays)},
                    {"preprocessing": self.preprocessing_config(), "spectrogram": self.spectrogram,
                     "windows": str(self.cache_path)})

        cached, _ = read_or_build(self.spectrogram_cache_path, build)
        return np.asarray(cached["spectrogram"][self.item_index])  # rows -> items, in memory

    # ------------------------------------------------------------------ class imbalance
    def train_targets(self) -> np.ndarray:
        """Targets of the training dataset: the real training items, then the SMOTE items."""
        targets = self.targets[self.splits["train"]]
        if self._synthetic is not None:
            targets = np.concatenate([targets, self._synthetic[1]])
        return targets

    def boost_factors(self) -> np.ndarray:
        """``sampler_boost`` as one factor per class (1 where not boosted)."""
        unknown = sorted(set(self.sampler_boost) - set(self.class_names))
        if unknown:
            raise ValueError(f"data.sampler_boost names classes {unknown} that {self.slug} does "
                             f"not have; its classes: {', '.join(self.class_names)}")
        return np.array([self.sampler_boost.get(name, 1.0) for name in self.class_names])

    def weighted_sampler(self):
        return imbalance.weighted_sampler(self.train_targets(), self.boost_factors(), self.seed)

    def expected_draws(self) -> list[int]:
        """Items per class the weighted sampler draws in one epoch, in expectation (with the boost)."""
        counts = self.split_counts("train")
        share = np.where(counts > 0, self.boost_factors(), 0.0)
        return np.round(counts.sum() * share / share.sum()).astype(int).tolist()

    # ------------------------------------------------------------------ datasets
    def dataset(self, name: str) -> NamedInputs:
        """The dataset of one split, built on first use."""
        if self.splits is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its datasets are used")
        if name not in self._datasets:
            index = self.splits.get(name)
            if index is None or len(index) == 0:
                raise ValueError(f"the {name!r} split of {self.slug} is empty "
                                 f"(data.split={self.split}); choose another split or records")
            inputs = {key: values[index] for key, values in self.inputs.items()}
            targets, records = self.targets[index], self.item_record_codes[index]
            if name == "train" and self._synthetic is not None:  # SMOTE items train only
                inputs = {key: np.concatenate([values, self._synthetic[0][key]])
                          for key, values in inputs.items()}
                targets = np.concatenate([targets, self._synthetic[1]])
                records = np.concatenate([records, np.full(len(self._synthetic[1]), -1)])
            self._datasets[name] = NamedInputs(inputs, targets, records)
        return self._datasets[name]

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Training batches only, on their device: ``augment`` the ``signal``."""
        trainer = self.trainer
        if self.augment is None or trainer is None or not trainer.training:
            return batch
        signal = batch[SIGNAL]
        generator = torch.Generator(device=signal.device)
        generator.manual_seed(int(self.seed) * 1_000_003 + trainer.global_rank * 10_007
                              + trainer.global_step)
        return {**batch, SIGNAL: self.augment(signal, self.sampling_rate_hz, generator)}

    # ------------------------------------------------------------------ facts for run.py
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return int(self.inputs[SIGNAL].shape[1])

    @property
    def seq_len(self) -> int:
        return int(self.inputs[SIGNAL].shape[2])

    @property
    def auxiliary_inputs(self) -> dict[str, int]:
        """Width of every named input beside ``signal`` (e.g. ``{"rr": 4}``)."""
        return {name: int(np.prod(values.shape[1:])) for name, values in self.inputs.items()
                if name != SIGNAL}

    def model_facts(self) -> dict:
        """What a model needs to know about the data, passed by run.py at instantiation."""
        return {"num_classes": self.num_classes, "in_channels": self.in_channels,
                "seq_len": self.seq_len, "auxiliary_inputs": self.auxiliary_inputs}

    def data_facts(self) -> dict:
        """Everything needed to rebuild the model without the data: saved in every checkpoint."""
        facts = {**self.model_facts(), "class_names": list(self.class_names), "task": self.task,
                 "class_counts": self.class_counts, "num_items": int(len(self.train_targets()))}
        if self.sampling_rate_hz is not None:  # predict resamples a new record to this rate
            facts["sampling_rate_hz"] = float(self.sampling_rate_hz)
        return facts

    def split_counts(self, name: str) -> np.ndarray:
        """Items per class in one split (positives per label for multilabel data); the training
        split counts its SMOTE items too."""
        counts = self._counts(self.splits[name])
        if name == "train" and self._synthetic is not None:
            counts = counts + np.bincount(self._synthetic[1], minlength=self.num_classes)
        return counts

    def _counts(self, index: np.ndarray) -> np.ndarray:
        targets = self.targets[index]
        if self.task == "multilabel":
            return targets.sum(axis=0).astype(np.int64)
        return np.bincount(targets, minlength=self.num_classes)

    def _per_class(self, index: np.ndarray) -> dict[str, int]:
        return dict(zip(self.class_names, map(int, self._counts(index))))

    @property
    def class_counts(self) -> list[int]:
        """Class counts of what training draws, from which losses derive their class weights.

        The training split's counts (after ``undersample``, the balanced subset; with SMOTE
        items); with ``sampler=weighted`` the expected draws per epoch, equal over the classes
        present, so that ``loss.weighting`` does not correct a second time what the sampler
        balanced (``sampler_boost`` is left out: an emphasis the loss should not undo).
        """
        counts = self.split_counts("train")
        if self.sampler == "weighted":
            present = counts > 0
            counts = np.where(present, round(counts.sum() / present.sum()), 0)
        return counts.tolist()

    def describe(self) -> dict:
        """The dataset card: what ``python -m ecg_lightning.summary`` prints."""
        card = {"database": self.slug, "root": str(self.root), "task": self.task,
                "split": self.split, "label_classes": self.class_names,
                "cache": str(self.cache_path), **self.describe_preprocessing(),
                "inputs": {name: list(values.shape[1:]) for name, values in self.inputs.items()},
                "splits": {}}
        card["sampler"] = self.sampler
        if self._train_before_sampling is not None:
            card["train_before_undersampling"] = self._per_class(self._train_before_sampling)
        if self.sampler == "weighted":  # the train split below is what the sampler draws from
            card["train_drawn_per_epoch_expected"] = dict(zip(self.class_names,
                                                              self.expected_draws()))
            if self.sampler_boost:
                card["sampler_boost"] = dict(self.sampler_boost)
        if self.smote is not None:
            synthetic = np.bincount(self._synthetic[1], minlength=self.num_classes)
            card["smote"] = {**self.smote, "fitted_on": "train",
                             "synthetic_per_class": dict(zip(self.class_names, map(int, synthetic)))}
        if self.spectrogram is not None:
            card["spectrogram"] = {**self.spectrogram, "input_channels": self.in_channels,
                                   "frames": self.seq_len, "cache": str(self.spectrogram_cache_path)}
        if self.transforms:
            card["fitted_transforms"] = {t.name: t.describe() for t in self.transforms}
        for transform in self.transforms:
            if transform.name == "pca":
                ratios = transform.estimator.explained_variance_ratio_
                card["pca"] = {"components": len(ratios), "fitted_on": "train",
                               "explained_variance": round(float(sum(ratios)), 4),
                               "explained_variance_ratio": [round(float(r), 4) for r in ratios]}
        if self.augment is not None:
            card["augment"] = self.augment.describe()
        for name, index in self.splits.items():
            card["splits"][name] = {
                "items": int(len(index)),
                "subjects": sorted({str(g) for g in np.unique(self.groups[index])}),
                "per_class": self._per_class(index),
            }
        return card

    # ------------------------------------------------------------------ loaders
    def _loader(self, name: str, shuffle: bool, sampler=None) -> DataLoader:
        return DataLoader(self.dataset(name), batch_size=self.batch_size,
                          shuffle=shuffle and sampler is None, sampler=sampler,
                          collate_fn=keep_batch, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        sampler = self.weighted_sampler() if self.sampler == "weighted" else None
        return self._loader("train", shuffle=True, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def read_or_build(path: Path, build) -> tuple[dict[str, np.ndarray], dict]:
    """The cache entry at ``path``; built with ``build() -> (arrays, info)`` when missing or damaged."""
    try:
        cached = read_cache(path)
    except CorruptCacheError as error:
        log.warning("%s; rebuilding it", error)
        shutil.rmtree(path, ignore_errors=True)
        cached = None
    if cached is not None:
        return cached
    write_cache(path, *build())
    return read_cache(path)
