"""Beat windows from WFDB records, and the datamodule base of the beat databases.

mitdb, nsrdb and ecgiddb (and svdb) are all WFDB records in which beats are cut into
windows around an R-peak position. This module holds what they share:

* ``filter_signal``: the per-record filters, in the order they are applied: optional
  resampling (wfdb), a zero-phase Butterworth band-pass (neurodsp), and the QRS-emphasising
  pair of Kim & Pyun 2020: a five-point derivative filter, then moving-average smoothing;
* ``read_beat_windows``: one record -> windows around its beat positions, taken from the
  reference annotations (``beats="annotations"``) or from wfdb's GQRS detector with the
  peaks moved onto the R wave (``beats="detector"``, for records without beat annotations or
  with too few marked beats); or, with ``segmentation="sliding"``, windows of
  ``window_seconds`` every ``stride_seconds`` over the whole record, not centred on beats;
* ``BeatDataModule``: the ``ECGDataModule`` subclass that reads every record listed in
  ``RECORDS`` in parallel, caches the windows, applies a label scheme (``aami``, ``binary``,
  ``symbols`` or ``identification``: one class per subject) and the generic splits.

Leads: ``data.leads=[MLII, V1]`` reads those channels by name (a record that lacks one is an
error naming it and its leads: mitdb 100, 103, 117, 123 and 124 have V5, V2 or V4 instead of
V1); ``data.leads=all`` every channel of each record, MLII first where present (de Chazal et
al. 2004's two leads, so the DS1/DS2 lists stay whole); ``data.leads=first`` each record's
first channel; ``data.lead=<name>`` is the one-lead shorthand (not both). Unset, the database's
own lead (mitdb MLII, svdb and nsrdb ECG1, ecgiddb "ECG I filtered").

Every annotated beat is an item: a window that crosses the record's start or end is padded
with the edge value (counted on the card as ``windows_padded_at_record_edges``), so mitdb's
DS1/DS2 per-class counts are de Chazal et al.'s exactly. Annotations at or past a record's last
sample (SVDB 860 marks a beat at its sample 230,400 of 230,400) are dropped and counted per
record (``annotations_past_record_end``).

RR-interval features (``data.rr_features``, ``rr.py``): the named input ``rr`` of every beat,
from the record's beat positions; scaled by a StandardScaler fitted on the training split.

Splits offered here (a database adds its own, e.g. mitdb's ``inter_patient``):

* ``time``: within every subject, earlier beats train, later beats validate, the last ones
  test (the identification paradigm; random beats would put neighbours on both sides);
* ``intra_patient``: stratified random beats (patient-leaky; logged as such; for
  identification, the random-beat protocol some papers used: each test beat's neighbours train);
* ``record``: random whole subjects, seeded; ``kfold``: subject-disjoint k-fold;
* ``external``: every record tests (nothing trains): external validation of a checkpoint
  trained on another database (``evaluate ckpt=... data=svdb`` chooses it);
* ``cross_session``: every subject's earliest recording day trains (its last
  ``val_fraction`` validates), later days test (``splits.cross_session_split``); it needs
  records that carry a recording date (``recording_day``: the header's base date, or ECG-ID's
  ``# ECG date:`` comment) and at least one subject recorded on two days.

Sliding windows (``segmentation="sliding"``): a record of ``T`` samples gives
``floor((T - W) / S) + 1`` windows of ``W`` samples, starting every ``S`` samples. A window is
labelled by the beat annotation nearest its centre among the beats inside it (ties: the
earlier beat), so it is named exactly as a beat-centred window of that beat would be, and the
label scheme still applies afterwards. Windows with no beat annotation inside (pauses,
unannotated noise) are not items: they are dropped and counted per record
(``windows_without_beat``). An abnormal beat names about ``RR / S`` windows (1.5 at 80 bpm and
S = 0.5 s), a normal one as many: the class balance stays that of the beats.
"""

from __future__ import annotations

import math
import os
from datetime import date
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import wfdb
from neurodsp.filt.iir import apply_iir_filter, design_iir_filter
from scipy.ndimage import uniform_filter1d
from wfdb.io import _signal
from sklearn.preprocessing import StandardScaler
from wfdb.processing import correct_peaks, gqrs_detect, resample_multichan, resample_sig

from ecg_lightning.data.base import SIGNAL, ECGDataModule
from ecg_lightning.data.labels import (BEAT_SYMBOLS, LABEL_SCHEMES, MITDB_SYMBOLS, encode_symbols,
                                       scheme_classes, scored_classes)
from ecg_lightning.data.rr import check_rr_features, rr_features
from ecg_lightning.data.splits import (cross_session_split, group_kfold, group_split,
                                       stratified_split, time_split)
from ecg_lightning.data.transforms import FittedTransform

NORMALIZATIONS = ("zscore", "minmax", "none")
BEAT_SOURCES = ("annotations", "detector")
SEGMENTATIONS = ("beats", "sliding")
RR_SCALINGS = ("standard", "none")
TEMPLATES = ("subtract", "append")
TEMPLATE_BEATS = ("all", "on_time")  # which beats a record's median beat is taken over
# The datamodule options that shape how one record is read into windows (``read_options``,
# which ``predict`` and the cache key follow); a datamodule that reads through others
# (mitdb_svdb) passes these on, and ``evaluate`` carries them onto another database.
READ_OPTIONS = ("fs", "bandpass", "derivative", "smoothing_seconds", "pre_seconds",
                "post_seconds", "normalize", "beats", "max_seconds", "segmentation",
                "window_seconds", "stride_seconds", "check_annotations", "record_template",
                "record_template_beats", "rr_local_beats", "rr_gap_seconds")
