"""The spectrogram-CNN study: torchvision networks, focal loss, the non-finite guard, EMA with
thresholds, and every preset end to end (``fast_dev_run``) on real MIT-BIH records and
SVDB-like records written with wfdb."""

from __future__ import annotations

import copy
from functools import partial

import lightning as L
import numpy as np
import pytest
import torch
import torchvision
from conftest import make_small_mitdb
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader
from test_svdb import write_svdb

from ecg_lightning.data.base import NamedInputs, keep_batch
from ecg_lightning.losses import FocalLoss
from ecg_lightning.models.spectrogram_cnn import SpectrogramImageCNN
from ecg_lightning.run import instantiate_with_facts, train
from ecg_lightning.summary import compose_config
from ecg_lightning.tasks.classification import ClassificationEMA, ClassificationTask

PRESETS = ("spectrogram_resnet50", "spectrogram_mobilenetv3", "spectrogram_efficientnetv2")
QUIET = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}


def named_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> DataLoader:
    """Batches ``{"signal": x, "target": y}`` as the datamodules' loaders give them."""
    return DataLoader(NamedInputs({"signal": x.numpy()}, y.numpy()), batch_size=batch_size,
                      collate_fn=keep_batch)


# ---------------------------------------------------------------------------- focal loss
def test_focal_with_gamma_0_is_cross_entropy():
    torch.manual_seed(0)
    logits, target = torch.randn(16, 5), torch.randint(0, 5, (16,))
    plain = FocalLoss([10, 10, 10, 10, 10], gamma=0.0, weighting="none")
    torch.testing.assert_close(plain(logits, target), nn.functional.cross_entropy(logits, target))
    counts = [100, 20, 40, 5, 1]  # and with the same weights and smoothing as loss=ce
    focal = FocalLoss(counts, gamma=0.0, weighting="inverse", label_smoothing=0.1)
    ce = nn.CrossEntropyLoss(weight=focal.weight, label_smoothing=0.1)
    torch.testing.assert_close(focal(logits, target), ce(logits, target))


def test_focal_matches_its_formula_with_weights_and_smoothing():
    torch.manual_seed(1)
    logits, target = torch.randn(12, 4, dtype=torch.float64), torch.randint(0, 4, (12,))
    counts, gamma, eps = [50, 10, 30, 10], 2.0, 0.2
    loss = FocalLoss(counts, gamma=gamma, weighting="inverse", max_weight=10.0, label_smoothing=eps)
    # Independently: sklearn-style balanced weights, smoothed targets, one term per class.
    weights = [sum(counts) / (len(counts) * c) for c in counts]
    numerator = denominator = 0.0
    for row, y in zip(logits.tolist(), target.tolist()):
        z = np.exp(np.array(row) - max(row))
        p = z / z.sum()
        for k in range(4):
            q = (1 - eps) * (k == y) + eps / 4
            numerator += q * weights[k] * (1 - p[k]) ** gamma * -np.log(p[k])
        denominator += weights[y]
    assert loss(logits.float(), target).item() == pytest.approx(numerator / denominator, rel=1e-5)
    assert loss.weight.tolist() == pytest.approx(weights)
    # Without smoothing, a confidently right item weighs (1 - p)^2 of its cross-entropy.
    easy, label = torch.tensor([[8.0, 0, 0, 0]]), torch.tensor([0])
    p = torch.softmax(easy, dim=1)[0, 0]
    unweighted = FocalLoss(counts, gamma=gamma, weighting="none")
    torch.testing.assert_close(unweighted(easy, label),
                               (1 - p) ** 2 * nn.functional.cross_entropy(easy, label))


