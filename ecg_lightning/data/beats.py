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

Splits offered here (a database adds its own, e.g. mitdb's ``inter_patient``):

* ``time``: within every subject, earlier beats train, later beats validate, the last ones
  test (the identification paradigm; random beats would put neighbours on both sides);
* ``intra_patient``: stratified random beats (patient-leaky; logged as such);
* ``record``: random whole subjects, seeded; ``kfold``: subject-disjoint k-fold.

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
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import wfdb
from neurodsp.filt.iir import apply_iir_filter, design_iir_filter
from scipy.ndimage import uniform_filter1d
from wfdb.io import _signal
from wfdb.processing import correct_peaks, gqrs_detect, resample_sig, resample_singlechan

from ecg_lightning.data.base import ECGDataModule
from ecg_lightning.data.labels import (BEAT_SYMBOLS, LABEL_SCHEMES, MITDB_SYMBOLS, encode_symbols,
                                       scheme_classes)
from ecg_lightning.data.splits import group_kfold, group_split, stratified_split, time_split

NORMALIZATIONS = ("zscore", "minmax", "none")
BEAT_SOURCES = ("annotations", "detector")
SEGMENTATIONS = ("beats", "sliding")
SPLIT_PARADIGM = {"time": "within_subject_time", "intra_patient": "intra_patient",
                  "record": "subject_disjoint_random", "kfold": "subject_disjoint_kfold",
                  "inter_patient": "inter_patient", "records": "subject_disjoint_fixed"}
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


def check_annotations_fit(path: Path, signal: np.ndarray, annotation: wfdb.Annotation,
                          fs: float) -> None:
    """An annotation file that does not belong to its record is an error, not silent noise."""
    beats = annotation.sample[np.isin(annotation.symbol, BEAT_SYMBOLS)]
    if len(beats) and beats.max() >= len(signal):
        raise ValueError(f"record {path}: {path}.atr marks a beat at sample {beats.max()}, "
                         f"beyond the record's {len(signal)} samples: an annotation file of "
                         "another record?")
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


def read_beat_windows(path: Path, lead: str | None, fs: float | None, bandpass, derivative: bool,
                      smoothing_seconds: float | None, pre_seconds: float, post_seconds: float,
                      normalize: str, beats: str = "annotations",
                      max_seconds: float | None = None, segmentation: str = "beats",
                      window_seconds: float | None = None,
                      stride_seconds: float | None = None,
                      check_annotations: bool = True) -> dict | None:
    """Windows around every beat position of one record; ``None`` if it lacks ``lead``.

    ``lead=None`` reads each record's first channel. ``max_seconds`` reads only the start of
    long records (nsrdb holds 24 h per subject). Beats too close to either end for a full
    window are dropped and counted. ``segmentation="sliding"`` cuts windows of
    ``window_seconds`` every ``stride_seconds`` instead, each named by its centre beat
    (``samples`` is then that beat's sample, ``starts`` the window's first sample).
    """
    # The header is read here and again by rdrecord: about 1 ms a record, less than reading
    # every channel to get their sizes from rdrecord alone (+12 % cold mitdb preparation, measured).
    header = wfdb.rdheader(str(path))
    check_data_files(path, header)
    sampto = None if max_seconds is None else min(header.sig_len, round(max_seconds * header.fs))
    channels = {"channels": [0]} if lead is None else {"channel_names": [lead]}
    try:
        record = wfdb.rdrecord(str(path), sampto=sampto, **channels)
    except Exception as error:  # e.g. a byte layout other than the header's
        raise ValueError(f"record {path}: cannot read its signal ({error}): corrupt data file?") from error
    if record.sig_name is None:  # wfdb returns no signal when the record lacks the lead
        return None
    signal = record.p_signal[:, 0]
    missing = np.flatnonzero(~np.isfinite(signal))
    if len(missing):  # wfdb reads a WFDB "invalid sample" as NaN
        raise ValueError(f"record {path}: lead {record.sig_name[0]} holds {len(missing)} NaN or "
                         f"infinite samples, the first at sample {missing[0]} "
                         f"({missing[0] / record.fs:.2f} s); leave the record out (data.root with "
                         "a RECORDS file without it) or read another lead")
    rate = record.fs

    if beats == "annotations":
        try:
            annotation = wfdb.rdann(str(path), "atr", sampto=sampto)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"record {path}: annotation file {path}.atr is missing") from error
        if check_annotations:
            check_annotations_fit(path, signal, annotation, rate)
        if fs is not None and fs != rate:
            signal, annotation = resample_singlechan(signal, annotation, rate, fs)
            rate = fs
        samples, symbols = annotation.sample, np.asarray(annotation.symbol)
    else:
        if fs is not None and fs != rate:
            signal, _ = resample_sig(signal, rate, fs)
            rate = fs
        samples = detect_r_peaks(signal, rate)
        symbols = np.full(len(samples), "N")  # the detector finds beats, not their types
    raw, signal = signal, filter_signal(signal, rate, bandpass, derivative, smoothing_seconds)

    if segmentation == "sliding":
        is_beat = np.isin(symbols, BEAT_SYMBOLS)  # rhythm and noise marks name no window
        order = np.argsort(samples[is_beat], kind="stable")
        beat_samples, beat_symbols = samples[is_beat][order], symbols[is_beat][order]
        width = round(window_seconds * rate)
        starts, nearest = sliding_window_labels(len(signal), width, round(stride_seconds * rate),
                                                beat_samples)
        named = nearest >= 0
        flat = is_flat(raw, starts[named], width)
        keep = np.flatnonzero(named)[~flat]
        windows = (np.lib.stride_tricks.sliding_window_view(signal, width)[starts[keep]]
                   if len(keep) else np.zeros((0, width)))
        return {"windows": normalize_windows(windows.astype(np.float32), normalize),
                "symbols": beat_symbols[nearest[keep]],
                "samples": beat_samples[nearest[keep]].astype(np.int64),
                "starts": starts[keep], "windows_without_beat": int((~named).sum()),
                "flat_windows": int(flat.sum()), "dropped_at_edges": 0, "fs": float(rate),
                "lead": record.sig_name[0]}

    pre, post = round(pre_seconds * rate), round(post_seconds * rate)
    inside = np.flatnonzero((samples - pre >= 0) & (samples + post <= len(signal)))
    flat = is_flat(raw, samples[inside] - pre, pre + post)
    keep = inside[~flat]
    windows = np.lib.stride_tricks.sliding_window_view(signal, pre + post)[samples[keep] - pre]
    return {"windows": normalize_windows(windows.astype(np.float32), normalize),
            "symbols": symbols[keep], "samples": samples[keep].astype(np.int64),
            "dropped_at_edges": int(len(samples) - len(inside)), "flat_windows": int(flat.sum()),
            "fs": float(rate), "lead": record.sig_name[0]}


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

    def __init__(self, lead: str | None = "MLII", fs: float | None = None,
                 bandpass: tuple[float, float] | None = (0.5, 40.0), derivative: bool = False,
                 smoothing_seconds: float | None = None, pre_seconds: float = 0.25,
                 post_seconds: float = 0.45, normalize: str = "zscore",
                 beats: str = "annotations", max_seconds: float | None = None,
                 label_scheme: str = "aami", split: str = "time", val_fraction: float = 0.1,
                 test_fraction: float = 0.2, fold: int = 0, num_folds: int = 5,
                 purge: int = 1, segmentation: str = "beats", window_seconds: float | None = None,
                 stride_seconds: float | None = None, check_annotations: bool = True,
                 **base) -> None:
        super().__init__(split=split, **base)
        for option, value, valid in (("label_scheme", label_scheme, self.label_schemes),
                                     ("split", split, self.splits_offered),
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
        if label_scheme == "identification" and split != "time":
            raise ValueError(f"data.label_scheme=identification needs data.split=time (earlier "
                             f"beats train, later beats test), not {split!r}: subject-disjoint "
                             "splits test on people the model never saw, random beats leak neighbours")
        self.lead, self.fs = lead, fs
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

    # ------------------------------------------------------------------ cache
    def preprocessing_config(self) -> dict:
        # The record list is part of the key: a folder holding other records (data.root) must
        # not read the arrays cached for this one.
        config = {"lead": self.lead, "fs": self.fs, "bandpass": self.bandpass,
                  "derivative": self.derivative, "smoothing_seconds": self.smoothing_seconds,
                  "pre_seconds": self.pre_seconds, "post_seconds": self.post_seconds,
                  "normalize": self.normalize, "beats": self.beats, "max_seconds": self.max_seconds,
                  "records": self.record_names(), "version": 3}
        if self.segmentation == "sliding":  # beat-centred configs keep their existing keys
            config.update(segmentation="sliding", window_seconds=self.window_seconds,
                          stride_seconds=self.stride_seconds)
        return config

    def build_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        names = self.record_names()
        read = partial(read_beat_windows, lead=self.lead, fs=self.fs, bandpass=self.bandpass,
                       derivative=self.derivative, smoothing_seconds=self.smoothing_seconds,
                       pre_seconds=self.pre_seconds, post_seconds=self.post_seconds,
                       normalize=self.normalize, beats=self.beats, max_seconds=self.max_seconds,
                       segmentation=self.segmentation, window_seconds=self.window_seconds,
                       stride_seconds=self.stride_seconds,
                       check_annotations=self.check_annotations)
        # Records are independent: one process per core roughly halves a cold build.
        with ProcessPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1)) as pool:
            per_record = dict(zip(names, pool.map(read, [self.record_path(n) for n in names])))
        kept = {name: r for name, r in per_record.items() if r is not None}
        if not kept:
            raise ValueError(f"no {self.slug} record in {self.root} has lead {self.lead!r} "
                             f"(records: {' '.join(names)}); choose another data.lead")
        empty = [name for name, r in kept.items() if len(r["samples"]) == 0]
        if empty:
            raise ValueError(f"{self.slug} records {empty} in {self.root} yield no beat window "
                             f"(beats={self.beats}); check the records or leave them out")
        arrays = {
            "windows": np.concatenate([r["windows"] for r in kept.values()]),
            "symbols": np.concatenate([r["symbols"] for r in kept.values()]).astype("<U1"),
            "records": np.concatenate([np.full(len(r["symbols"]), name)
                                       for name, r in kept.items()]).astype(str),
            "samples": np.concatenate([r["samples"] for r in kept.values()]),
        }
        if self.segmentation == "sliding":  # each window's first sample (samples: its centre beat)
            arrays["starts"] = np.concatenate([r["starts"] for r in kept.values()])
        info = {"fs": next(iter(kept.values()))["fs"],
                "leads": {name: r["lead"] for name, r in kept.items()},
                "missing_lead": sorted(n for n, r in per_record.items() if r is None),
                "dropped_at_edges": {n: r["dropped_at_edges"] for n, r in kept.items()},
                "flat_windows": {n: r["flat_windows"] for n, r in kept.items()}}
        if self.segmentation == "sliding":
            info["windows_without_beat"] = {n: r["windows_without_beat"] for n, r in kept.items()}
        return arrays, info

    # ------------------------------------------------------------------ items and splits
    def setup_items(self, arrays: dict[str, np.ndarray], info: dict) -> None:
        self.info = info
        wanted = self.selected_records()
        missing = [r for r in wanted if r in set(info["missing_lead"])]
        if missing:
            raise ValueError(f"{self.slug} records {self.record_labels(missing)} have no lead "
                             f"{self.lead!r}; choose another data.lead or leave them out")
        records = np.asarray(arrays["records"])
        subjects = np.array([self.subject_of(r) for r in records])
        if self.label_scheme == "identification":
            self.class_names = sorted({self.subject_of(r) for r in wanted})
            is_beat = encode_symbols(arrays["symbols"], "aami", scheme_classes("aami")) >= 0
            labels = np.where(is_beat, np.searchsorted(self.class_names, subjects), -1)
        else:
            self.class_names = scheme_classes(self.label_scheme, self.symbols)
            labels = encode_symbols(arrays["symbols"], self.label_scheme, self.class_names)
        keep = np.flatnonzero((labels >= 0) & np.isin(records, wanted))
        self.item_index = keep  # position of each item in the cached arrays
        self.inputs = arrays["windows"][keep][:, None, :]  # [N, 1 lead, T]
        self.targets = labels[keep]
        self.records = records[keep]
        self.samples = arrays["samples"][keep]
        self.groups = subjects[keep]

    def record_labels(self, names: list[str]) -> list:
        """Record names as the database writes them (mitdb: numbers) for messages and cards."""
        return list(names)

    def time_order(self) -> np.ndarray:
        """Chronological rank of every item within its subject: record order, then sample."""
        position = {name: i for i, name in enumerate(self.record_names())}
        record_rank = np.array([position[str(r)] for r in self.records], dtype=np.int64)
        return np.lexsort((self.samples, record_rank))

    def split_indices(self) -> dict[str, np.ndarray]:
        if self.split == "time":
            purge = self.purge
            if self.segmentation == "sliding":  # a window overlaps its next W/S - 1 neighbours
                purge = max(purge, math.ceil(self.window_seconds / self.stride_seconds) - 1)
            return time_split(self.groups, self.time_order(), self.val_fraction,
                              self.test_fraction, purge)
        if self.split == "intra_patient":
            return stratified_split(self.targets, self.val_fraction, self.test_fraction, self.seed)
        if self.split == "record":
            return group_split(self.groups, self.val_fraction, self.test_fraction, self.seed)
        return group_kfold(self.groups, self.fold, self.num_folds, self.seed)

    def data_facts(self) -> dict:
        # predict resamples a new record to the rate the model was trained at
        return {**super().data_facts(), "sampling_rate_hz": float(self.info["fs"])}

    # ------------------------------------------------------------------ pictures (summary --plots)
    def record_strip(self, record: str, seconds: float, centre: int | None = None):
        """``(time s, signal, annotation samples, symbols, title)`` of the raw lead, via wfdb."""
        path = str(self.record_path(record))
        fs = wfdb.rdheader(path).fs
        half = round(seconds * fs / 2)
        start = 0 if centre is None else max(0, centre - half)
        stop = start + round(seconds * fs)
        lead = self.info["leads"][record]
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
        leads = sorted(set(self.info["leads"].values()))
        if self.segmentation == "sliding":
            window = {"segmentation": "sliding", "window": self.window_seconds,
                      "stride": self.stride_seconds,
                      "label": "the beat annotation nearest the window centre",
                      "windows_without_beat_dropped": sum(self.info["windows_without_beat"].values())}
        else:
            window = {"pre": self.pre_seconds, "post": self.post_seconds}
        return {"split_paradigm": self.split_paradigm, "label_scheme": self.label_scheme,
                "sampling_rate_hz": self.info["fs"], "lead": leads, "window_seconds": window,
                "window_samples": int(self._raw_inputs.shape[2]), "bandpass_hz": self.bandpass,
                "derivative_filter": self.derivative,
                "smoothing_seconds": self.smoothing_seconds, "normalize": self.normalize,
                "beat_positions": self.beats, "max_seconds_per_record": self.max_seconds,
                "records_per_split": {name: self.record_labels(sorted(np.unique(self.records[idx])))
                                      for name, idx in self.splits.items()},
                "annotations_dropped_at_record_edges": sum(self.info["dropped_at_edges"].values()),
                "flat_line_windows_dropped": sum(self.info.get("flat_windows", {}).values())}
