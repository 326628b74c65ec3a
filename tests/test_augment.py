"""Training-time augmentation (ecg_lightning/data/augment.py) and its config group (conf/augment/).

Each augmenter is checked alone on real tensors: the noise's measured SNR, the wander's spectrum
and amplitude, the scale factors' range, the shift against an edge-padded shifted copy; then the
probabilities, seeding, no in-place writes, dtype/device, every bad option, and composition.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ecg_lightning.data.augment import Augment

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
FS = 360.0
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def generator(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def beats(batch: int = 256, channels: int = 2, length: int = 252, seed: int = 1,
          device: str = "cpu", dtype=torch.float32) -> torch.Tensor:
    """Beat-like windows, z-scored per window and channel: a QRS-ish spike, a T wave, noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / FS
    centre = 0.25 + 0.01 * torch.randn(batch, channels, 1, generator=g)
    qrs = torch.exp(-((t - centre) / 0.012) ** 2)
    twave = 0.3 * torch.exp(-((t - centre - 0.25) / 0.05) ** 2)
    x = qrs + twave + 0.05 * torch.randn(batch, channels, length, generator=g)
    x = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)
    return x.to(device=device, dtype=dtype)


def changed_items(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (out != x).flatten(1).any(1)


# ----------------------------------------------------------------------------- each augmenter
@pytest.mark.parametrize("snr_db", [6.0, 20.0, 30.0])
def test_noise_has_the_requested_snr_per_item_and_channel(snr_db):
    x = beats(batch=512)
    x[:, 1] *= 7.0  # channel 1 49 times the power: the noise must follow each channel's power
    out = Augment(noise_snr_db=snr_db, noise_probability=1.0)(x, FS, generator())
    noise = out - x
    for channel in range(2):
        measured = 10 * math.log10(x[:, channel].square().sum() / noise[:, channel].square().sum())
        assert measured == pytest.approx(snr_db, abs=1.0), (channel, measured)
    # per item too: every item's own SNR is close (252 samples each, so a looser bound)
    per_item = 10 * torch.log10(x.square().mean(-1) / noise.square().mean(-1))
    assert per_item.median().item() == pytest.approx(snr_db, abs=0.5)
    assert noise.mean().abs() < 0.01 * noise.std()  # zero-mean Gaussian


def test_wander_is_low_frequency_with_the_requested_amplitude():
    length = int(60 * FS)  # a long window: the spectrum resolves 1/60 Hz and full cycles occur
    x = torch.randn(16, 2, length, generator=torch.Generator().manual_seed(3))
    x[:, 1] *= 3.0
    augment = Augment(wander_amplitude=0.5, wander_min_hz=0.1, wander_max_hz=0.5,
                      wander_probability=1.0)
    out = augment(x, FS, generator())
    added = out - x
    power = torch.fft.rfft(added.double(), dim=-1).abs().square()
    freqs = torch.fft.rfftfreq(length, d=1 / FS)
    below = power[..., freqs <= 0.5 + 2 / 60].sum(-1) / power.sum(-1)
    assert below.min() > 0.95, below.min()
    # peak amplitude = wander_amplitude x the channel's standard deviation
    expected = 0.5 * x.std(-1, correction=0)
    peak = added.abs().amax(-1)
    torch.testing.assert_close(peak, expected, rtol=1e-3, atol=1e-5)
    # one sinusoid per item, shared by its channels (scaled per channel)
    torch.testing.assert_close(added[:, 0] / expected[:, :1], added[:, 1] / expected[:, 1:],
                               rtol=1e-3, atol=1e-4)
    # frequencies differ between items and lie in [min, max]: the spectral peak per item
    peak_hz = freqs[power[:, 0].argmax(-1)]
    assert ((peak_hz >= 0.1 - 1 / 60) & (peak_hz <= 0.5 + 1 / 60)).all()
    assert peak_hz.unique().numel() > 4


def test_wander_on_a_beat_window_is_bounded_by_its_amplitude():
    x = beats()
    out = Augment(wander_amplitude=0.2, wander_probability=1.0)(x, FS, generator())
    added = out - x
    bound = 0.2 * x.std(-1, correction=0, keepdim=True)
    assert (added.abs() <= bound * (1 + 1e-5) + 1e-6).all()
    # a 0.7 s window of a <= 0.5 Hz wave is a slow drift: tiny sample-to-sample steps
    step = added.diff(dim=-1).abs().amax()
    assert step <= 2 * math.pi * 0.5 / FS * bound.max() * (1 + 1e-4)


def test_scale_factors_lie_in_range_and_cover_it():
    x = beats(batch=2000)
    out = Augment(scale=0.2, scale_probability=1.0)(x, FS, generator())
    factor = out / x
    per_item = factor[:, 0, 0]
    torch.testing.assert_close(factor, per_item.view(-1, 1, 1).expand_as(factor))  # one per item
    assert per_item.min() >= 0.8 - 1e-6 and per_item.max() <= 1.2 + 1e-6
    assert per_item.min() < 0.81 and per_item.max() > 1.19  # uniform over the whole range
    assert per_item.mean().item() == pytest.approx(1.0, abs=0.01)


def shifted(item: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: ``item`` [channels, time] delayed by k samples, padded with its edge value."""
    if k == 0:
        return item.clone()
    if k > 0:
        return torch.cat([item[:, :1].expand(-1, k), item[:, :-k]], dim=1)
    return torch.cat([item[:, -k:], item[:, -1:].expand(-1, -k)], dim=1)


def test_shift_equals_an_edge_padded_shifted_copy():
    x = beats(batch=600)
    out = Augment(shift_seconds=0.02, shift_probability=1.0)(x, FS, generator())
    max_shift = round(0.02 * FS)  # 7 samples
    seen = set()
    for b in range(x.shape[0]):  # the reference is a loop; the augmenter is not
        matches = [k for k in range(-max_shift, max_shift + 1) if torch.equal(out[b], shifted(x[b], k))]
        assert len(matches) == 1, (b, matches)
        seen.add(matches[0])
    assert seen == set(range(-max_shift, max_shift + 1))  # every shift, both extremes


def test_shift_pads_with_the_edge_value_not_wrapping():
    x = torch.arange(20.0).view(1, 1, 20).repeat(200, 1, 1)
    out = Augment(shift_seconds=3 / FS, shift_probability=1.0)(x, FS, generator())
    k = (x - out)[:, 0, 10]  # the shift of every item
    assert set(k.tolist()) == {-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0}
    for item, shift in zip(out[:, 0], k.long().tolist()):
        expected = (torch.arange(20) - shift).clamp(0, 19).float()
        assert torch.equal(item, expected)


def test_zero_shift_samples_and_zero_scale_are_identity():
    x = beats()
    assert torch.equal(Augment(shift_seconds=0.001, shift_probability=1.0)(x, FS, generator()), x)
    assert torch.equal(Augment(scale=0.0, scale_probability=1.0)(x, FS, generator()), x)


# ----------------------------------------------------------------------------- probabilities
ALONE = {
    "noise": dict(noise_snr_db=20.0),
    "wander": dict(wander_amplitude=0.1),
    "scale": dict(scale=0.1),
    "shift": dict(shift_seconds=0.02),
}


@pytest.mark.parametrize("name", list(ALONE))
def test_probability_zero_leaves_the_input_identical(name):
    x = beats()
    out = Augment(**ALONE[name], **{f"{name}_probability": 0.0})(x, FS, generator())
    assert torch.equal(out, x)


def test_probability_zero_for_all_four_at_once():
    x = beats()
    settings = {k: v for kw in ALONE.values() for k, v in kw.items()}
    out = Augment(**settings, noise_probability=0, wander_probability=0, scale_probability=0,
                  shift_probability=0)(x, FS, generator())
    assert torch.equal(out, x)


@pytest.mark.parametrize("name", list(ALONE))
def test_probability_one_changes_every_item(name):
    x = beats(batch=1000)
    out = Augment(**ALONE[name], **{f"{name}_probability": 1.0})(x, FS, generator())
    changed = changed_items(out, x)
    if name == "shift":  # a drawn shift of 0 samples (1 in 15) leaves an item as it is
        assert changed.float().mean() == pytest.approx(14 / 15, abs=0.03)
    else:
        assert changed.all()


@pytest.mark.parametrize("name", list(ALONE))
def test_probability_half_changes_about_half(name):
    x = beats(batch=2000)
    out = Augment(**ALONE[name], **{f"{name}_probability": 0.5})(x, FS, generator())
    fraction = changed_items(out, x).float().mean().item()
    expected = 0.5 * (14 / 15 if name == "shift" else 1.0)
    assert fraction == pytest.approx(expected, abs=0.04)
    # and the unchanged items are bit-identical to the input
    unchanged = ~changed_items(out, x)
    assert torch.equal(out[unchanged], x[unchanged])


def test_probabilities_are_independent_between_augmenters():
    x = beats(batch=2000)
    a = Augment(noise_snr_db=20, noise_probability=0.5, scale=0.1, scale_probability=0.5)
    out = a(x, FS, generator())
    noised = ((out - x) / x).std(-1).amax(-1) > 1e-3  # noise makes the ratio vary along time
    unchanged = ~changed_items(out, x)
    assert unchanged.float().mean().item() == pytest.approx(0.25, abs=0.04)
    assert noised.float().mean().item() == pytest.approx(0.5, abs=0.04)


# ----------------------------------------------------------------------------- determinism
FULL = dict(noise_snr_db=25.0, wander_amplitude=0.1, scale=0.1, shift_seconds=0.02)


def test_same_seed_same_output_different_seed_different_output():
    x = beats()
    augment = Augment(**FULL)
    first = augment(x, FS, generator(7))
    again = augment(x, FS, generator(7))
    other = augment(x, FS, generator(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # successive calls on one generator draw fresh randomness
    g = generator(7)
    assert not torch.equal(augment(x, FS, g), augment(x, FS, g))


def test_default_generator_when_none_is_given():
    x = beats(batch=8)
    torch.manual_seed(0)
    first = Augment(**FULL, noise_probability=1)(x, FS)
    torch.manual_seed(0)
    assert torch.equal(first, Augment(**FULL, noise_probability=1)(x, FS))


# ----------------------------------------------------------------------------- tensors
def test_input_is_not_modified_in_place():
    x = beats()
    before = x.clone()
    out = Augment(**FULL, noise_probability=1, wander_probability=1, scale_probability=1,
                  shift_probability=1)(x, FS, generator())
    assert torch.equal(x, before)
    assert out.data_ptr() != x.data_ptr()


def test_all_off_returns_the_input_unchanged():
    x = beats()
    assert Augment()(x, FS, generator()) is x
    assert Augment().active == ()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_dtype_device_and_shape_are_kept(device, dtype):
    x = beats(batch=32, device=device, dtype=dtype)
    out = Augment(**FULL, noise_probability=1, wander_probability=1, scale_probability=1,
                  shift_probability=1)(x, FS, generator(0, device))
    assert out.dtype == dtype and out.device == x.device and out.shape == x.shape
    assert torch.isfinite(out).all() and changed_items(out, x).all()


def test_single_channel_and_many_channels():
    for channels in (1, 12):
        x = beats(batch=16, channels=channels)
        out = Augment(**FULL)(x, FS, generator())
        assert out.shape == x.shape


# ----------------------------------------------------------------------------- validation
BAD = [
    (dict(noise_snr_db=-3), "data.augment.noise_snr_db=-3 must be > 0 dB"),
    (dict(noise_snr_db=0), "data.augment.noise_snr_db=0 must be > 0 dB"),
    (dict(noise_snr_db=float("inf")), "data.augment.noise_snr_db"),
    (dict(noise_snr_db="20"), "data.augment.noise_snr_db"),
    (dict(noise_probability=1.5), "data.augment.noise_probability=1.5"),
    (dict(noise_probability=None), "data.augment.noise_probability"),
    (dict(wander_amplitude=-0.1), "data.augment.wander_amplitude=-0.1"),
    (dict(wander_min_hz=0), "data.augment.wander_min_hz=0"),
    (dict(wander_min_hz=0.6), "data.augment.wander_max_hz=0.5"),
    (dict(wander_max_hz=0.01), "data.augment.wander_max_hz=0.01"),
    (dict(wander_probability=-0.2), "data.augment.wander_probability=-0.2"),
    (dict(scale=1.0), "data.augment.scale=1 must be in [0, 1)"),
    (dict(scale=-0.1), "data.augment.scale=-0.1"),
    (dict(scale_probability=2), "data.augment.scale_probability=2"),
    (dict(shift_seconds=-0.01), "data.augment.shift_seconds=-0.01"),
    (dict(shift_seconds=True), "data.augment.shift_seconds"),
    (dict(shift_probability=float("nan")), "data.augment.shift_probability"),
]


@pytest.mark.parametrize("kwargs, message", BAD, ids=[m for _, m in BAD])
def test_bad_parameter_raises_naming_the_option(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Augment(**kwargs)


def test_call_time_checks_against_the_sampling_rate_and_window():
    x = beats(batch=4)
    with pytest.raises(ValueError, match=r"data\.augment\.wander_max_hz=0\.5 must be below the Nyquist"):
        Augment(wander_amplitude=0.1)(x, 0.8, generator())
    with pytest.raises(ValueError, match=r"data\.augment\.shift_seconds=1 .*252 samples"):
        Augment(shift_seconds=1.0)(x, FS, generator())
    with pytest.raises(ValueError, match="fs=0"):
        Augment(**FULL)(x, 0.0, generator())
    with pytest.raises(ValueError, match=r"\[batch, channels, time\]"):
        Augment(**FULL)(x[0], FS, generator())
    with pytest.raises(ValueError, match="floating-point"):
        Augment(**FULL)(x.long(), FS, generator())


def test_describe_and_repr():
    augment = Augment(noise_snr_db=20, scale=0.1, scale_probability=1)
    settings = augment.describe()
    assert settings == {"noise_snr_db": 20.0, "noise_probability": 0.5, "wander_amplitude": None,
                        "wander_min_hz": 0.05, "wander_max_hz": 0.5, "wander_probability": 0.5,
                        "scale": 0.1, "scale_probability": 1.0, "shift_seconds": None,
                        "shift_probability": 0.5}
    assert all(v is None or type(v) is float for v in settings.values())
    assert repr(augment).startswith("Augment(noise_snr_db=20.0, noise_probability=0.5,")
    assert eval(repr(augment), {"Augment": Augment}).describe() == settings
    assert augment.active == ("noise", "scale")


# ----------------------------------------------------------------------------- config group
def compose_with(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_default_config_has_no_augmentation():
    assert compose_with().data.augment is None


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONFIG_DIR / "augment").glob("*.yaml")
                                          if p.stem != "none"))
def test_augment_option_composes_and_instantiates(option):
    cfg = compose_with(f"augment={option}")
    assert cfg.data.augment._target_ == "ecg_lightning.data.augment.Augment"
    assert cfg.data._target_ == "ecg_lightning.data.mitdb.MITBIHDataModule"  # data is kept
    augment = instantiate(cfg.data.augment)
    assert isinstance(augment, Augment)
    assert set(augment.active) == {"noise", "wander", "scale", "shift"}
    # every constructor parameter is spelled out in the file
    assert set(cfg.data.augment) - {"_target_"} == set(augment.describe())


def test_augment_default_settings():
    augment = instantiate(compose_with("augment=default").data.augment)
    assert augment.describe() == {"noise_snr_db": 25.0, "noise_probability": 0.5,
                                  "wander_amplitude": 0.1, "wander_min_hz": 0.05,
                                  "wander_max_hz": 0.5, "wander_probability": 0.5,
                                  "scale": 0.1, "scale_probability": 0.5,
                                  "shift_seconds": 0.02, "shift_probability": 0.5}


@pytest.mark.parametrize("experiment", ["satheeswaran2024_mitdb", "ptbxl_gru", "spectrogram_resnet50"])
def test_augment_composes_with_experiment_presets(experiment):
    plain = compose_with(f"experiment={experiment}")
    cfg = compose_with(f"experiment={experiment}", "augment=default",
                       "data.augment.noise_snr_db=20")
    assert plain.data.augment is None
    assert cfg.data.augment.noise_snr_db == 20
    # the preset's data settings are untouched by the group
    strip = lambda c: {k: v for k, v in c.data.items() if k != "augment"}  # noqa: E731
    assert strip(cfg) == strip(plain)
    assert isinstance(instantiate(cfg.data.augment), Augment)


def test_augment_after_a_data_override():
    cfg = compose_with("data=ecg5000", "augment=strong", "data.augment.shift_seconds=null")
    assert cfg.data._target_.endswith("ECG5000DataModule")
    assert instantiate(cfg.data.augment).active == ("noise", "wander", "scale")
