"""Split helpers shared by every datamodule.

Every function returns ``{"train": idx, "val": idx, "test": idx}`` with integer index arrays
into the datamodule's items. Subject-disjoint helpers take a ``groups`` array (one subject id
per item); the stratified helper is the patient-leaky intra-patient paradigm.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float,
                     seed: int) -> dict[str, np.ndarray]:
    """Random item-level split, stratified by label.

    Classes too small to appear on every side (fewer than 3 items, e.g. MIT-BIH ``S`` with 2
    beats) are split at random with the others instead of breaking the stratification.
    """
    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=test_fraction, random_state=seed,
                                  stratify=pooled_strata(labels, 3))
    # pooled again: a class left with one item in ``rest`` cannot be stratified there
    train, val = train_test_split(rest, test_size=val_fraction / (1.0 - test_fraction),
                                  random_state=seed, stratify=pooled_strata(labels[rest], 2))
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def pooled_strata(labels: np.ndarray, minimum: int) -> np.ndarray:
    """Labels to stratify on, the classes with fewer than ``minimum`` items pooled into one
    stratum (scikit-learn needs two per stratum); a lone pooled item joins the largest class."""
    values, counts = np.unique(labels, return_counts=True)
    strata = labels.copy()
    rare = np.isin(labels, values[counts < minimum])
    strata[rare] = -2
    if rare.sum() == 1:
        strata[rare] = values[np.argmax(counts)]
    return strata


def group_split(groups: np.ndarray, val_fraction: float, test_fraction: float,
                seed: int) -> dict[str, np.ndarray]:
    """Random subject-disjoint split: whole subjects go to train, val or test."""
    subjects = np.unique(groups)
    rng = np.random.default_rng(seed)
    rng.shuffle(subjects)
    n_test = max(1, round(test_fraction * len(subjects)))
    n_val = max(1, round(val_fraction * len(subjects)))
    if n_test + n_val >= len(subjects):
        raise ValueError(f"{len(subjects)} subjects are too few for val_fraction={val_fraction} "
                         f"and test_fraction={test_fraction}")
    sides = {"test": subjects[:n_test], "val": subjects[n_test:n_test + n_val],
             "train": subjects[n_test + n_val:]}
    return {name: np.flatnonzero(np.isin(groups, members)) for name, members in sides.items()}


def group_kfold(groups: np.ndarray, fold: int, num_folds: int, seed: int) -> dict[str, np.ndarray]:
    """Subject-disjoint k-fold: fold ``fold`` is the test set, the next fold validates.

    Subjects are shuffled with ``seed`` before they are dealt into folds, so a seed gives a
    fixed partition and ``fold=0..num_folds-1`` covers every subject exactly once as test.
    """
    if not 0 <= fold < num_folds:
        raise ValueError(f"data.fold={fold} is outside 0..{num_folds - 1} (data.num_folds={num_folds})")
    subjects = np.unique(groups)
    if len(subjects) < num_folds:
        raise ValueError(f"data.num_folds={num_folds} exceeds the {len(subjects)} subjects")
    rng = np.random.default_rng(seed)
    rng.shuffle(subjects)
    fold_of_subject = dict(zip(subjects, np.arange(len(subjects)) % num_folds))
    item_fold = np.array([fold_of_subject[g] for g in groups])
    val_fold = (fold + 1) % num_folds
    return {"train": np.flatnonzero((item_fold != fold) & (item_fold != val_fold)),
            "val": np.flatnonzero(item_fold == val_fold),
            "test": np.flatnonzero(item_fold == fold)}



def time_split(groups: np.ndarray, order: np.ndarray, val_fraction: float, test_fraction: float,
               purge: int = 1) -> dict[str, np.ndarray]:
    """Within every subject, in time order: the first items train, the next validate, the last test.

    ``order`` lists all item indices chronologically (e.g. by record, then sample). ``purge``
    items are dropped at each boundary, so no beat window overlaps its neighbour across the
    split. Every subject appears in all three splits: the paradigm of identification, where the
    classes are the subjects themselves.
    """
    sides = {"train": [], "val": [], "test": []}
    for subject in np.unique(groups):
        items = order[groups[order] == subject]  # this subject's items, chronologically
        n_test = max(1, round(test_fraction * len(items)))
        n_val = max(1, round(val_fraction * len(items)))
        n_train = len(items) - n_val - n_test - 2 * purge
        if n_train < 1:
            raise ValueError(f"subject {subject} has {len(items)} items: too few for a time split "
                             f"with val_fraction={val_fraction}, test_fraction={test_fraction}, "
                             f"purge={purge}")
        sides["train"].append(items[:n_train])
        sides["val"].append(items[n_train + purge:n_train + purge + n_val])
        sides["test"].append(items[len(items) - n_test:])
    return {name: np.sort(np.concatenate(parts)) for name, parts in sides.items()}


def cross_session_split(groups: np.ndarray, days: np.ndarray, order: np.ndarray,
                        val_fraction: float, purge: int = 1) -> dict[str, np.ndarray]:
    """Train on one recording day, test on the others: the cross-session paradigm.

    For every subject, in time order (``order`` as in ``time_split``): the items of the
    subject's earliest day (``days``: one sortable day per item) train, the last
    ``val_fraction`` of them validate (``purge`` items dropped at the boundary), and the items
    of every later day test. A subject recorded on one day only trains and validates the same
    way and has no test items (in verification it is still an enrolled identity that test
    beats of others may be claimed as).
    """
    sides = {"train": [], "val": [], "test": []}
    for subject in np.unique(groups):
        items = order[groups[order] == subject]
        first_day = days[items].min()
        enrol = items[days[items] == first_day]
        n_val = max(1, round(val_fraction * len(enrol)))
        n_train = len(enrol) - n_val - purge
        if n_train < 1:
            raise ValueError(f"subject {subject} has {len(enrol)} items on its first day: too "
                             f"few for val_fraction={val_fraction}, purge={purge}")
        sides["train"].append(enrol[:n_train])
        sides["val"].append(enrol[len(enrol) - n_val:])
        sides["test"].append(items[days[items] != first_day])
    return {name: np.sort(np.concatenate(parts)) for name, parts in sides.items()}
