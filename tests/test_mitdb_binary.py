"""The mitdb normal-vs-abnormal study: spectrogram feature and cache, class-imbalance samplers,
the four models and their presets (real wfdb records, real Hydra composition)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal
import torch
import wfdb

from conftest import make_small_mitdb
from ecg_lightning.data.base import ECGDataModule
from ecg_lightning.data.features import spectrogram, spectrogram_config
from ecg_lightning.data.mitdb import MITBIHDataModule
from ecg_lightning.models.mitdb_binary import (ImprovedAlexNet, SeedAlexNet1d, SpectrogramBiLSTM, SpectrogramCNN,
                                               SpectrogramGRU)
from ecg_lightning.run import train
from ecg_lightning.summary import compose_config, dataset_card, format_card

SPECTROGRAM = {"nperseg": 64, "hop": 32, "log": False}  # the seed's scipy.signal.stft call
BINARY = {"pre_seconds": 2.0, "post_seconds": 2.0, "label_scheme": "binary",
          "split": "intra_patient"}  # intra_patient: two records are too few subjects to split


@pytest.fixture(scope="module")
def study_mitdb(mitdb_dir, tmp_path_factory):
    """Three records (100 and 101 nearly all normal, 119 bigeminy) and a cache for this module."""
    folder = tmp_path_factory.mktemp("binary")
    return make_small_mitdb(folder / "mitdb", records=("100", "101", "119")), folder / "cache"


def datamodule(root, cache_dir, **options) -> MITBIHDataModule:
    dm = MITBIHDataModule(root=str(root), cache_dir=str(cache_dir),
                          **{**BINARY, "spectrogram": SPECTROGRAM, **options})
    dm.prepare_data()
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def spectrogram_dm(study_mitdb):
    return datamodule(*study_mitdb)


# ---------------------------------------------------------------------- spectrogram
def test_spectrogram_shape_matches_scipy_stft(spectrogram_dm):
    dm = spectrogram_dm
    assert dm.raw_inputs["signal"].shape[1:] == (1, 1440)  # 4 s at 360 Hz
    assert dm.inputs["signal"].shape == (len(dm.targets), 33, 46) and dm.inputs["signal"].dtype == np.float32
    assert dm.model_facts() == {"num_classes": 2, "in_channels": 33, "seq_len": 46,
                                "auxiliary_inputs": {}}
    assert dm.dataset("train").inputs["signal"].shape == (len(dm.splits["train"]), 33, 46)
    for item in (0, len(dm.targets) // 2):
        _, _, reference = scipy.signal.stft(dm.raw_inputs["signal"][item, 0], fs=360, nperseg=64)
        np.testing.assert_allclose(dm.inputs["signal"][item], np.abs(reference), atol=1e-5)


@pytest.mark.parametrize("config, stft_args", [
    ({"nperseg": 128, "hop": 64, "log": True}, {"nperseg": 128}),
    ({"nperseg": 64, "hop": 32, "nfft": 128, "window": "hamming", "log": False},
     {"nperseg": 64, "nfft": 128, "window": "hamming"}),
])
def test_spectrogram_options_match_scipy_stft(spectrogram_dm, config, stft_args):
    windows = spectrogram_dm.raw_inputs["signal"][:3]
    ours = spectrogram(windows, spectrogram_config(config))
    _, _, reference = scipy.signal.stft(windows[:, 0], **stft_args)
    expected = np.abs(reference)
    if config["log"]:
        expected = np.log(expected + 1e-6)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-5)  # float32 windows


def test_card_reports_spectrogram_and_class_distribution(spectrogram_dm):
    card = spectrogram_dm.describe()
    assert card["spectrogram"]["frames"] == 46 and card["spectrogram"]["input_channels"] == 33
    assert card["sampler"] == "none" and card["label_classes"] == ["normal", "abnormal"]
    for split in card["splits"].values():
        assert sum(split["per_class"].values()) == split["items"]
        assert split["per_class"]["abnormal"] > 0


def test_spectrogram_is_cached_once_and_reused(study_mitdb, tmp_path, monkeypatch):
    root, _ = study_mitdb
    first = datamodule(root, tmp_path)
    entries = sorted(p.name for p in (tmp_path / "mitdb").iterdir())
    assert len(entries) == 2 and entries[1].startswith("stft-")  # windows, spectrograms
    manifest = json.loads((tmp_path / "mitdb" / entries[1] / "manifest.json").read_text())
    assert manifest["info"]["spectrogram"]["nperseg"] == 64
    assert manifest["arrays"]["spectrogram"]["shape"][1:] == [33, 46]

    def no_rebuild(self, arrays):
        pytest.fail("the cached spectrograms were computed again")

    monkeypatch.setattr(MITBIHDataModule, "build_spectrogram", no_rebuild)
    again = datamodule(root, tmp_path)
    np.testing.assert_array_equal(again.inputs["signal"], first.inputs["signal"])
    # Another label scheme selects other items from the same cached rows: no recomputation.
    aami = datamodule(root, tmp_path, label_scheme="aami")
    assert aami.inputs["signal"].shape[1:] == (33, 46)
    # Another spectrogram config is another entry, never the stale one.
    monkeypatch.undo()
    datamodule(root, tmp_path, spectrogram={**SPECTROGRAM, "hop": 16})
    assert len(list((tmp_path / "mitdb").glob("stft-*"))) == 2


# ---------------------------------------------------------------------- samplers
def test_weighted_sampler_balances_batches(study_mitdb, spectrogram_dm):
    dm = datamodule(*study_mitdb, sampler="weighted", batch_size=512)
    raw = dm.split_counts("train")
    assert raw[1] < raw[0] / 5  # the training split itself is imbalanced
    drawn = torch.cat([batch["target"] for batch in dm.train_dataloader()])
    assert len(drawn) == len(dm.splits["train"])
    assert abs(drawn.float().mean().item() - 0.5) < 0.05
    assert dm.class_counts[0] == dm.class_counts[1]  # the loss sees the balanced draws
    first, again = (next(iter(dm.train_dataloader()))["target"] for _ in range(2))
    assert torch.equal(first, again)  # seeded
    assert dm.describe()["train_drawn_per_epoch_expected"] == {
        "normal": dm.class_counts[0], "abnormal": dm.class_counts[1]}


def test_undersample_equalises_the_training_split_only(study_mitdb, spectrogram_dm):
    dm = datamodule(*study_mitdb, sampler="undersample")
    counts = dm.split_counts("train")
    assert counts[0] == counts[1] == spectrogram_dm.split_counts("train")[1]
    assert np.isin(dm.splits["train"], spectrogram_dm.splits["train"]).all()
    for name in ("val", "test"):
        np.testing.assert_array_equal(dm.splits[name], spectrogram_dm.splits[name])
    assert dm.class_counts == counts.tolist()
    before = spectrogram_dm.describe()["splits"]["train"]["per_class"]
    assert dm.describe()["train_before_undersampling"] == before


def test_bad_options_are_clear_errors(study_mitdb):
    root, cache = study_mitdb
    with pytest.raises(ValueError, match="data.sampler='smote' is unknown; valid: none, "
                                         "weighted, undersample"):
        MITBIHDataModule(root=str(root), sampler="smote")
    with pytest.raises(ValueError, match="data.spectrogram and data.pca_components"):
        MITBIHDataModule(root=str(root), spectrogram=SPECTROGRAM, pca_components=8)
    with pytest.raises(ValueError, match=r"data.spectrogram has unknown keys \['overlap'\]"):
        MITBIHDataModule(root=str(root), spectrogram={"overlap": 32})
    with pytest.raises(ValueError, match="data.spectrogram.nperseg=4096 exceeds the window"):
        datamodule(root, cache, spectrogram={"nperseg": 4096, "hop": 64})


class MultilabelDataModule(ECGDataModule):
    slug = "multilabel-example"
    task = "multilabel"


@pytest.mark.parametrize("sampler", ["weighted", "undersample"])
def test_multilabel_data_refuses_class_samplers(sampler):
    with pytest.raises(ValueError, match=f"data.sampler={sampler} balances single-label classes"):
        MultilabelDataModule(sampler=sampler)
    MultilabelDataModule(sampler="none")


# ---------------------------------------------------------------------- models and presets
@pytest.mark.parametrize("net", [
    SpectrogramBiLSTM(num_classes=2, in_channels=33, seq_len=46),
    SpectrogramCNN(num_classes=2, in_channels=33, seq_len=46),
    ImprovedAlexNet(num_classes=2),
    SeedAlexNet1d(num_classes=2, in_channels=33, seq_len=46),
    SpectrogramGRU(num_classes=2, in_channels=33, seq_len=46),
    SpectrogramGRU(num_classes=2, in_channels=33, seq_len=46, readout="flatten"),
    SpectrogramGRU(num_classes=2, in_channels=33, seq_len=46, steps="bins", readout="flatten"),
], ids=["bilstm", "cnn", "alexnet2d", "alexnet1d", "gru", "gru-flatten", "gru-bins"])
def test_model_forward_shapes(net):
    assert net(torch.randn(5, 33, 46)).shape == (5, 2)


def test_seed_alexnet_reads_384_features_as_the_seed():
    """On the seed's 33 x 46 spectrogram its three convolutions leave one frame of 384."""
    net = SeedAlexNet1d(num_classes=2, in_channels=33, seq_len=46)
    assert net.features(torch.zeros(1, 33, 46)).shape == (1, 384, 1)
    assert net.head[2].in_features == 384


