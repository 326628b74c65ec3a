"""Statistics fitted on the training split: one mechanism for every such step.

PCA of the windows, PTB-XL's per-lead standardisation, the imputation and scaling of its
tabular values and the scaling of RR-interval features all do the same thing: learn something
from the **training items only**, keep it in the checkpoint, and apply it unchanged to
validation, test, ``evaluate`` and ``predict``. A :class:`FittedTransform` is that step: a
scikit-learn transformer (or pipeline) applied to one named input of the batch.

``layout`` says what a row is for scikit-learn:

* ``"items"``: one row per item, its values flattened (``[N, C, T]`` -> ``[N, C*T]``). A
  transformer that changes the width (PCA to ``K`` components) turns a ``[N, C, T]`` input
  into ``[N, 1, K]``: one channel whose "time" axis is the sequence of component scores;
* ``"channels"``: one row per time sample, one column per channel (``[N, C, T]`` ->
  ``[N*T, C]``): per-lead statistics. Fitted chunk by chunk with ``partial_fit``, so a large
  training split is never copied whole.

State: the estimator's fitted attributes (those that are not constructor parameters, e.g.
``mean_``, ``components_``, ``statistics_``) as plain lists, numbers and strings, so that
Lightning's checkpoints keep loading with ``torch.load(weights_only=True)``. The datamodule
saves ``{"transforms": {name: state}}`` in its ``state_dict()``; a configured transform whose
state a checkpoint lacks, or a state no configured transform claims, is an error naming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline

LAYOUTS = ("items", "channels")
CHUNK = 512  # items per partial_fit / transform call in the "channels" layout


def _encode(value: Any) -> Any:
    """A fitted attribute as plain Python data (``weights_only``-safe)."""
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.dtype):
        return {"dtype_of": str(value)}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a fitted attribute of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "ndarray" in value:
        return np.asarray(value["ndarray"], dtype=value["dtype"]).reshape(value["shape"])
    if isinstance(value, dict) and "dtype_of" in value:
        return np.dtype(value["dtype_of"])
    return value


def steps_of(estimator) -> list:
    """The estimators of a transformer: a pipeline's steps in order, else itself."""
    return [step for _, step in estimator.steps] if isinstance(estimator, Pipeline) else [estimator]


