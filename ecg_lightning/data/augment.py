"""Training-time ECG augmentation, applied batch-wise on the batch's device.

The datamodule calls an :class:`Augment` on every training batch (never on validation, test or
prediction batches)::

    signal = augment(signal, fs, generator)

with ``signal`` a float tensor ``[batch, channels, time]`` of beat windows (usually z-scored
per window), ``fs`` the sampling rate in Hz and ``generator`` a :class:`torch.Generator` on
``signal.device`` that the caller has seeded. Every operation is vectorised over the batch;
the input is never modified in place. Configured by the ``augment`` config group
(``conf/augment/``), which writes the ``data.augment`` node.
"""

from __future__ import annotations

import math
import numbers

import torch

# How the user writes the options (the config group fills data.augment).
PREFIX = "data.augment."

PARAMETERS = ("noise_snr_db", "noise_probability",
              "wander_amplitude", "wander_min_hz", "wander_max_hz", "wander_probability",
              "scale", "scale_probability",
              "shift_seconds", "shift_probability")


def _number(name: str, value, *, optional: bool) -> float | None:
    """``value`` as a finite float; ValueError naming ``data.augment.<name>`` otherwise."""
    if value is None:
        if optional:
            return None
        raise ValueError(f"{PREFIX}{name}=null is not allowed: it must be a number")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{PREFIX}{name}={value!r} must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{PREFIX}{name}={value} must be a finite number")
    return value


def _optional(name: str, value, valid, requirement: str) -> float | None:
    """An augmenter's main parameter: ``None`` (off) or a number that ``valid`` accepts;
    ValueError naming ``data.augment.<name>`` and the ``requirement`` otherwise."""
    value = _number(name, value, optional=True)
    if value is not None and not valid(value):
        raise ValueError(f"{PREFIX}{name}={value:g} must be {requirement}")
    return value