def test_gru_steps_over_bins_when_asked():
    """steps=bins (the seed's GRU): one step per frequency bin, the 46 frames its features;
    changing bin 20 leaves the states of bins 0-19 alone."""
    net = SpectrogramGRU(num_classes=2, in_channels=33, seq_len=46, steps="bins")
    assert net.gru.input_size == 46
    x = torch.randn(1, 33, 46)
    changed = x.clone()
    changed[:, 20, :] += 1.0
    before, _ = net.gru(x)
    after, _ = net.gru(changed)
    assert torch.equal(before[:, :20], after[:, :20]) and not torch.equal(before[:, 20], after[:, 20])
    with pytest.raises(ValueError, match="model.net.steps='time'"):
        SpectrogramGRU(num_classes=2, in_channels=33, seq_len=46, steps="time")


def test_recurrent_nets_step_over_frames():
    """One step per spectrogram frame: changing frame 30 leaves the states of frames 0-29 alone."""
    net = SpectrogramGRU(num_classes=2, in_channels=33, seq_len=46)
    x = torch.randn(1, 33, 46)
    changed = x.clone()
    changed[:, :, 30] += 1.0
    before, _ = net.gru(x.transpose(1, 2))
    after, _ = net.gru(changed.transpose(1, 2))
    assert torch.equal(before[:, :30], after[:, :30]) and not torch.equal(before[:, 30], after[:, 30])