def test_focal_config_builds_from_class_counts_and_refuses_multilabel():
    cfg = compose_config(["loss=focal"])
    loss = instantiate_with_facts(cfg.loss, {"class_counts": [90, 10], "num_items": 100})
    assert isinstance(loss, FocalLoss) and loss.gamma == 2.0
    assert loss.weight.tolist() == pytest.approx([100 / 180, 100 / 20])
    with pytest.raises(ValueError, match="use loss=bce"):
        loss(torch.randn(3, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match="loss.gamma=-1"):
        FocalLoss([1, 1], gamma=-1)


# ---------------------------------------------------------------------------- non-finite guard
class NaNOnMarkedBatch(nn.Module):
    """A linear classifier whose logits are NaN for a batch that starts with a marked item."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.linear(x.flatten(1))
        return logits * float("nan") if x[0, 0, 0] > 100 else logits


class WeightsAfterEachBatch(Callback):
    def __init__(self) -> None:
        self.weights = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.weights.append(copy.deepcopy(pl_module.net.state_dict()))


def guarded_fit(x: torch.Tensor, y: torch.Tensor, seed: int = 0):
    torch.manual_seed(seed)
    task = ClassificationTask(NaNOnMarkedBatch(), nn.CrossEntropyLoss(),
                              partial(torch.optim.AdamW, lr=0.1), class_names=["a", "b", "c"],
                              bootstrap_resamples=0)
    before, after = copy.deepcopy(task.net.state_dict()), WeightsAfterEachBatch()
    trainer = L.Trainer(max_epochs=1, gradient_clip_val=1.0, limit_val_batches=0,
                        enable_checkpointing=False, callbacks=[after], **QUIET)
    trainer.fit(task, named_loader(x, y, batch_size=4))
    return task, trainer, [before, *after.weights]


def test_nonfinite_loss_skips_the_step_and_is_counted():
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 8), torch.randint(0, 3, (8,))
    x[0, 0, 0] = 1000.0  # the first batch gives NaN logits
    task, trainer, weights = guarded_fit(x, y)
    assert task.nonfinite_steps == 1
    assert trainer.callback_metrics["train/nonfinite_steps"] == 1.0
    for name, value in weights[0].items():  # the NaN batch left every weight as it was ...
        torch.testing.assert_close(weights[1][name], value)
        assert not torch.equal(weights[2][name], value)  # ... the good batch moved them
    # Skipping the NaN batch is the same as training on the good batch alone.
    alone, _, alone_weights = guarded_fit(x[4:], y[4:])
    assert alone.nonfinite_steps == 0
    for name, value in weights[0].items():
        torch.testing.assert_close(alone_weights[0][name], value)
        torch.testing.assert_close(alone.net.state_dict()[name], task.net.state_dict()[name])


# ---------------------------------------------------------------------------- the networks
@pytest.mark.parametrize("backbone, head", [("resnet50", "fc"),
                                            ("mobilenet_v3_large", "classifier.3"),
                                            ("efficientnet_v2_s", "classifier.1")])
def test_torchvision_networks_classify_spectrogram_images(backbone, head):
    torch.manual_seed(0)
    net = SpectrogramImageCNN(num_classes=5, in_channels=33, seq_len=23, backbone=backbone,
                              image_size=32).eval()
    assert net.backbone.get_submodule(head).out_features == 5
    x = torch.randn(2, 33, 23)
    with torch.no_grad():
        logits = net(x)
        images = net.images(x)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    assert images.shape == (2, 3, 32, 32)  # one lead repeated to RGB
    torch.testing.assert_close(images[:, 0], images[:, 2])
    assert abs(float(images.mean())) < 0.2  # standardised per image before resizing
    with pytest.raises(ValueError, match="expected spectrograms of 33 rows x 23 frames"):
        net(torch.randn(2, 33, 46))


@pytest.mark.parametrize("lead_names", [["MLII"], {"mitdb": ["MLII"], "svdb": ["ECG1"]}])
def test_the_data_facts_lead_names_do_not_reach_the_image_lead_count(lead_names):
    """run.py passes every data fact a net's signature names; the data's ``leads`` (names)
    must not replace the image's lead count of the config."""
    cfg = compose_config(["experiment=spectrogram_resnet50", "model.net.image_size=32"])
    facts = {"num_classes": 5, "in_channels": 33, "seq_len": 23, "leads": lead_names,
             "auxiliary_inputs": {}, "sampling_rate_hz": 128.0}
    net = instantiate_with_facts(cfg.model.net, facts)
    assert net.image_leads == 1 and net.in_channels == 33 and net.seq_len == 23


def test_batch_norm_momentum_is_set_unless_null():
    def momenta(net):
        return {m.momentum for m in net.modules() if isinstance(m, nn.BatchNorm2d)}

    assert momenta(SpectrogramImageCNN(5, 33, 23, backbone="mobilenet_v3_large")) == {0.1}
    kept = SpectrogramImageCNN(5, 33, 23, backbone="mobilenet_v3_large", bn_momentum=None)
    assert momenta(kept) == {0.01}  # torchvision's own value


def test_bad_network_options_are_clear_errors():
    with pytest.raises(ValueError, match="backbone='vgg16' is unknown"):
        SpectrogramImageCNN(5, 33, 23, backbone="vgg16")
    with pytest.raises(ValueError, match="model.net.image_leads=2"):
        SpectrogramImageCNN(5, 66, 23, image_leads=2)
    with pytest.raises(ValueError, match="image_size=16 is below 32"):
        SpectrogramImageCNN(5, 33, 23, image_size=16)


def test_pretrained_weights_come_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.MobileNet_V3_Large_Weights.DEFAULT
    cached = tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.manual_seed(3)  # stand-in "ImageNet" weights: what torchvision finds in the cache
    saved = torchvision.models.mobilenet_v3_large(weights=None).state_dict()
    torch.save(saved, cached)
    net = SpectrogramImageCNN(5, 33, 23, backbone="mobilenet_v3_large", pretrained=True)
    ours = net.backbone.state_dict()
    for name in ("features.0.0.weight", "features.16.1.running_var", "classifier.0.weight"):
        torch.testing.assert_close(ours[name], saved[name])
    assert ours["classifier.3.weight"].shape == (5, 1280)  # a new head for our classes
    cached.write_bytes(b"not a checkpoint")  # a damaged download: a clear error
    with pytest.raises(RuntimeError, match=rf"put {weights.url} at .*{cached.name}.*"
                                           "model.net.pretrained=false"):
        SpectrogramImageCNN(5, 33, 23, backbone="mobilenet_v3_large", pretrained=True)


# ---------------------------------------------------------------------------- EMA
class RecordThresholds(Callback):
    def __init__(self) -> None:
        self.per_epoch = []

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.per_epoch.append(pl_module.gmean_thresholds.clone())


def test_ema_checkpoint_keeps_the_thresholds_of_its_epoch(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(256, 4, 8)
    y = (x[:, 0, 0] > 0).long() + (x[:, 1, 0] > 1).long()
    loader = named_loader(x, y, batch_size=32)
    task = ClassificationTask(nn.Sequential(nn.Flatten(), nn.Linear(32, 3)), nn.CrossEntropyLoss(),
                              partial(torch.optim.AdamW, lr=1e-2), class_names=["a", "b", "c"],
                              bootstrap_resamples=0)
    record, ema = RecordThresholds(), ClassificationEMA(decay=0.999)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="val/f1_macro", mode="max", save_top_k=-1,
                                 filename="{epoch}")
    trainer = L.Trainer(max_epochs=3, callbacks=[ema, record, checkpoint], default_root_dir=tmp_path,
                        **QUIET)
    trainer.fit(task, loader, loader)
    for epoch, chosen in enumerate(record.per_epoch):
        saved = torch.load(tmp_path / f"epoch={epoch}.ckpt", weights_only=False)
        torch.testing.assert_close(saved["state_dict"]["gmean_thresholds"], chosen)
        assert "current_model_state" in saved  # the EMA weights are what the checkpoint holds
    torch.testing.assert_close(task.gmean_thresholds, record.per_epoch[-1])
    assert len(set(round(float(t[0]), 6) for t in record.per_epoch)) > 1  # they did change
    # Testing a checkpoint right after fitting tests its averaged weights, those validated.
    trainer.test(task, loader, ckpt_path=str(tmp_path / "epoch=1.ckpt"))
    saved = torch.load(tmp_path / "epoch=1.ckpt", weights_only=False)
    for name, value in task.state_dict().items():
        torch.testing.assert_close(value, saved["state_dict"][name])
    assert not torch.equal(saved["state_dict"]["net.1.weight"],
                           saved["current_model_state"]["net.1.weight"])


# ---------------------------------------------------------------------------- presets
@pytest.fixture(scope="module")
def study_root(tmp_path_factory, mitdb_dir):
    """mitdb/ with real records 100, 106, 208 (208: F beats) and svdb/ with written records."""
    root = tmp_path_factory.mktemp("study")
    make_small_mitdb(root / "mitdb", records=("100", "106", "208"))
    write_svdb(root / "svdb")
    return root


def preset_config(tmp_path, cache_dir, *overrides):
    return compose_config([*overrides, "logger=none", f"paths.root_dir={tmp_path}",
                           f"paths.output_dir={tmp_path}/run", f"paths.cache_dir={cache_dir}",
                           "callbacks.progress_bar.refresh_rate=0", "debug=fdr",
                           "model.net.image_size=32", "data.batch_size=8",
                           "bootstrap_resamples=10"])


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_offline_on_mitdb_svdb(preset, study_root, tmp_path, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "study-cache"  # shared by the three presets
    cfg = preset_config(tmp_path, cache, f"experiment={preset}", f"data.root={study_root}",
                        "data.split=kfold", "data.num_folds=3")
    assert cfg.data._target_.endswith("MITDBSVDBDataModule") and cfg.loss.gamma == 2.0
    assert cfg.trainer.gradient_clip_val == 1.0 and cfg.model.ema_decay == 0.999
    value, metrics = train(cfg)
    assert 0.0 <= metrics["test/f1_macro"] <= 1.0 and "train/nonfinite_steps" in metrics


def test_preset_takes_mitdb_alone_by_override(study_root, tmp_path):
    cfg = preset_config(tmp_path, tmp_path / "cache", "experiment=spectrogram_mobilenetv3",
                        "data=mitdb_spectrogram", f"data.root={study_root / 'mitdb'}",
                        "data.split=records", "data.train_records=[208]",
                        "data.val_records=[106]", "data.test_records=[100]")
    assert cfg.data._target_.endswith("MITBIHDataModule") and cfg.data.segmentation == "sliding"
    assert cfg.data.fs == 128.0 and cfg.model.net.backbone == "mobilenet_v3_large"
    value, metrics = train(cfg)
    assert 0.0 <= metrics["test/accuracy"] <= 1.0