# External evaluation (``evaluate ckpt=<mitdb> data=svdb``): a lead the other database lacks is
# read as its equivalent there. MIT-BIH's MLII (and V1) are SVDB's and NSRDB's ECG1 (and
# ECG2): both databases were recorded with the same Holter practice, and their headers name
# no lead.
LEAD_EQUIVALENTS = {"MLII": "ECG1", "V1": "ECG2", "ECG1": "MLII", "ECG2": "V1"}
SPLIT_PARADIGM = {"time": "within_subject_time", "intra_patient": "intra_patient",
                  "record": "subject_disjoint_random", "kfold": "subject_disjoint_kfold",
                  "inter_patient": "inter_patient", "records": "subject_disjoint_fixed",
                  "external": "external_all_records", "cross_session": "cross_session"}
# Pan & Tompkins 1985 five-point derivative, y(n) = (-x(n-2) - 2x(n-1) + 2x(n+1) + x(n+2)) / 8,
# written as a convolution kernel (np.convolve flips it).
DERIVATIVE_KERNEL = np.array([1.0, 2.0, 0.0, -2.0, -1.0]) / 8.0


def normalize_windows(windows: np.ndarray, method: str) -> np.ndarray:
    """Per-window normalisation (each beat window on its own scale)."""
    if method == "zscore":
        std = windows.std(axis=-1, keepdims=True)
        return (windows - windows.mean(axis=-1, keepdims=True)) / np.maximum(std, 1e-6)
    if method == "minmax":
        low, high = windows.min(axis=-1, keepdims=True), windows.max(axis=-1, keepdims=True)
        return (windows - low) / np.maximum(high - low, 1e-6)
    return windows


def filter_signal(signal: np.ndarray, fs: float, bandpass=None, derivative: bool = False,
                  smoothing_seconds: float | None = None) -> np.ndarray:
    """Band-pass (zero-phase, so beats keep their position), derivative, moving average."""
    if bandpass is not None:
        signal = apply_iir_filter(signal, design_iir_filter(fs, "bandpass", tuple(bandpass), 2))
    if derivative:  # emphasises the steep QRS slopes over the slow P and T waves
        signal = np.convolve(signal, DERIVATIVE_KERNEL * fs, mode="same")
    if smoothing_seconds:
        signal = uniform_filter1d(signal, size=max(1, round(smoothing_seconds * fs)))
    return signal


def detect_r_peaks(signal: np.ndarray, fs: float) -> np.ndarray:
    """R-peak samples: wfdb's GQRS detector, each peak then moved onto the R wave.

    GQRS works in absolute units, and ECG-ID's leads range from 0.3 to 3 mV peak to peak: the
    signal is first scaled to 2 mV between its 0.5th and 99.5th percentiles. (wfdb's XQRS
    found no beat at all in 2 of ECG-ID's 310 records at 500 Hz; GQRS finds beats in all.)
    """
    spread = np.percentile(signal, 99.5) - np.percentile(signal, 0.5)
    qrs = gqrs_detect(signal * (2.0 / max(spread, 1e-6)), fs)
    if len(qrs) == 0:
        return qrs.astype(np.int64)
    peaks = correct_peaks(signal, qrs, search_radius=round(0.05 * fs),
                          smooth_window_size=round(0.02 * fs) or 1, peak_dir="compare")
    return np.unique(peaks[peaks >= 0]).astype(np.int64)


