"""RR-interval features of every beat: the rhythm beside the morphology.

Across patients, supraventricular (S) beats differ from normal ones mostly in timing: they come
early. Every inter-patient method that works feeds RR intervals beside the window (de Chazal
et al. 2004, IEEE TBME 51(7): pre-, post-, average and local RR; Mondejar-Guerra et al. 2019,
BSPC 47: the same four and their normalised forms; Saenz-Cogollo & Agelli 2020).

``data.rr_features`` lists the features, in seconds unless said otherwise, computed per record
from the beat positions in use (the reference beat annotations, or the detector's peaks):

* ``pre``: RR interval from the previous beat to this one;
* ``post``: RR interval from this beat to the next;
* ``local``: mean of the ``rr_local_beats`` (default 10; 20 for the inter-patient default,
  ``data=mitdb_interpatient``) most recent pre intervals, this beat's included (causal, as
  Mondejar-Guerra et al.'s code);
* ``average``: mean RR interval of the whole record (non-causal: the record is read whole,
  as de Chazal's per-recording average; ``predict`` does the same on a new record);
* ``pre_norm``, ``post_norm``, ``local_norm``: pre, post and local divided by ``average``
  (unitless; 1 = the record's own pace, so they carry across patients of other heart rates);
* ``pre_local``: pre divided by local (unitless; < 1 for a premature beat in its context);
* ``irregularity``: how irregular the rhythm around the beat is: the median absolute
  difference between successive intervals over the median interval, both over the
  ``rr_local_beats`` intervals on each side (centred; unitless, ~0 in sinus rhythm). Medians,
  so one premature beat (two large differences) in a regular rhythm barely moves it, while
  atrial fibrillation (every difference large) raises it: an early beat in an irregular
  context is not evidence of an S beat. Defaults to 0 where fewer than two valid intervals
  surround the beat.

Beats beside a gap get documented values, never NaN. An interval is a **gap** when it is
longer than ``rr_gap_seconds`` (default 3 s: no beat annotated, or detected, for that long) or
spans a signal-quality annotation ``~`` (MIT-BIH marks noise stretches with it). A beat whose
pre interval is a gap (or the first beat) takes its post interval as pre; one whose post
interval is a gap (or the last beat) takes its pre as post; a beat with both sides gaps takes
the record's average for both. ``local`` and ``average`` are means over valid intervals only.
A record with fewer than two beats has no interval: an error naming it. An item that is not a
beat (``label_scheme=symbols`` keeps rhythm and noise annotations) takes the features of the
beat nearest to it.

The raw values are standardised with a scaler fitted on the training split (``rr_scaling``:
``standard``, scikit-learn's StandardScaler, a fitted transform saved in checkpoints; ``none``
feeds the raw values).
"""

from __future__ import annotations

import warnings

import numpy as np

RR_FEATURES = ("pre", "post", "local", "average", "pre_norm", "post_norm", "local_norm",
               "pre_local", "irregularity")


def check_rr_features(names) -> list[str] | None:
    """``data.rr_features`` as a list of known names; ``None`` (or empty) = none."""
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    names = [str(name) for name in names]
    unknown = [name for name in names if name not in RR_FEATURES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"data.rr_features={names}: choose distinct names among "
                         f"{', '.join(RR_FEATURES)}")
    return names or None