class Augment:
    """Random, per-item ECG augmentation of a training batch ``[batch, channels, time]``.

    Four augmenters; each is applied to every item independently with its own probability
    (an item is augmented when a uniform draw in [0, 1) falls below it: 0 = never, 1 = always).
    An augmenter whose main parameter is ``null`` (None) is off; all are off by default, so
    ``Augment()`` returns its input unchanged.

    Parameters
    ----------
    noise_snr_db : float or None, dB, > 0
        Additive white Gaussian noise at this signal-to-noise ratio, relative to each item's
        per-channel signal power (mean square of the input window): noise variance =
        power / 10 ** (noise_snr_db / 10). E.g. 25 dB = noise power 0.3 % of the signal's.
    noise_probability : float, in [0, 1], default 0.5
        Probability that an item receives noise.
    wander_amplitude : float or None, multiples of the item's per-channel standard deviation, >= 0
        Baseline wander: a sinusoid A * sin(2 pi f t + phi) added to every channel, with peak
        amplitude A = wander_amplitude * std of that channel of the input window, one random
        frequency f and phase phi (uniform in [0, 2 pi)) per item, shared by its channels
        (respiration moves all leads together).
    wander_min_hz : float, Hz, > 0, default 0.05
        Lowest wander frequency.
    wander_max_hz : float, Hz, >= wander_min_hz and below fs / 2, default 0.5
        Highest wander frequency; f is drawn uniformly in [wander_min_hz, wander_max_hz].
    wander_probability : float, in [0, 1], default 0.5
        Probability that an item receives baseline wander.
    scale : float or None, dimensionless, in [0, 1)
        Amplitude scaling: the whole item (all channels, after the wander and noise, as an
        amplifier gain would) is multiplied by a factor drawn uniformly in [1 - scale, 1 + scale].
    scale_probability : float, in [0, 1], default 0.5
        Probability that an item is scaled.
    shift_seconds : float or None, seconds, >= 0
        Small time shift: every channel of an item is delayed by the same integer number of
        samples k, uniform in [-round(shift_seconds * fs), +round(shift_seconds * fs)]
        (k > 0 moves the beat later), output[t] = input[clamp(t - k, 0, time - 1)]: the
        window is padded with its edge value, never wrapped. round(shift_seconds * fs) must be
        smaller than the window length.
    shift_probability : float, in [0, 1], default 0.5
        Probability that an item is shifted.

    Order: shift, wander, noise, scale. Wander and noise are sized from the statistics of the
    input window (so each setting means the same whatever else is on); the scale applies last.
    Every parameter is validated here; a bad one raises ValueError naming the option as it is
    written in the config (``data.augment.<name>=<value> ...``). ``fs`` is checked at call time
    (wander_max_hz below Nyquist, the shift shorter than the window).

    Call: ``augment(signal, fs, generator=None) -> signal``: ``signal`` float [batch, channels,
    time], ``fs`` Hz, ``generator`` a torch.Generator on ``signal.device`` (None: torch's
    default generator). Returns a new tensor of the same shape, dtype and device (the input
    itself when every augmenter is off or has probability 0); the input is never written.
    Random numbers are drawn in a fixed order, augmenter by augmenter (only for those that are
    on), so the same generator state and settings give the same output.
    """

    def __init__(self, noise_snr_db: float | None = None, noise_probability: float = 0.5,
                 wander_amplitude: float | None = None, wander_min_hz: float = 0.05,
                 wander_max_hz: float = 0.5, wander_probability: float = 0.5,
                 scale: float | None = None, scale_probability: float = 0.5,
                 shift_seconds: float | None = None, shift_probability: float = 0.5) -> None:
        for name, value in (("noise_probability", noise_probability),
                            ("wander_probability", wander_probability),
                            ("scale_probability", scale_probability),
                            ("shift_probability", shift_probability)):
            value = _number(name, value, optional=False)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{PREFIX}{name}={value:g} must be a probability in [0, 1]")
            setattr(self, name, value)

        self.noise_snr_db = _optional("noise_snr_db", noise_snr_db, lambda v: v > 0,
                                      "> 0 dB (or null for no noise)")
        self.wander_amplitude = _optional(
            "wander_amplitude", wander_amplitude, lambda v: v >= 0,
            ">= 0 (multiples of the window's standard deviation; null for no wander)")
        self.wander_min_hz = _number("wander_min_hz", wander_min_hz, optional=False)
        self.wander_max_hz = _number("wander_max_hz", wander_max_hz, optional=False)
        if not self.wander_min_hz > 0:
            raise ValueError(f"{PREFIX}wander_min_hz={self.wander_min_hz:g} must be > 0 Hz")
        if not self.wander_max_hz >= self.wander_min_hz:
            raise ValueError(f"{PREFIX}wander_max_hz={self.wander_max_hz:g} must be >= "
                             f"{PREFIX}wander_min_hz={self.wander_min_hz:g} Hz")
        self.scale = _optional("scale", scale, lambda v: 0.0 <= v < 1.0,
                               "in [0, 1) (factors in [1 - scale, 1 + scale]; null for no scaling)")
        self.shift_seconds = _optional("shift_seconds", shift_seconds, lambda v: v >= 0,
                                       ">= 0 s (or null for no shift)")

    # ------------------------------------------------------------------ settings
    def describe(self) -> dict:
        """The settings as a plain dict (floats and None), e.g. for logging hyperparameters."""
        return {name: getattr(self, name) for name in PARAMETERS}

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={value!r}" for name, value in self.describe().items())
        return f"{type(self).__name__}({settings})"

    @property
    def active(self) -> tuple[str, ...]:
        """The augmenters that can change an item (on, with a probability above 0)."""
        on = (("noise", self.noise_snr_db, self.noise_probability),
              ("wander", self.wander_amplitude, self.wander_probability),
              ("scale", self.scale, self.scale_probability),
              ("shift", self.shift_seconds, self.shift_probability))
        return tuple(name for name, value, p in on if value is not None and p > 0)

    # ------------------------------------------------------------------ call
    def __call__(self, signal: torch.Tensor, fs: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        if not isinstance(signal, torch.Tensor) or signal.ndim != 3:
            raise ValueError("augment expects a tensor [batch, channels, time], got "
                             f"{tuple(signal.shape) if isinstance(signal, torch.Tensor) else type(signal).__name__}")
        if not signal.is_floating_point():
            raise ValueError(f"augment expects a floating-point signal, got {signal.dtype}")
        fs = float(fs)
        if not (math.isfinite(fs) and fs > 0):
            raise ValueError(f"augment: the sampling rate fs={fs} must be > 0 Hz")
        active = self.active
        if not active or signal.numel() == 0:
            return signal

        batch, _, length = signal.shape
        device = signal.device
        # Half precision: compute the statistics and draws in float32, return the input dtype.
        work = signal.float() if signal.dtype in (torch.float16, torch.bfloat16) else signal
        dtype = work.dtype

        def chosen(probability: float) -> torch.Tensor:  # [batch] bool: which items to augment
            return torch.rand(batch, generator=generator, device=device) < probability

        def uniform(low: float, high: float, shape=(batch,)) -> torch.Tensor:
            u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
            return low + (high - low) * u

        out = work
        if "shift" in active:
            max_shift = round(self.shift_seconds * fs)
            if max_shift >= length:
                raise ValueError(f"{PREFIX}shift_seconds={self.shift_seconds:g} is "
                                 f"{max_shift} samples at {fs:g} Hz: must be shorter than the "
                                 f"window ({length} samples)")
            if max_shift > 0:
                shift = torch.randint(-max_shift, max_shift + 1, (batch,), generator=generator,
                                      device=device)
                shift = shift * chosen(self.shift_probability)  # 0 = unchanged
                index = torch.arange(length, device=device).unsqueeze(0) - shift.unsqueeze(1)
                index = index.clamp_(0, length - 1).unsqueeze(1).expand_as(out)
                out = torch.gather(out, 2, index)

        if "wander" in active or "noise" in active:
            reference = work  # the statistics of the input window, per item and channel
        if "wander" in active:
            nyquist = fs / 2
            if self.wander_max_hz >= nyquist:
                raise ValueError(f"{PREFIX}wander_max_hz={self.wander_max_hz:g} must be below "
                                 f"the Nyquist frequency fs/2 = {nyquist:g} Hz")
            frequency = uniform(self.wander_min_hz, self.wander_max_hz)       # [batch] Hz
            phase = uniform(0.0, 2 * math.pi)                                 # [batch] rad
            # population std per item and channel (two fast passes; Tensor.std is ~8x slower on CPU)
            centred = reference - reference.mean(dim=-1, keepdim=True)
            amplitude = self.wander_amplitude * centred.square().mean(dim=-1).sqrt()  # [b, c]
            amplitude = amplitude * chosen(self.wander_probability).unsqueeze(1)
            t = torch.arange(length, device=device, dtype=dtype) / fs         # [time] s
            wave = torch.sin(2 * math.pi * frequency.unsqueeze(1) * t + phase.unsqueeze(1))
            out = out + amplitude.unsqueeze(2) * wave.unsqueeze(1)

        if "noise" in active:
            power = reference.square().mean(dim=-1, keepdim=True)             # [b, c, 1]
            sigma = torch.sqrt(power / 10.0 ** (self.noise_snr_db / 10.0))
            sigma = sigma * chosen(self.noise_probability).view(batch, 1, 1)
            noise = torch.randn(out.shape, generator=generator, device=device, dtype=dtype)
            out = out + sigma * noise

        if "scale" in active:
            factor = uniform(1.0 - self.scale, 1.0 + self.scale)
            factor = torch.where(chosen(self.scale_probability), factor, torch.ones_like(factor))
            out = out * factor.view(batch, 1, 1)

        return out.to(signal.dtype) if out.dtype != signal.dtype else out
