"""Class imbalance on the training split: weighted sampling, undersampling, SMOTE.

Options of every single-label datamodule (``data.sampler``, ``data.sampler_boost``,
``data.smote``); all of them touch the training split only and are seeded.

* ``sampler=weighted``: torch's ``WeightedRandomSampler`` draws training batches with
  probability inverse to class frequency (with replacement, as many draws as training items);
  ``sampler_boost={F: 2.0}`` multiplies those classes' weights on top of the balance.
* ``sampler=undersample``: imbalanced-learn's ``RandomUnderSampler`` keeps a random
  class-balanced subset of the training split, chosen once in ``setup``.
* ``smote={classes: [F], k_neighbors: 5, ratio: 0.5}``: imbalanced-learn's ``SMOTE`` adds
  synthetic training items of the listed classes, on the training split's model inputs (after
  the spectrogram, PCA and every fitted transform; all named inputs of an item, e.g. window and
  RR features, interpolated together). Each listed class grows to ``ratio`` x the largest
  training class. Synthetic items join only the training dataset.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

SAMPLERS = ("none", "weighted", "undersample")
SMOTE_DEFAULTS = {"classes": None, "k_neighbors": 5, "ratio": 0.5}


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


def undersample(train: np.ndarray, targets: np.ndarray, class_names: list[str],
                seed: int) -> np.ndarray:
    """A random class-balanced subset of the training indices (every class cut to the smallest)."""
    from imblearn.under_sampling import RandomUnderSampler

    present = [class_names[c] for c in np.unique(targets)]
    if len(present) < 2:
        raise ValueError(f"data.sampler=undersample needs two classes or more in the training "
                         f"split; it holds {present or 'no item'}")
    sampler = RandomUnderSampler(random_state=seed)
    sampler.fit_resample(train.reshape(-1, 1), targets)  # the indices stand in for the items
    return np.sort(train[sampler.sample_indices_])


def weighted_sampler(targets: np.ndarray, boost: np.ndarray, seed: int) -> WeightedRandomSampler:
    """Draws with probability inverse to class size, times ``boost`` per class."""
    targets = torch.from_numpy(targets)
    per_class = torch.from_numpy(boost) / torch.bincount(targets, minlength=len(boost)).double()
    return WeightedRandomSampler(per_class[targets], num_samples=len(targets), replacement=True,
                                 generator=torch.Generator().manual_seed(seed))


def smote_items(inputs: dict[str, np.ndarray], targets: np.ndarray, config: dict,
                class_names: list[str], seed: int, slug: str) -> tuple[dict, np.ndarray]:
    """Synthetic ``(inputs, targets)`` of ``config["classes"]`` from the training items given.

    Every named input of an item is flattened into one row, so a synthetic item interpolates
    its window and its auxiliary features between the same two neighbours.
    """
    from imblearn.over_sampling import SMOTE

    counts = np.bincount(targets, minlength=len(class_names))
    k, ratio = config["k_neighbors"], config["ratio"]
    goal = {}
    for name in config["classes"]:
        if name not in class_names:
            raise ValueError(f"data.smote.classes names {name!r}, which {slug} does not "
                             f"have; its classes: {', '.join(class_names)}")
        c = class_names.index(name)
        if counts[c] < k + 1:  # SMOTE interpolates towards k neighbours of the same class
            raise ValueError(f"data.smote: class {name} has {counts[c]} training items, fewer "
                             f"than k_neighbors + 1 = {k + 1}; lower data.smote.k_neighbors or "
                             f"leave {name} out of data.smote.classes")
        goal[c] = max(int(counts[c]), round(ratio * counts.max()))
    shapes = {name: values.shape[1:] for name, values in inputs.items()}
    if all(goal[c] == counts[c] for c in goal):  # every listed class is large enough already
        return ({name: np.zeros((0, *shape), dtype=np.float32) for name, shape in shapes.items()},
                np.zeros(0, dtype=targets.dtype))
    rows = np.concatenate([values.reshape(len(targets), -1) for values in inputs.values()], axis=1)
    smote = SMOTE(sampling_strategy=goal, k_neighbors=k, random_state=seed)
    resampled, labels = smote.fit_resample(rows, targets)
    synthetic, start = {}, 0
    for name, shape in shapes.items():
        width = int(np.prod(shape))
        synthetic[name] = (resampled[len(targets):, start:start + width]
                           .reshape(-1, *shape).astype(np.float32))
        start += width
    return synthetic, labels[len(targets):].astype(targets.dtype)
