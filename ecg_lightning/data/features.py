"""Input features computed from cached windows: the short-time Fourier spectrogram.

``data.spectrogram`` (a datamodule option of the shared base) turns every window into the
magnitude of its short-time Fourier transform, computed with ``scipy.signal.ShortTimeFFT``:
a window of ``T`` samples becomes ``F = nfft // 2 + 1`` frequency bins by ``frames`` time
steps: every frame centred on a multiple of ``hop`` that overlaps the window (ShortTimeFFT's
own range; the ends are zero-padded). With ``hop = nperseg / 2`` these are exactly the frames
and the scaling of ``scipy.signal.stft`` with the same window, ``nperseg`` and ``nfft``.
Electrocardiograms-and-Neural-Networks (the seed of the mitdb normal-vs-abnormal study)
calls ``scipy.signal.stft(x, fs=360, nperseg=64)`` on 4 s windows: 33 bins x 46 frames.

``log: true`` feeds ``log(magnitude + 1e-6)`` instead of the magnitude: ECG power falls by
orders of magnitude from the QRS band to the top bins, and the log keeps them on one scale.
Its values sit far from zero (about -5 on the normal-vs-abnormal data): nets without a
normalisation after their first layer can die on it (the seed's 1-D AlexNet stayed at chance),
so that study's data uses the magnitude, as its seed (``conf/data/mitdb_binary.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.signal import ShortTimeFFT, get_window

SPECTROGRAM_DEFAULTS = {"nperseg": 64, "hop": 32, "nfft": None, "window": "hann", "log": True}
LOG_FLOOR = 1e-6  # added before the log, so silent (zero-padded) bins stay finite


def spectrogram_config(config: Mapping | None) -> dict | None:
    """``data.spectrogram`` checked and completed with the defaults; ``None`` stays ``None``."""
    if config is None:
        return None
    config = {key: config[key] for key in config}  # a plain dict, also from a Hydra DictConfig
    unknown = sorted(set(config) - set(SPECTROGRAM_DEFAULTS))
    if unknown:
        raise ValueError(f"data.spectrogram has unknown keys {unknown}; valid: "
                         f"{', '.join(SPECTROGRAM_DEFAULTS)}")
    config = {**SPECTROGRAM_DEFAULTS, **config}
    nperseg, hop, nfft = config["nperseg"], config["hop"], config["nfft"]
    if not isinstance(nperseg, int) or nperseg < 2:
        raise ValueError(f"data.spectrogram.nperseg={nperseg!r} must be an integer of at least 2")
    if not isinstance(hop, int) or not 1 <= hop <= nperseg:
        raise ValueError(f"data.spectrogram.hop={hop!r} must be an integer from 1 to nperseg={nperseg}")
    if nfft is not None and (not isinstance(nfft, int) or nfft < nperseg):
        raise ValueError(f"data.spectrogram.nfft={nfft!r} must be null or an integer of at least "
                         f"nperseg={nperseg}")
    return config


def short_time_fft(config: dict) -> ShortTimeFFT:
    """The transform of a (checked) spectrogram config; ``scale_to="magnitude"`` as stft does."""
    return ShortTimeFFT(get_window(config["window"], config["nperseg"]), hop=config["hop"],
                        fs=1.0, mfft=config["nfft"], scale_to="magnitude")


def spectrogram(signals: np.ndarray, config: dict, chunk: int = 4096) -> np.ndarray:
    """Spectrograms of ``signals`` ``[N, C, T]``: float32 ``[N, C * F, frames]``.

    The channel axis of the result holds every lead's ``F`` bins in turn, so the project's
    ``[batch, channels, time]`` convention holds: convolutions see frequency bins as
    channels, recurrent nets read the bins of one frame per step. Windows are transformed
    ``chunk`` at a time, which bounds the complex intermediate (and reads a memory-mapped
    cache chunk by chunk).
    """
    if signals.ndim != 3:
        raise ValueError(f"spectrogram expects signals [N, channels, samples], got {signals.shape}")
    length = signals.shape[-1]
    if length < config["nperseg"]:
        raise ValueError(f"data.spectrogram.nperseg={config['nperseg']} exceeds the window "
                         f"length {length} samples; choose a shorter nperseg")
    stft = short_time_fft(config)
    frames = stft.p_max(length) - stft.p_min  # the frames that overlap the window
    result = np.empty((len(signals), signals.shape[1] * stft.f_pts, frames), dtype=np.float32)
    for start in range(0, len(signals), chunk):
        block = np.asarray(signals[start:start + chunk])
        # One row per lead: scipy 1.17 zero-pads nfft > nperseg along the wrong axis of 3-D input.
        magnitude = np.abs(stft.stft(block.reshape(-1, length)))
        if config["log"]:
            magnitude = np.log(magnitude + LOG_FLOOR)
        result[start:start + len(block)] = magnitude.reshape(len(block), -1, frames)
    return result