def rr_features(item_samples: np.ndarray, beat_samples: np.ndarray, gap_samples: np.ndarray,
                fs: float, names: list[str], local_beats: int = 10,
                gap_seconds: float = 3.0, record: str = "") -> np.ndarray:
    """``[items, len(names)]`` RR features of the beats at ``item_samples`` of one record.

    ``beat_samples``: every beat position of the record (sorted, unique); ``gap_samples``:
    positions of ``~`` annotations.
    """
    beats = np.asarray(beat_samples, dtype=np.int64)
    if len(beats) < 2:
        raise ValueError(f"record {record}: {len(beats)} beat(s), RR-interval features need at "
                         "least two (data.rr_features); leave the record out or use "
                         "data.rr_features=null")
    intervals = np.diff(beats) / fs                                   # interval k: beat k -> k+1
    spans_noise = np.zeros(len(intervals), dtype=bool)
    if len(gap_samples):
        # interval k spans a ~ mark when one lies in (beat k, beat k+1]
        position = np.searchsorted(beats, np.asarray(gap_samples), side="left") - 1
        position = position[(position >= 0) & (position < len(intervals))]
        spans_noise[position] = True
    valid = (intervals <= gap_seconds) & ~spans_noise
    average = float(intervals[valid].mean()) if valid.any() else float(intervals.mean())

    nan = np.full(1, np.nan)
    pre = np.concatenate([nan, np.where(valid, intervals, np.nan)])   # per beat
    post = np.concatenate([np.where(valid, intervals, np.nan), nan])
    pre_filled = np.where(np.isnan(pre), post, pre)
    post_filled = np.where(np.isnan(post), pre, post)
    pre_filled = np.where(np.isnan(pre_filled), average, pre_filled)
    post_filled = np.where(np.isnan(post_filled), average, post_filled)

    # local: mean of the valid pre intervals among the last ``local_beats`` beats
    valid_pre = ~np.isnan(pre)
    sums = np.concatenate([[0.0], np.cumsum(np.where(valid_pre, pre, 0.0))])
    counts = np.concatenate([[0], np.cumsum(valid_pre)])
    end = np.arange(1, len(beats) + 1)
    start = np.maximum(end - local_beats, 0)
    n = counts[end] - counts[start]
    local = np.where(n > 0, (sums[end] - sums[start]) / np.maximum(n, 1), average)

    irregularity = rhythm_irregularity(np.where(valid, intervals, np.nan), local_beats)

    # an item is a beat of the record; a non-beat annotation (label_scheme=symbols keeps rhythm
    # and noise marks as items) takes the features of the beat nearest to it
    item_samples = np.asarray(item_samples, dtype=np.int64)
    right = np.clip(np.searchsorted(beats, item_samples), 1, len(beats) - 1)
    left = right - 1
    where = np.where(item_samples - beats[left] <= beats[right] - item_samples, left, right)
    values = {"pre": pre_filled, "post": post_filled, "local": local,
              "average": np.full(len(beats), average), "irregularity": irregularity}
    values["pre_norm"] = values["pre"] / average
    values["post_norm"] = values["post"] / average
    values["local_norm"] = values["local"] / average
    values["pre_local"] = values["pre"] / values["local"]
    return np.stack([values[name][where] for name in names], axis=1).astype(np.float32)


def rhythm_irregularity(intervals: np.ndarray, side_beats: int) -> np.ndarray:
    """Per beat: median |successive interval difference| / median interval over the
    ``side_beats`` intervals on each side of the beat (``intervals``: NaN where invalid, so a
    difference next to a gap is NaN too and left out). 0 where it is undefined."""
    differences = np.abs(np.diff(intervals))              # difference k: interval k -> k+1
    beats = len(intervals) + 1
    # beat b sits between interval b-1 (pre) and b (post): its window holds intervals
    # b-side .. b+side-1 and the differences among them, b-side .. b+side-2
    padded_intervals = np.pad(intervals, side_beats, constant_values=np.nan)
    padded_differences = np.pad(differences, side_beats, constant_values=np.nan)
    interval_windows = np.lib.stride_tricks.sliding_window_view(padded_intervals,
                                                                2 * side_beats)[:beats]
    difference_windows = np.lib.stride_tricks.sliding_window_view(padded_differences,
                                                                  2 * side_beats - 1)[:beats]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN windows: handled below
        ratio = (np.nanmedian(difference_windows, axis=1)
                 / np.nanmedian(interval_windows, axis=1))
    return np.where(np.isfinite(ratio), ratio, 0.0)