def sliding_window_labels(length: int, width: int, stride: int,
                          beat_samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts of the windows of ``width`` every ``stride`` samples over ``length`` samples, and
    for each the index (into the sorted ``beat_samples``) of the beat nearest its centre among
    those inside it, -1 where no beat lies inside (see the module docstring)."""
    count = (length - width) // stride + 1 if length >= width else 0
    starts = np.arange(count, dtype=np.int64) * stride
    if len(beat_samples) == 0:
        return starts, np.full(count, -1, dtype=np.int64)
    centres = starts + (width - 1) / 2.0
    right = np.clip(np.searchsorted(beat_samples, centres), 1, len(beat_samples) - 1)
    left = right - 1
    if len(beat_samples) == 1:
        nearest = np.zeros(count, dtype=np.int64)
    else:  # the earlier beat wins a tie
        nearest = np.where(centres - beat_samples[left] <= beat_samples[right] - centres, left, right)
    sample = beat_samples[nearest]
    inside = (sample >= starts) & (sample < starts + width)
    return starts, np.where(inside, nearest, -1)


def check_data_files(path: Path, header: wfdb.Record) -> None:
    """A data file whose size is not what its header promises is an error naming both.

    wfdb itself reads a too-long file silently (and a too-short one with a numpy error): a
    header of another record, or a truncated or zero-length ``.dat``, is caught here instead.
    """
    for file_name in dict.fromkeys(header.file_name):
        fmts = [f for f, name in zip(header.fmt, header.file_name) if name == file_name]
        if fmts[0] not in _signal.BYTES_PER_SAMPLE or not _signal.BYTES_PER_SAMPLE[fmts[0]]:
            continue  # compressed (FLAC) formats have no fixed size
        offset = next(o for o, name in zip(header.byte_offset, header.file_name)
                      if name == file_name) or 0
        expected = offset + _signal._required_byte_num("read", fmts[0], header.sig_len * len(fmts))
        data_file = path.parent / file_name
        actual = data_file.stat().st_size if data_file.exists() else 0
        if actual != expected:
            raise ValueError(
                f"record {path}: the header {path}.hea promises {header.sig_len} samples of "
                f"{len(fmts)} signals in format {fmts[0]} ({expected} bytes), the data file "
                f"{data_file} has {actual} bytes - truncated, corrupt, or a header of another record?")


# An annotated beat should sit on a QRS complex, the steepest stretch of an ECG: we count the
# beats whose steepest slope within 60 ms beats the median of the same at evenly spaced places.
# Beats placed without regard to the signal score 0.5 (chance); on both leads of all 48 MIT-BIH
# records, their own .atr scored 0.80 or more (0.98 or more on all but one lead), another
# record's .atr at most 0.53. Checked only with enough beats for the fraction to be sure.
ANNOTATION_FIT_MIN = 0.7
ANNOTATION_FIT_MIN_BEATS = 100


def drop_past_end(path: Path, annotation: wfdb.Annotation, length: int) -> int:
    """Drop the annotations at or past the record's last sample; return how many.

    SVDB record 860's ``.atr`` marks a beat at sample 230,400 of a 230,400-sample record: one
    such mark is a slip of the annotator's tools, not a reason to refuse the database. Many
    beats past the end (more than 1 % of them) still mean the file belongs to a longer record.
    """
    past = annotation.sample >= length
    if not past.any():
        return 0
    beats = np.isin(annotation.symbol, BEAT_SYMBOLS)
    if (past & beats).sum() > max(1, 0.01 * beats.sum()):
        raise ValueError(f"record {path}: {path}.atr marks {(past & beats).sum()} beats at or "
                         f"beyond the record's {length} samples (the last at sample "
                         f"{annotation.sample.max()}): an annotation file of another record?")
    keep = ~past
    annotation.sample = annotation.sample[keep]
    annotation.symbol = list(np.asarray(annotation.symbol)[keep])
    annotation.aux_note = list(np.asarray(annotation.aux_note, dtype=object)[keep])
    return int(past.sum())


def check_annotations_fit(path: Path, signal: np.ndarray, annotation: wfdb.Annotation,
                          fs: float) -> None:
    """An annotation file that does not belong to its record is an error, not silent noise."""
    beats = annotation.sample[np.isin(annotation.symbol, BEAT_SYMBOLS)]
    half = round(0.06 * fs)
    if len(beats) < ANNOTATION_FIT_MIN_BEATS or len(signal) <= 2 * half + 1:
        return
    slope = np.abs(np.diff(signal, prepend=signal[0]))
    offsets = np.arange(-half, half + 1)

    def steepest(positions: np.ndarray) -> np.ndarray:
        return slope[np.clip(positions[:, None] + offsets, 0, len(slope) - 1)].max(axis=1)

    elsewhere = np.median(steepest(np.linspace(half, len(signal) - half - 1, 2000).astype(np.int64)))
    fit = float(np.mean(steepest(beats) > elsewhere))
    if fit < ANNOTATION_FIT_MIN:
        raise ValueError(f"record {path}: the beats of {path}.atr do not fall on its QRS "
                         f"complexes (only {fit:.0%} of them sit on a stretch steeper than the "
                         f"record's median, {ANNOTATION_FIT_MIN:.0%} expected; 50 % is chance): "
                         "an annotation file of another record? If they are right (a very noisy "
                         "record), data.check_annotations=false skips this check")


# A window whose raw signal moves less than this (physical units: 10 uV for mV records) is a
# flat line (lead off, saturated amplifier), not a beat: dropped and counted.
FLAT_PEAK_TO_PEAK = 0.01


def is_flat(raw: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Which windows ``raw[start:start + width]`` are flat lines."""
    if len(starts) == 0:
        return np.zeros(0, dtype=bool)
    windows = np.lib.stride_tricks.sliding_window_view(raw, width)[starts]
    return np.ptp(windows, axis=1) < FLAT_PEAK_TO_PEAK


def median_beat(windows: np.ndarray, symbols: np.ndarray,
                chosen: np.ndarray | None = None) -> np.ndarray:
    """A record's template for ``record_template``: the median of its beat windows, per lead
    and sample (``[leads, samples]``; zeros for a record without beats), over the ``chosen``
    windows only where given and any is a beat. Computed once, when the record is read, and
    cached with its windows."""
    beats = np.isin(symbols, BEAT_SYMBOLS)
    if chosen is not None and (beats & chosen).any():
        beats &= chosen
    if not beats.any():
        return np.zeros(windows.shape[1:], dtype=np.float32)
    return np.median(windows[beats], axis=0).astype(np.float32)


def on_time_beats(samples: np.ndarray, beat_samples: np.ndarray, gap_samples: np.ndarray,
                  fs: float, local_beats: int, gap_seconds: float) -> np.ndarray:
    """Which of the beats at ``samples`` are not early: their RR interval from the previous
    beat is at least the local mean interval (``pre_local`` >= 1, data/rr.py).

    ``record_template_beats=on_time`` takes a record's median beat over these only. Ectopic
    beats (S and V) come early, so in a record where they are many the median of every beat
    drifts toward them, and where they are most beats it is one of them: the difference from
    it then hides them. Over DS1's records the share of non-N beats falls from 0-46 % among
    all beats to 0-8 % among these (208: 46 -> 7 %, 119: 22 -> 0 %; 20-beat local mean)."""
    if len(beat_samples) < 2:  # no interval: every beat counts
        return np.ones(len(samples), dtype=bool)
    pre_local = rr_features(samples, beat_samples, gap_samples, fs, ["pre_local"],
                            local_beats, gap_seconds)[:, 0]
    return pre_local >= 1.0


def with_record_template(windows: np.ndarray, templates: np.ndarray, mode: str | None) -> np.ndarray:
    """``record_template``: each window minus its record's template (``templates``: one per
    window, ``median_beat`` of its record), per lead (``subtract``), or both side by side
    (``append``: ``[N, 2 * leads, T]``); ``None`` keeps the windows.

    The median beat of a record is its patient's usual beat; the difference from it is what a
    beat does unlike that patient's others, which carries across patients better than the raw
    shape (a ventricular beat differs from its record's median, a supraventricular one barely).
    Computed from the record's own beats, without their labels, so ``predict`` does the same on
    a new record.
    """
    if mode is None:
        return windows
    difference = windows - templates
    return difference if mode == "subtract" else np.concatenate([windows, difference], axis=1)


def resolve_leads(lead: str | None, leads, default: str):
    """``data.lead`` (one lead, the shorthand) and ``data.leads`` as one value: a list of
    names, ``"all"`` or ``"first"``; both unset reads the database's ``default`` lead."""
    if lead is not None and leads is not None:
        raise ValueError(f"data.lead={lead!r} and data.leads={leads!r} are both set: data.lead is "
                         f"the one-lead shorthand of data.leads=[{lead}]; set one of them to null")
    if leads is None:
        return [str(lead if lead is not None else default)]
    if isinstance(leads, str):
        if leads not in ("all", "first"):
            raise ValueError(f"data.leads={leads!r}: give a list of lead names (e.g. [MLII, V1]), "
                             "all (every channel, MLII first) or first (each record's first channel)")
        return leads
    leads = [str(name) for name in leads]
    if not leads or len(set(leads)) != len(leads):
        raise ValueError(f"data.leads={leads}: give distinct lead names, e.g. [MLII, V1]")
    return leads


def choose_channels(header: wfdb.Record, leads) -> list[str] | None:
    """The channel names to read, in order; ``None`` when the record lacks a named lead.

    ``leads``: a list of names; ``"all"``: every channel, MLII first where the record has it
    (de Chazal et al. 2004 used MLII and each record's other lead, whatever it is);
    ``"first"``: the record's first channel.
    """
    names = list(header.sig_name)
    if leads == "first":
        return names[:1]
    if leads == "all":
        return sorted(names, key=lambda name: name != "MLII")  # stable: header order otherwise
    return list(leads) if all(lead in names for lead in leads) else None


def pad_windows(signal: np.ndarray, centres: np.ndarray, pre: int, post: int) -> np.ndarray:
    """``[n, C, pre + post]`` windows of ``signal`` ``[C, T]`` starting ``pre`` before each centre;
    a window that crosses the record's edge is padded with the edge value (so every annotated
    beat is an item, and the published per-class counts hold)."""
    padded = np.pad(signal, ((0, 0), (pre, post)), mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, pre + post, axis=1)  # [C, T+1, W]
    return np.moveaxis(view[:, centres], 0, 1)  # centre c starts at padded index c


def read_beat_windows(path: Path, leads, fs: float | None, bandpass, derivative: bool,
                      smoothing_seconds: float | None, pre_seconds: float, post_seconds: float,
                      normalize: str, beats: str = "annotations",
                      max_seconds: float | None = None, segmentation: str = "beats",
                      window_seconds: float | None = None,
                      stride_seconds: float | None = None,
                      check_annotations: bool = True, template: bool = False,
                      template_beats: str = "all", rr_local_beats: int = 10,
                      rr_gap_seconds: float = 3.0) -> dict:
    """Windows ``[n, leads, samples]`` around every beat position of one record.

    ``leads``: a list of channel names, ``"all"`` or ``"first"`` (see ``choose_channels``); a
    record without a named lead returns ``{"missing_leads": ..., "record_leads": ...}``.
    ``max_seconds`` reads only the start of long records (nsrdb holds 24 h per subject).
    Windows that cross the record's edge are padded with the edge value and counted
    (``padded_at_edges``). ``segmentation="sliding"`` cuts windows of ``window_seconds`` every
    ``stride_seconds`` instead, each named by its centre beat (``samples`` is then that beat's
    sample, ``starts`` the window's first sample). Also returned, for RR features: every beat
    position (``beat_samples``) and every ``~`` signal-quality mark (``gap_samples``).
    ``template``: also the record's median beat, over every beat (``template_beats="all"``)
    or over the beats that are not early (``"on_time"``, see ``on_time_beats``; its local
    mean spans ``rr_local_beats`` intervals).
    """
    # The header is read here and again by rdrecord: about 1 ms a record, less than reading
    # every channel to get their sizes from rdrecord alone (+12 % cold mitdb preparation, measured).
    header = wfdb.rdheader(str(path))
    check_data_files(path, header)
    channels = choose_channels(header, leads)
    if channels is None:
        return {"missing_leads": [lead for lead in leads if lead not in header.sig_name],
                "record_leads": list(header.sig_name)}
    sampto = None if max_seconds is None else min(header.sig_len, round(max_seconds * header.fs))
    try:
        record = wfdb.rdrecord(str(path), sampto=sampto, channel_names=channels)
    except Exception as error:  # e.g. a byte layout other than the header's
        raise ValueError(f"record {path}: cannot read its signal ({error}): corrupt data file?") from error
    signal = record.p_signal  # [T, C]
    for channel, name in enumerate(record.sig_name):
        missing = np.flatnonzero(~np.isfinite(signal[:, channel]))
        if len(missing):  # wfdb reads a WFDB "invalid sample" as NaN
            raise ValueError(f"record {path}: lead {name} holds {len(missing)} NaN or "
                             f"infinite samples, the first at sample {missing[0]} "
                             f"({missing[0] / record.fs:.2f} s); leave the record out (data.root "
                             "with a RECORDS file without it) or read another lead")
    rate = record.fs
    past_end = 0
    gap_samples = np.zeros(0, dtype=np.int64)
    if beats == "annotations":
        try:
            annotation = wfdb.rdann(str(path), "atr", sampto=sampto)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"record {path}: annotation file {path}.atr is missing") from error
        past_end = drop_past_end(path, annotation, len(signal))
        if check_annotations:
            check_annotations_fit(path, signal[:, 0], annotation, rate)
        if fs is not None and fs != rate:
            signal, annotation = resample_multichan(signal, annotation, rate, fs)
            rate = fs
            past_end += drop_past_end(path, annotation, len(signal))  # rounding at the end
        samples, symbols = annotation.sample, np.asarray(annotation.symbol)
        gap_samples = samples[symbols == "~"].astype(np.int64)
    else:
        if fs is not None and fs != rate:
            signal = np.stack([resample_sig(signal[:, c], rate, fs)[0]
                               for c in range(signal.shape[1])], axis=1)
            rate = fs
        samples = detect_r_peaks(signal[:, 0], rate)
        symbols = np.full(len(samples), "N")  # the detector finds beats, not their types
    raw = signal.T  # [C, T]
    signal = np.stack([filter_signal(lead, rate, bandpass, derivative, smoothing_seconds)
                       for lead in raw])
    is_beat = np.isin(symbols, BEAT_SYMBOLS)
    beat_samples = np.unique(samples[is_beat]).astype(np.int64)
    common = {"beat_samples": beat_samples, "gap_samples": gap_samples, "fs": float(rate),
              "leads": list(record.sig_name), "annotations_past_end": past_end}

    if segmentation == "sliding":
        order = np.argsort(samples[is_beat], kind="stable")
        sorted_samples, sorted_symbols = samples[is_beat][order], symbols[is_beat][order]
        width = round(window_seconds * rate)
        starts, nearest = sliding_window_labels(signal.shape[1], width,
                                                round(stride_seconds * rate), sorted_samples)
        named = nearest >= 0
        flat = is_flat(raw[0], starts[named], width)
        keep = np.flatnonzero(named)[~flat]
        windows = pad_windows(signal, starts[keep], 0, width)
        return {**common, "windows": normalize_windows(windows.astype(np.float32), normalize),
                "symbols": sorted_symbols[nearest[keep]],
                "samples": sorted_samples[nearest[keep]].astype(np.int64),
                "starts": starts[keep], "windows_without_beat": int((~named).sum()),
                "flat_windows": int(flat.sum()), "padded_at_edges": 0}

    pre, post = round(pre_seconds * rate), round(post_seconds * rate)
    crosses_edge = (samples - pre < 0) | (samples + post > signal.shape[1])
    flat = is_flat(np.pad(raw[0], (pre, post), mode="edge"), samples, pre + post)
    keep = np.flatnonzero(~flat)
    windows = normalize_windows(pad_windows(signal, samples[keep], pre, post).astype(np.float32),
                                normalize)
    if template:  # one [leads, samples] median beat per record, for data.record_template
        chosen = None if template_beats == "all" else on_time_beats(
            samples[keep], beat_samples, gap_samples, rate, rr_local_beats, rr_gap_seconds)
        common["template"] = median_beat(windows, symbols[keep], chosen)[None]
    return {**common, "windows": windows,
            "symbols": symbols[keep], "samples": samples[keep].astype(np.int64),
            "padded_at_edges": int(crosses_edge[keep].sum()), "flat_windows": int(flat.sum())}


