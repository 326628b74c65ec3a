"""The shared datamodule base: data root, download, cache, splits, class counts, loaders.

A database subclass supplies four things:

* ``slug`` (its PhysioNet slug, also its folder name) and ``physionet_version``;
* ``preprocessing_config()``: everything that changes the cached arrays (hashed into the key);
* ``build_arrays()``: read the raw files and return ``(arrays, info)`` to cache;
* ``setup_items(arrays, info)``: set ``inputs`` [N, C, T], ``targets``, ``groups`` (subject of
  every item) and ``class_names``; and ``split_indices()``: the train/val/test index arrays.
  For ``spectrogram`` it also sets ``item_index`` (the cached row of every item) and caches
  the windows under the array name ``signal_array`` (``"windows"``).

Shared preprocessing after the splits (one input feature at most):

* ``pca_components=K`` fits a PCA on the training split's flattened inputs only and projects
  every item onto it, so inputs become ``[N, 1, K]``: one channel whose "time" axis is the
  sequence of principal-component scores. The fitted PCA is the datamodule's ``state_dict()``
  (plain lists of floats), which Lightning stores in every checkpoint and restores with
  ``load_state_dict()``, so a checkpoint is tested on the same projection it was trained on.
* ``spectrogram={nperseg, hop, nfft, window, log}`` replaces every window by its short-time
  Fourier magnitude (``features.py``), inputs ``[N, C * F bins, frames]``. It is computed once
  for every cached row and cached next to the windows under a hash of the preprocessing config
  and the spectrogram config, so a label scheme or split change reuses it.

Class imbalance, for single-label data: ``sampler=weighted`` draws training batches with
torch's ``WeightedRandomSampler`` (inverse class frequency, with replacement, as many draws as
training items, seeded); ``sampler=undersample`` keeps a random class-balanced subset of the
training split (imbalanced-learn's ``RandomUnderSampler``, seeded), chosen once in ``setup``.
``class_counts`` reports what training then draws, so a loss weighting never corrects twice.
``sampler_boost={F: 2.0}`` multiplies those classes' sampler weights (``sampler=weighted``
only): F is then drawn twice as often as any other class. It is a deliberate emphasis on top
of the balance, so ``class_counts`` stay the balanced draws and a loss weighting leaves it in
place; the dataset card shows the boosted expected draws.

``smote={classes: [F], k_neighbors: 5, ratio: 0.5}`` adds synthetic training items of the
listed classes with imbalanced-learn's ``SMOTE`` (seeded), after the split and on the
training split's model inputs only (after the spectrogram or PCA; validation and test are
never touched): each listed class grows to ``ratio`` x the largest training class (a class
already that large is left alone). Synthetic items are kept apart from the real items
(``inputs``, ``groups`` and the split indices stay the real ones) and join only the training
dataset, its class counts and the sampler; the card lists them under ``smote``.

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
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from ecg_lightning.data.cache import CorruptCacheError, config_hash, read_cache, write_cache
from ecg_lightning.data.download import DataUnavailableError, download_physionet
from ecg_lightning.data.features import spectrogram, spectrogram_config

log = logging.getLogger(__name__)

STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                "predict": ("test",)}
SAMPLERS = ("none", "weighted", "undersample")
SMOTE_DEFAULTS = {"classes": None, "k_neighbors": 5, "ratio": 0.5}


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
                 smote: dict | None = None) -> None:
        super().__init__()
        if pca_components is not None and pca_components < 1:
            raise ValueError(f"data.pca_components={pca_components} must be a positive integer or null")
        if sampler not in SAMPLERS:
            raise ValueError(f"data.sampler={sampler!r} is unknown; valid: {', '.join(SAMPLERS)}")
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
        smote = smote_config(smote, sampler, self.task)
        spectrogram = spectrogram_config(spectrogram)
        if spectrogram is not None and pca_components is not None:
            raise ValueError("data.spectrogram and data.pca_components are both set: they are "
                             "alternative input features; set one of them to null")
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
        self.sampler = sampler
        self.sampler_boost = sampler_boost
        self.smote = smote
        self.spectrogram = spectrogram
        # Filled by setup().
        self.inputs: np.ndarray | None = None
        self.targets: np.ndarray | None = None
        self.groups: np.ndarray | None = None
        self.class_names: list[str] = []
        self.splits: dict[str, np.ndarray] | None = None
        self._raw_inputs: np.ndarray | None = None  # inputs before PCA or spectrogram
        self._train_before_sampling: np.ndarray | None = None  # train split before undersampling
        self._synthetic: tuple[np.ndarray, np.ndarray] | None = None  # SMOTE (inputs, targets)
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
    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            arrays, info = self.cached_arrays()
            self.setup_items(arrays, info)
            self.splits = {name: np.asarray(idx, dtype=np.int64)
                           for name, idx in self.split_indices().items()}
            self._raw_inputs = self.inputs
            self.boost_factors()  # an unknown class in data.sampler_boost fails here, not later
            if self.spectrogram is not None:
                self.inputs = self.spectrogram_inputs(arrays)
            if self.pca_components is not None:
                if self._pca is None:  # a state loaded before setup is used as it is
                    self._pca = self.fit_pca()
                self.apply_pca()
            if self.smote is not None and self._synthetic is None:  # on the model inputs
                self._synthetic = self.oversample()
            if self.sampler == "undersample":  # after the features: PCA sees the whole split
                self._train_before_sampling = self.splits["train"]
                self.splits["train"] = self.undersample(self.splits["train"])
        for name in STAGE_SPLITS.get(stage, ("train", "val", "test")):
            self.dataset(name)

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
    def undersample(self, train: np.ndarray) -> np.ndarray:
        """A random class-balanced subset of the training indices (every class cut to the smallest)."""
        from imblearn.under_sampling import RandomUnderSampler

        targets = self.targets[train]
        present = [self.class_names[c] for c in np.unique(targets)]
        if len(present) < 2:
            raise ValueError(f"data.sampler=undersample needs two classes or more in the training "
                             f"split; it holds {present or 'no item'}")
        sampler = RandomUnderSampler(random_state=self.seed)
        sampler.fit_resample(train.reshape(-1, 1), targets)  # the indices stand in for the items
        return np.sort(train[sampler.sample_indices_])

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

    def weighted_sampler(self) -> WeightedRandomSampler:
        """Training draws with probability inverse to class size: balanced batches in expectation,
        times ``sampler_boost`` for the boosted classes."""
        targets = torch.from_numpy(self.train_targets())
        per_class = torch.from_numpy(self.boost_factors()) / torch.bincount(
            targets, minlength=self.num_classes).double()
        return WeightedRandomSampler(per_class[targets], num_samples=len(targets),
                                     replacement=True,
                                     generator=torch.Generator().manual_seed(self.seed))

    def expected_draws(self) -> list[int]:
        """Items per class the weighted sampler draws in one epoch, in expectation (with the boost)."""
        counts = self.split_counts("train")
        share = np.where(counts > 0, self.boost_factors(), 0.0)
        return np.round(counts.sum() * share / share.sum()).astype(int).tolist()

    def oversample(self) -> tuple[np.ndarray, np.ndarray]:
        """SMOTE items ``(inputs, targets)`` of ``smote.classes``, from the training split only."""
        from imblearn.over_sampling import SMOTE

        train = self.splits["train"]
        targets = self.targets[train]
        counts = np.bincount(targets, minlength=self.num_classes)
        k, ratio = self.smote["k_neighbors"], self.smote["ratio"]
        goal = {}
        for name in self.smote["classes"]:
            if name not in self.class_names:
                raise ValueError(f"data.smote.classes names {name!r}, which {self.slug} does not "
                                 f"have; its classes: {', '.join(self.class_names)}")
            c = self.class_names.index(name)
            if counts[c] < k + 1:  # SMOTE interpolates towards k neighbours of the same class
                raise ValueError(f"data.smote: class {name} has {counts[c]} training items, fewer "
                                 f"than k_neighbors + 1 = {k + 1}; lower data.smote.k_neighbors or "
                                 f"leave {name} out of data.smote.classes")
            goal[c] = max(int(counts[c]), round(ratio * counts.max()))
        shape = self.inputs.shape[1:]
        if all(goal[c] == counts[c] for c in goal):  # every listed class is large enough already
            return np.zeros((0, *shape), dtype=np.float32), np.zeros(0, dtype=self.targets.dtype)
        smote = SMOTE(sampling_strategy=goal, k_neighbors=k, random_state=self.seed)
        inputs, labels = smote.fit_resample(self.inputs[train].reshape(len(train), -1), targets)
        return (inputs[len(train):].reshape(-1, *shape).astype(np.float32),
                labels[len(train):].astype(self.targets.dtype))

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
        self.inputs = self.project_pca(self._raw_inputs)
        self._datasets = {}  # rebuilt from the projected inputs
        if self._synthetic is not None:  # SMOTE items live in the input space: redraw them there
            self._synthetic = self.oversample()

    def project_pca(self, inputs: np.ndarray) -> np.ndarray:
        """``[N, C, T]`` -> ``[N, 1, K]`` component scores of the fitted (or loaded) PCA."""
        components = np.asarray(self._pca["components"], dtype=np.float32)
        mean = np.asarray(self._pca["mean"], dtype=np.float32)
        flat = inputs.reshape(len(inputs), -1)
        if flat.shape[1] != components.shape[1]:
            raise ValueError(f"the PCA state expects inputs of length {components.shape[1]}, "
                             f"these items have {flat.shape[1]}: a checkpoint of other preprocessing?")
        return ((flat - mean) @ components.T)[:, None, :].astype(np.float32)

    def features(self, windows: np.ndarray) -> np.ndarray:
        """Model inputs for new windows ``[N, C, T]``, transformed as the training items were
        (spectrogram, then the saved PCA): what ``predict`` feeds a checkpoint."""
        inputs = np.asarray(windows, dtype=np.float32)
        if self.spectrogram is not None:
            inputs = spectrogram(inputs, self.spectrogram)
        if self._pca is not None:
            inputs = self.project_pca(inputs)
        return inputs

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
            inputs = np.ascontiguousarray(self.inputs[index], dtype=np.float32)
            targets = self.targets[index]
            if name == "train" and self._synthetic is not None:  # SMOTE items train only
                inputs = np.concatenate([inputs, self._synthetic[0]])
                targets = np.concatenate([targets, self._synthetic[1]])
            self._datasets[name] = TensorDataset(torch.from_numpy(inputs), torch.from_numpy(targets))
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

    def data_facts(self) -> dict:
        """Everything needed to rebuild the model without the data: saved in every checkpoint."""
        return {**self.model_facts(), "class_names": list(self.class_names), "task": self.task,
                "class_counts": self.class_counts, "num_items": int(len(self.train_targets()))}

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
                "cache": str(self.cache_path), **self.describe_preprocessing(), "splits": {}}
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
        if self._pca is not None:
            ratios = self._pca["explained_variance_ratio"]
            card["pca"] = {"components": len(ratios), "fitted_on": "train",
                           "explained_variance": round(float(sum(ratios)), 4),
                           "explained_variance_ratio": [round(r, 4) for r in ratios]}
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
                          num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        sampler = self.weighted_sampler() if self.sampler == "weighted" else None
        return self._loader("train", shuffle=True, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def smote_config(config, sampler: str, task: str) -> dict | None:
    """``data.smote`` checked and completed with the defaults; ``None`` stays ``None``."""
    if config is None:
        return None
    config = {key: config[key] for key in config}  # a plain dict, also from a Hydra DictConfig
    unknown = sorted(set(config) - set(SMOTE_DEFAULTS))
    if unknown:
        raise ValueError(f"data.smote has unknown keys {unknown}; valid: {', '.join(SMOTE_DEFAULTS)}")
    config = {**SMOTE_DEFAULTS, **config}
    classes = config["classes"]
    if isinstance(classes, str) or not classes:
        raise ValueError(f"data.smote.classes={classes!r} must be a non-empty list of class "
                         "names, e.g. [F]")
    config["classes"] = [str(name) for name in classes]
    k, ratio = config["k_neighbors"], config["ratio"]
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"data.smote.k_neighbors={k!r} must be a positive integer")
    if not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise ValueError(f"data.smote.ratio={ratio!r} must be in (0, 1]: a listed class grows to "
                         "ratio x the largest training class")
    if task == "multilabel":
        raise ValueError("data.smote oversamples single-label classes; these items carry several "
                         "labels: use data.smote=null")
    if sampler == "undersample":
        raise ValueError("data.smote adds training items and data.sampler=undersample removes "
                         "them: choose one (data.sampler=weighted or none with SMOTE)")
    return config


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