class FittedTransform:
    """A scikit-learn transformer fitted on the training items of one named input."""

    def __init__(self, name: str, input: str, estimator, layout: str = "items",
                 option: str | None = None) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"FittedTransform layout={layout!r}; valid: {', '.join(LAYOUTS)}")
        self.name = name          # key of its state in checkpoints, e.g. "pca"
        self.input = input        # the named input it reads and replaces, e.g. "signal"
        self.estimator = clone(estimator)
        self.layout = layout
        self.option = option or name  # the config option that asks for it, for messages
        self.fitted = False

    # ------------------------------------------------------------------ rows for scikit-learn
    def _rows(self, values: np.ndarray) -> np.ndarray:
        if self.layout == "channels":  # [N, C, T] -> [N*T, C]
            return np.moveaxis(values, 1, -1).reshape(-1, values.shape[1])
        return values.reshape(len(values), -1)

    def _unrows(self, rows: np.ndarray, like: np.ndarray) -> np.ndarray:
        if self.layout == "channels":
            shape = (like.shape[0], like.shape[2], rows.shape[1])
            return np.moveaxis(rows.reshape(shape), -1, 1)
        if rows.shape[1] == int(np.prod(like.shape[1:])):
            return rows.reshape(like.shape)
        return rows[:, None, :] if like.ndim == 3 else rows  # PCA: [N, 1, K]

    # ------------------------------------------------------------------ fit / apply
    def fit(self, values: np.ndarray, index: np.ndarray | None = None) -> "FittedTransform":
        """Fit on the items ``index`` (the training split) of the input's ``values`` ``[N, ...]``;
        the "channels" layout reads them chunk by chunk (no copy of the split is made)."""
        index = np.arange(len(values)) if index is None else np.asarray(index)
        try:
            if self.layout == "channels":
                for start in range(0, len(index), CHUNK):
                    self.estimator.partial_fit(self._rows(np.asarray(
                        values[index[start:start + CHUNK]], dtype=np.float64)))
            else:
                self.estimator.fit(self._rows(np.asarray(values[index], dtype=np.float64)))
        except ValueError as error:  # e.g. more PCA components than the input has values
            raise ValueError(f"{self.option}: fitting {self.name!r} on the training split's "
                             f"{self.input!r} ({len(index)} items of "
                             f"{int(np.prod(values.shape[1:]))} values) failed: {error}") from error
        self.fitted = True
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        """The fitted transform of ``values`` (any items, same shape as at fit), float32."""
        if not self.fitted:
            raise RuntimeError(f"transform {self.name!r} ({self.option}) is applied before it "
                               "was fitted on the training split or loaded from a checkpoint")
        expected = getattr(steps_of(self.estimator)[0], "n_features_in_", None)
        width = values.shape[1] if self.layout == "channels" else int(np.prod(values.shape[1:]))
        if expected is not None and width != expected:
            raise ValueError(f"transform {self.name!r} ({self.option}) was fitted on inputs "
                             f"{self.input!r} of width {expected}; these have {width}: a "
                             "checkpoint of other preprocessing (leads, window, features)?")
        chunk = CHUNK if self.layout == "channels" else max(len(values), 1)
        parts = [self._unrows(self.estimator.transform(self._rows(np.asarray(
                     values[start:start + chunk], dtype=np.float64))), values[start:start + chunk])
                 for start in range(0, len(values), chunk)]
        if not parts:
            return np.asarray(values, dtype=np.float32)
        return np.concatenate(parts).astype(np.float32)

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> list[dict]:
        """One dict of fitted attributes per estimator (a pipeline's steps in order)."""
        states = []
        for estimator in steps_of(self.estimator):
            parameters = set(estimator.get_params(deep=False))
            states.append({key: _encode(value) for key, value in vars(estimator).items()
                           if key not in parameters})
        return states

    def load_state_dict(self, states: list[dict]) -> None:
        estimators = steps_of(self.estimator)
        if len(states) != len(estimators):
            raise ValueError(f"the checkpoint's state of transform {self.name!r} has "
                             f"{len(states)} steps, {self.option} here has {len(estimators)}")
        for estimator, state in zip(estimators, states):
            for key, value in state.items():
                setattr(estimator, key, _decode(value))
        self.fitted = True

    def describe(self) -> dict:
        """For the dataset card: what is fitted, on which input, on which split."""
        return {"input": self.input, "estimator": repr(self.estimator), "layout": self.layout,
                "fitted_on": "train"}


def apply_transforms(transforms: list[FittedTransform], inputs: dict[str, np.ndarray],
                     train: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every transform in order, each fitted first on ``inputs[...][train]`` when not yet fitted."""
    inputs = dict(inputs)
    for transform in transforms:
        if transform.input not in inputs:
            raise ValueError(f"transform {transform.name!r} ({transform.option}) reads input "
                             f"{transform.input!r}, which this data does not provide "
                             f"(inputs: {', '.join(inputs)})")
        if not transform.fitted:
            if train is None:
                raise RuntimeError(f"transform {transform.name!r} is neither fitted nor loaded")
            transform.fit(inputs[transform.input], train)
        inputs[transform.input] = transform.transform(inputs[transform.input])
    return inputs


def transforms_state(transforms: list[FittedTransform]) -> dict:
    return {t.name: t.state_dict() for t in transforms if t.fitted}


def load_transforms_state(transforms: list[FittedTransform], state: dict, where: str) -> None:
    """Load every configured transform's state from ``state``; missing or unclaimed: an error."""
    configured = {t.name: t for t in transforms}
    unclaimed = sorted(set(state) - set(configured))
    if unclaimed:
        raise ValueError(f"{where} holds the fitted state of transform(s) {unclaimed}, which "
                         "this data config does not use: it was trained with other "
                         "preprocessing (e.g. data.pca_components, data.rr_features); set them "
                         "as the checkpoint's config has them")
    for name, transform in configured.items():
        if name not in state:
            raise ValueError(f"{where} holds no fitted state of transform {name!r} "
                             f"({transform.option}): it was trained without it; set "
                             f"{transform.option} as the checkpoint's config has it")
        transform.load_state_dict(state[name])