class BeatDataModule(ECGDataModule):
    """Beat windows of a WFDB database listed in ``RECORDS`` (see the module docstring).

    A database subclass sets ``slug``, ``physionet_version``, ``splits_offered`` and
    ``symbols`` (its annotation symbols for the ``symbols`` scheme), and may override
    ``subject_of`` (records of one person), ``selected_records`` (records left out) and
    ``split_indices`` (database-specific splits).
    """

    splits_offered: tuple[str, ...] = ("time", "intra_patient", "record", "kfold")
    label_schemes: tuple[str, ...] = (*LABEL_SCHEMES, "identification")
    symbols: tuple[str, ...] = MITDB_SYMBOLS
    default_lead: str = "MLII"  # what lead=null and leads=null read

    def __init__(self, lead: str | None = None, leads=None, fs: float | None = None,
                 bandpass: tuple[float, float] | None = (0.5, 40.0), derivative: bool = False,
                 smoothing_seconds: float | None = None, pre_seconds: float = 0.25,
                 post_seconds: float = 0.45, normalize: str = "zscore",
                 beats: str = "annotations", max_seconds: float | None = None,
                 label_scheme: str = "aami", split: str = "time", val_fraction: float = 0.1,
                 test_fraction: float = 0.2, fold: int = 0, num_folds: int = 5,
                 purge: int = 1, segmentation: str = "beats", window_seconds: float | None = None,
                 stride_seconds: float | None = None, check_annotations: bool = True,
                 rr_features: list[str] | None = None, rr_local_beats: int = 10,
                 rr_gap_seconds: float = 3.0, rr_scaling: str = "standard",
                 record_template: str | None = None, record_template_beats: str = "all",
                 beat_symbols: list[str] | None = None, **base) -> None:
        super().__init__(split=split, **base)
        for option, value, valid in (("label_scheme", label_scheme, self.label_schemes),
                                     ("split", split,
                                      (*self.splits_offered, "external", "cross_session")),
                                     ("normalize", normalize, NORMALIZATIONS),
                                     ("beats", beats, BEAT_SOURCES),
                                     ("segmentation", segmentation, SEGMENTATIONS)):
            if value not in valid:
                raise ValueError(f"data.{option}={value!r} is unknown for {self.slug}; "
                                 f"valid: {', '.join(valid)}")
        if segmentation == "sliding":
            for option, value in (("window_seconds", window_seconds),
                                  ("stride_seconds", stride_seconds)):
                if value is None or not value > 0:
                    raise ValueError(f"data.segmentation=sliding needs data.{option} > 0 "
                                     f"(seconds), got {value!r}")
        # Identification tests people the model has seen: a subject-disjoint split cannot.
        # intra_patient (random beats) is allowed only to test whether a paper's figure comes
        # from its protocol: a test beat's neighbours train, and the card says intra_patient.
        if label_scheme == "identification" and split not in ("time", "cross_session",
                                                              "intra_patient"):
            raise ValueError(f"data.label_scheme=identification needs data.split=time (earlier "
                             f"beats train, later beats test), cross_session (later days test) "
                             f"or intra_patient (random beats, leaky), not {split!r}: "
                             "subject-disjoint splits test on people the model never saw")
        self.leads = resolve_leads(lead, leads, self.default_lead)
        self.fs = fs
        self.rr_features = check_rr_features(rr_features)
        if not (isinstance(rr_local_beats, int) and rr_local_beats >= 1):
            raise ValueError(f"data.rr_local_beats={rr_local_beats!r} must be a positive integer")
        if not rr_gap_seconds > 0:
            raise ValueError(f"data.rr_gap_seconds={rr_gap_seconds!r} must be > 0 seconds")
        if rr_scaling not in RR_SCALINGS:
            raise ValueError(f"data.rr_scaling={rr_scaling!r} is unknown; valid: "
                             f"{', '.join(RR_SCALINGS)}")
        if self.rr_features and segmentation == "sliding":
            raise ValueError("data.rr_features describe one beat, and a sliding window spans "
                             "several: use data.segmentation=beats with them")
        self.rr_local_beats, self.rr_gap_seconds = rr_local_beats, float(rr_gap_seconds)
        self.rr_scaling = rr_scaling
        if record_template is not None and record_template not in TEMPLATES:
            raise ValueError(f"data.record_template={record_template!r} is unknown; valid: "
                             f"{', '.join(TEMPLATES)} or null")
        if record_template is not None and (segmentation == "sliding" or self.spectrogram):
            raise ValueError("data.record_template subtracts a record's median beat from beat "
                             "windows: it needs data.segmentation=beats and no data.spectrogram")
        if record_template_beats not in TEMPLATE_BEATS:
            raise ValueError(f"data.record_template_beats={record_template_beats!r} is unknown; "
                             f"valid: {', '.join(TEMPLATE_BEATS)}")
        self.record_template = record_template
        self.record_template_beats = record_template_beats
        # Only beats with these annotation symbols become items (a paper's own selection,
        # e.g. the normal-vs-abnormal study's code keeps N V A F S); null keeps every beat.
        if beat_symbols is not None:
            unknown = sorted(set(beat_symbols) - set(BEAT_SYMBOLS))
            if unknown or not beat_symbols:
                raise ValueError(f"data.beat_symbols={list(beat_symbols)}: {unknown or 'empty'} "
                                 f"not beat annotation symbols; valid: {''.join(BEAT_SYMBOLS)}")
        self.beat_symbols = None if beat_symbols is None else [str(b) for b in beat_symbols]
        self.bandpass = None if bandpass is None else [float(f) for f in bandpass]
        self.derivative, self.smoothing_seconds = derivative, smoothing_seconds
        self.pre_seconds, self.post_seconds = pre_seconds, post_seconds
        self.normalize, self.beats, self.max_seconds = normalize, beats, max_seconds
        self.label_scheme = label_scheme
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.fold, self.num_folds, self.purge = fold, num_folds, purge
        self.segmentation = segmentation
        sliding = segmentation == "sliding"  # the window options only mean something then
        self.window_seconds = float(window_seconds) if sliding else None
        self.stride_seconds = float(stride_seconds) if sliding else None
        self.check_annotations = check_annotations

    @property
    def split_paradigm(self) -> str:
        return SPLIT_PARADIGM[self.split]

    # ------------------------------------------------------------------ records and subjects
    def record_names(self) -> list[str]:
        listing = self.root / "RECORDS"
        if not listing.exists():
            raise FileNotFoundError(f"{listing} is missing: {self.root} is not a {self.slug} folder")
        names = listing.read_text().split()
        if not names:
            raise ValueError(f"{listing} lists no record")
        return names

    def subject_of(self, record: str) -> str:
        """The person a record belongs to (one record per person unless overridden)."""
        return record

    def selected_records(self) -> list[str]:
        """The records this configuration uses (all of them unless overridden)."""
        return self.record_names()

    def record_path(self, record: str) -> Path:
        """Where a record's files are (without extension)."""
        return self.root / record

    def recording_day(self, record: str) -> date | None:
        """The day a record was made: its header's base date (``None`` when it has none)."""
        return wfdb.rdheader(str(self.record_path(record))).base_date

    # ------------------------------------------------------------------ cache
    def preprocessing_config(self) -> dict:
        # The record list is part of the key: a folder holding other records (data.root) must
        # not read the arrays cached for this one.
        config = {"leads": self.leads, "fs": self.fs, "bandpass": self.bandpass,
                  "derivative": self.derivative, "smoothing_seconds": self.smoothing_seconds,
                  "pre_seconds": self.pre_seconds, "post_seconds": self.post_seconds,
                  "normalize": self.normalize, "beats": self.beats, "max_seconds": self.max_seconds,
                  "records": self.record_names(), "version": 5}
        if self.segmentation == "sliding":  # beat-centred configs keep their existing keys
            config.update(segmentation="sliding", window_seconds=self.window_seconds,
                          stride_seconds=self.stride_seconds)
        if self.record_template is not None:  # the median beats are cached with the windows
            config["templates"] = True if self.record_template_beats == "all" else {
                "beats": self.record_template_beats, "local_beats": self.rr_local_beats,
                "gap_seconds": self.rr_gap_seconds}
        return config

    def read_options(self) -> dict:
        """How ``read_beat_windows`` reads a record of this config (``predict`` reuses it):
        the ``READ_OPTIONS`` and the leads, under ``read_beat_windows``' names."""
        options = {name: getattr(self, name) for name in READ_OPTIONS}
        options["template"] = options.pop("record_template") is not None
        options["template_beats"] = options.pop("record_template_beats")
        return {"leads": self.leads, **options}

    def build_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        names = self.record_names()
        read = partial(read_beat_windows, **self.read_options())
        # Records are independent: one process per core roughly halves a cold build.
        with ProcessPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1)) as pool:
            per_record = dict(zip(names, pool.map(read, [self.record_path(n) for n in names])))
        kept = {name: r for name, r in per_record.items() if "missing_leads" not in r}
        missing = {name: r["record_leads"] for name, r in per_record.items()
                   if "missing_leads" in r}
        if not kept:
            raise ValueError(f"no {self.slug} record in {self.root} has the leads {self.leads} "
                             f"(records and their leads: {missing}); choose other data.leads")
        empty = [name for name, r in kept.items() if len(r["samples"]) == 0]
        if empty:
            raise ValueError(f"{self.slug} records {empty} in {self.root} yield no beat window "
                             f"(beats={self.beats}); check the records or leave them out")
        widths = {r["windows"].shape[1] for r in kept.values()}
        if len(widths) != 1:  # leads=all over records of different channel counts
            raise ValueError(f"{self.slug} records hold different numbers of channels "
                             f"({sorted(widths)}) for data.leads={self.leads}; name the leads")

        def joined(key: str) -> np.ndarray:
            return np.concatenate([r[key] for r in kept.values()])

        def owners(key: str) -> np.ndarray:  # the record of every row of ``key``
            return np.concatenate([np.full(len(r[key]), name) for name, r in kept.items()]).astype(str)

        arrays = {"windows": joined("windows"), "symbols": joined("symbols").astype("<U1"),
                  "records": owners("symbols"), "samples": joined("samples"),
                  # every beat position and ~ mark of every record, for RR features
                  "beat_samples": joined("beat_samples"), "beat_records": owners("beat_samples"),
                  "gap_samples": joined("gap_samples"), "gap_records": owners("gap_samples")}
        if self.segmentation == "sliding":  # each window's first sample (samples: its centre beat)
            arrays["starts"] = joined("starts")
        if self.record_template is not None:  # one median beat per record
            arrays["templates"] = joined("template")
            arrays["template_records"] = owners("template")
        per_record = {key: {n: r[key] for n, r in kept.items()}
                      for key in ("leads", "padded_at_edges", "flat_windows",
                                  "annotations_past_end")}
        info = {"fs": next(iter(kept.values()))["fs"], **per_record, "missing_lead": missing,
                "window_leads": widths.pop()}
        if self.segmentation == "sliding":
            info["windows_without_beat"] = {n: r["windows_without_beat"] for n, r in kept.items()}
        return arrays, info

    # ------------------------------------------------------------------ items and splits
    def setup_items(self, arrays: dict[str, np.ndarray], info: dict) -> None:
        self.info = info
        self._item_days = None  # recording days of these items, read when a split asks
        wanted = self.selected_records()
        missing = {r: info["missing_lead"][r] for r in wanted if r in info["missing_lead"]}
        if missing:
            listed = "; ".join(f"{label}: {', '.join(missing[r])}" for r, label
                               in zip(missing, self.record_labels(list(missing))))
            raise ValueError(f"{self.slug} records lack data.leads={self.leads} (their leads: "
                             f"{listed}); choose leads they all have, data.leads=all (every "
                             "channel, MLII first), or leave the records out")
        records = np.asarray(arrays["records"])
        subjects = np.array([self.subject_of(r) for r in records])
        if self.label_scheme == "identification":
            self.class_names = sorted({self.subject_of(r) for r in wanted})
            is_beat = encode_symbols(arrays["symbols"], "aami", scheme_classes("aami")) >= 0
            labels = np.where(is_beat, np.searchsorted(self.class_names, subjects), -1)
        else:
            self.class_names = scheme_classes(self.label_scheme, self.symbols)
            labels = encode_symbols(arrays["symbols"], self.label_scheme, self.class_names)
        if self.beat_symbols is not None:
            labels = np.where(np.isin(arrays["symbols"], self.beat_symbols), labels, -1)
        keep = np.flatnonzero((labels >= 0) & np.isin(records, wanted))
        self.item_index = keep  # position of each item in the cached arrays
        self.targets = labels[keep]
        self.records = records[keep]
        self.samples = arrays["samples"][keep]
        self.groups = subjects[keep]
        windows = np.asarray(arrays["windows"][keep])  # [N, leads, T]
        if self.record_template is not None:  # each item's record's cached median beat
            template_of = {name: i for i, name in enumerate(arrays["template_records"])}
            index = np.array([template_of[r] for r in records[keep]], dtype=np.int64)
            windows = with_record_template(windows, np.asarray(arrays["templates"])[index],
                                           self.record_template)
        self.raw_inputs = {SIGNAL: windows}  # [N, leads (x 2 for append), T]
        if self.rr_features:
            self.raw_inputs["rr"] = self.rr_of_items(arrays)

    def item_records(self) -> np.ndarray:
        return self.records

    def rr_of_items(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """``[N, len(rr_features)]`` RR features of the items, record by record."""
        values = np.zeros((len(self.samples), len(self.rr_features)), dtype=np.float32)
        beat_records, gap_records = arrays["beat_records"], arrays["gap_records"]
        records = self.records.astype(str)
        for record in np.unique(records):
            mine = np.flatnonzero(records == record)
            values[mine] = self.rr_of_record(
                self.samples[mine], arrays["beat_samples"][beat_records == record],
                arrays["gap_samples"][gap_records == record], self.info["fs"],
                f"{self.slug}/{record}")
        return values

    def rr_of_record(self, samples, beat_samples, gap_samples, fs: float, record: str) -> np.ndarray:
        """The configured RR features (``rr.py``) of one record's beats at ``samples``."""
        return rr_features(samples, beat_samples, gap_samples, fs, self.rr_features,
                           self.rr_local_beats, self.rr_gap_seconds, record=record)

    def fitted_transforms(self) -> list[FittedTransform]:
        transforms = super().fitted_transforms()
        if self.rr_features and self.rr_scaling == "standard":
            transforms.append(FittedTransform("rr_scaling", "rr", StandardScaler(),
                                              option="data.rr_scaling=standard"))
        return transforms

    @property
    def sampling_rate_hz(self) -> float | None:
        return float(self.info["fs"]) if getattr(self, "info", None) else None

    def record_labels(self, names: list[str]) -> list:
        """Record names as the database writes them (mitdb: numbers) for messages and cards."""
        return list(names)

    def time_order(self) -> np.ndarray:
        """Chronological rank of every item within its subject: record order, then sample."""
        position = {name: i for i, name in enumerate(self.record_names())}
        record_rank = np.array([position[str(r)] for r in self.records], dtype=np.int64)
        return np.lexsort((self.samples, record_rank))

    def split_indices(self) -> dict[str, np.ndarray]:
        if self.split == "external":  # a model trained elsewhere tests on every record
            every = np.arange(len(self.targets))
            return {"train": every[:0], "val": every[:0], "test": every}
        if self.split == "time":
            purge = self.purge
            if self.segmentation == "sliding":  # a window overlaps its next W/S - 1 neighbours
                purge = max(purge, math.ceil(self.window_seconds / self.stride_seconds) - 1)
            return time_split(self.groups, self.time_order(), self.val_fraction,
                              self.test_fraction, purge)
        if self.split == "cross_session":
            return cross_session_split(self.groups, self.item_days(), self.time_order(),
                                       self.val_fraction, self.purge)
        if self.split == "intra_patient":
            return stratified_split(self.targets, self.val_fraction, self.test_fraction, self.seed)
        if self.split == "record":
            return group_split(self.groups, self.val_fraction, self.test_fraction, self.seed)
        return group_kfold(self.groups, self.fold, self.num_folds, self.seed)

    def item_days(self) -> np.ndarray:
        """Every item's recording day (an ordinal), for ``split=cross_session``; an error names
        the database when its records carry no date or no subject has two days. Read from the
        headers once per setup (the split and the card both ask)."""
        if self._item_days is not None:
            return self._item_days
        records = sorted(set(self.records.astype(str)))
        days = {record: self.recording_day(record) for record in records}
        undated = [r for r, day in days.items() if day is None]
        if undated:
            raise ValueError(f"data.split=cross_session needs the day each record was made, and "
                             f"{len(undated)} of the {len(records)} {self.slug} records carry "
                             f"none (e.g. {', '.join(self.record_labels(undated[:3]))}: no base "
                             "date in the header); use data.split=time, or a database whose "
                             "records are dated (ecgiddb)")
        per_subject = {}
        for record, day in days.items():
            per_subject.setdefault(self.subject_of(record), set()).add(day)
        if max(len(d) for d in per_subject.values()) < 2:
            raise ValueError(f"data.split=cross_session tests on later recording days, but no "
                             f"{self.slug} subject was recorded on two days (of "
                             f"{len(per_subject)} subjects); use data.split=time")
        self._item_days = np.array([days[str(r)].toordinal() for r in self.records],
                                   dtype=np.int64)
        return self._item_days

    def sessions_per_split(self) -> dict:
        """Subjects, subject-days and items of every split (``split=cross_session``'s card)."""
        days = self.item_days()
        return {name: {"subjects": int(len(np.unique(self.groups[idx]))),
                       "subject_days": int(len({(g, d) for g, d in zip(self.groups[idx], days[idx])})),
                       "items": int(len(idx))}
                for name, idx in self.splits.items()}

    def data_facts(self) -> dict:
        # predict and evaluate read new records as the training data was read
        return {**super().data_facts(), "lead_names": self.leads, "rr_features": self.rr_features,
                "identification": self.label_scheme == "identification",
                "window_leads": int(self.info["window_leads"]) if "window_leads" in self.info
                else None,
                "scored_classes": scored_classes(self.label_scheme)}

    # ------------------------------------------------------------------ pictures (summary --plots)
    def record_strip(self, record: str, seconds: float, centre: int | None = None):
        """``(time s, signal, annotation samples, symbols, title)`` of the raw lead, via wfdb."""
        path = str(self.record_path(record))
        fs = wfdb.rdheader(path).fs
        half = round(seconds * fs / 2)
        start = 0 if centre is None else max(0, centre - half)
        stop = start + round(seconds * fs)
        lead = self.info["leads"][record][0]  # the first lead read
        signal = wfdb.rdrecord(path, sampfrom=start, sampto=stop, channel_names=[lead]).p_signal[:, 0]
        mine = (self.records.astype(str) == record) & (self.samples >= start) & (self.samples < stop)
        marks = self.samples[mine] - start
        names = [self.class_names[t] for t in self.targets[mine]] if self.task == "multiclass" else []
        title = f"{self.slug} {record}, {lead}, {start / fs:.1f}-{stop / fs:.1f} s (raw)"
        return (np.arange(len(signal)) / fs, signal, marks / fs, names, title)

    def first_abnormal_beat(self, record: str) -> int | None:
        """Sample of the record's first beat outside the first class (N / normal), if any."""
        if self.label_scheme == "identification":
            return None
        mine = np.flatnonzero((self.records.astype(str) == record) & (self.targets > 0))
        return int(self.samples[mine[0]]) if len(mine) else None

    def describe_preprocessing(self) -> dict:
        used = set(np.unique(self.records).astype(str))
        leads = sorted({"+".join(names) for record, names in self.info["leads"].items()
                        if str(record) in used})
        if self.segmentation == "sliding":
            window = {"segmentation": "sliding", "window": self.window_seconds,
                      "stride": self.stride_seconds,
                      "label": "the beat annotation nearest the window centre",
                      "windows_without_beat_dropped": sum(self.info["windows_without_beat"].values())}
        else:
            window = {"pre": self.pre_seconds, "post": self.post_seconds}
        return {"split_paradigm": self.split_paradigm, "label_scheme": self.label_scheme,
                "sampling_rate_hz": self.info["fs"], "leads": leads, "window_seconds": window,
                "window_samples": int(self.raw_inputs[SIGNAL].shape[2]), "bandpass_hz": self.bandpass,
                "derivative_filter": self.derivative,
                "smoothing_seconds": self.smoothing_seconds, "normalize": self.normalize,
                "beat_positions": self.beats, "max_seconds_per_record": self.max_seconds,
                "records_per_split": {name: self.record_labels(sorted(np.unique(self.records[idx])))
                                      for name, idx in self.splits.items()},
                "windows_padded_at_record_edges": sum(self.info["padded_at_edges"].values()),
                "annotations_past_record_end": {
                    str(r): n for r, n in self.info["annotations_past_end"].items() if n},
                "flat_line_windows_dropped": sum(self.info.get("flat_windows", {}).values()),
                "record_template": self.record_template,
                "record_template_beats": self.record_template_beats,
                "beat_symbols": self.beat_symbols or "every beat",
                **({"sessions_per_split": self.sessions_per_split()}
                   if self.split == "cross_session" else {}),
                "rr_features": None if not self.rr_features else {
                    "features": self.rr_features, "local_beats": self.rr_local_beats,
                    "gap_seconds": self.rr_gap_seconds, "scaling": self.rr_scaling,
                    "beat_positions": self.beats}}