def compose(tmp_path, root, cache_dir, *overrides):
    return compose_config([*overrides, f"data.root={root}", "logger=csv",
                           f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/run",
                           f"paths.cache_dir={cache_dir}", "callbacks.progress_bar.refresh_rate=0"])


@pytest.mark.parametrize("model", ["bilstm", "cnn", "alexnet", "gru"])
def test_preset_trains_in_process(model, study_mitdb, tmp_path):
    """fast_dev_run of each preset as composed, its record lists cut to the three records here."""
    root, cache = study_mitdb
    cfg = compose(tmp_path, root, cache, f"experiment=mitdb_binary_{model}", "debug=fdr",
                  "data.train_records=[100]", "data.val_records=[101]", "data.test_records=[119]")
    assert cfg.data.label_scheme == "binary" and cfg.data.pre_seconds == 2.0
    assert cfg.data.spectrogram.nperseg == 64 and cfg.trainer.max_epochs == 50
    value, metrics = train(cfg)
    assert 0.0 <= value <= 1.0 and "test/accuracy" in metrics


def test_summary_card_of_a_preset_shows_sampler_and_class_counts(study_mitdb, tmp_path):
    root, cache = study_mitdb
    card = dataset_card(["experiment=mitdb_binary_cnn", "data.sampler=undersample",
                         "data.train_records=[100]", "data.val_records=[101]",
                         "data.test_records=[119]", f"data.root={root}", f"paths.cache_dir={cache}"])
    text = format_card(card)
    assert "sampler: undersample" in text and "train_before_undersampling" in text
    assert "normal" in text and "abnormal" in text
    assert card["split_paradigm"] == "subject_disjoint_fixed"
    assert card["records_per_split"] == {"train": [100], "val": [101], "test": [119]}


def test_preset_record_lists_are_the_seeds_split():
    """Records 100-210 train (3 of them validate), 212-234 test: the seed's 32 + 16 records,
    paced ones included, its N V A F S beats, each record's first channel; the all-beats
    variant leaves the paced records out and reads MLII."""
    data = compose_config(["experiment=mitdb_binary_cnn"]).data
    train, val, test = (set(data[k]) for k in ("train_records", "val_records", "test_records"))
    assert max(train | val) <= 210 < 212 <= min(test)
    assert len(train | val) == 32 and len(test) == 16
    assert list(data.beat_symbols) == ["N", "V", "A", "F", "S"] and data.leads == "first"
    every = compose_config(["experiment=mitdb_binary_cnn_all_beats"]).data
    train, val, test = (set(every[k]) for k in ("train_records", "val_records", "test_records"))
    assert len(train | val) == 29 and len(test) == 15  # the seed's lists minus the paced ones
    assert not (train | val | test) & {102, 104, 107, 217} and every.beat_symbols is None


def test_beat_symbols_keep_only_those_beats(mitdb_dir, tmp_path):
    dm = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(tmp_path), split="records",
                          label_scheme="binary", beat_symbols=["N", "V"], train_records=[100],
                          val_records=[101], test_records=[119])
    dm.prepare_data()
    dm.setup()
    annotation = wfdb.rdann(str(mitdb_dir / "119"), "atr")
    symbols = np.asarray(annotation.symbol)
    test = dm.splits["test"]
    assert len(test) == np.isin(symbols, ["N", "V"]).sum()  # 119: N and V beats only kept
    assert (dm.targets[test] == 1).sum() == (symbols == "V").sum()
    with pytest.raises(ValueError, match=r"data.beat_symbols=\['N', '\+'\]: \['\+'\] not beat"):
        MITBIHDataModule(root=str(mitdb_dir), beat_symbols=["N", "+"])


def test_record_lists_that_share_a_subject_are_refused(mitdb_dir):
    with pytest.raises(ValueError, match=r"share subjects \[201\]"):
        MITBIHDataModule(root=str(mitdb_dir), split="records", train_records=[201],
                         val_records=[100], test_records=[202])
    with pytest.raises(ValueError, match="needs data.test_records"):
        MITBIHDataModule(root=str(mitdb_dir), split="records", train_records=[100])
