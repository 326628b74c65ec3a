"""Ju et al. 2019: PCA in the datamodule base (train-only fit, checkpointed state) and the DBGRU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from ecg_lightning.data.mitdb import MITBIHDataModule
from ecg_lightning.models.ju2019 import DeepBidirectionalGRU
from ecg_lightning.run import train
from ecg_lightning.summary import compose_config

K = 12


@pytest.fixture(scope="module")
def pca_datamodule(mitdb_dir, mitdb_cache_dir):
    datamodule = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir),
                                  pca_components=K)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def pca_of(datamodule) -> PCA:
    transform, = datamodule.transforms
    assert transform.name == "pca" and transform.input == "signal"
    return transform.estimator


def test_pca_is_fitted_on_the_training_split_only(pca_datamodule):
    dm = pca_datamodule
    assert dm.inputs["signal"].shape == (len(dm.targets), 1, K)
    assert dm.dataset("train").inputs["signal"].shape == (len(dm.splits["train"]), 1, K)
    raw = dm.raw_inputs["signal"]
    train_inputs = raw[dm.splits["train"]].reshape(len(dm.splits["train"]), -1)
    expected = PCA(n_components=K).fit(train_inputs)
    ours = pca_of(dm)
    for component, theirs in zip(ours.components_, expected.components_):  # equal up to sign
        assert abs(abs(float(component @ theirs)) - 1.0) < 1e-3
    # Fitted on all items instead, the mean would differ: the test split did not shape it.
    all_mean = raw.reshape(len(raw), -1).mean(axis=0)
    assert np.allclose(ours.mean_, expected.mean_, atol=1e-5)
    assert not np.allclose(ours.mean_, all_mean, atol=1e-5)
    card = dm.describe()
    assert card["pca"]["components"] == K and 0.0 < card["pca"]["explained_variance"] <= 1.0
    assert card["window_samples"] == 252


def test_state_dict_round_trip_reuses_the_projection(pca_datamodule, mitdb_dir, mitdb_cache_dir,
                                                     monkeypatch):
    state = pca_datamodule.state_dict()
    mean = state["transforms"]["pca"][0]["mean_"]
    assert all(isinstance(v, float) for v in mean["ndarray"])  # plain lists, no numpy
    other = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir),
                             pca_components=K, split="record")  # other train split: other fit
    other.load_state_dict(state)
    monkeypatch.setattr(other.transforms[0], "fit", lambda *a: pytest.fail("refitted a loaded PCA"))
    other.setup()
    assert other.state_dict() == state
    same = np.isin(other.item_index, pca_datamodule.item_index[:100])
    np.testing.assert_allclose(other.inputs["signal"][same], pca_datamodule.inputs["signal"][:100],
                               atol=1e-4)


def test_too_many_components_is_a_clear_error(mitdb_dir, mitdb_cache_dir):
    datamodule = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir),
                                  pca_components=300)
    with pytest.raises(ValueError, match=r"data.pca_components=300: fitting 'pca' .* of 252 values"):
        datamodule.setup()


def test_dbgru_forward_shape():
    net = DeepBidirectionalGRU(num_classes=23, in_channels=1)
    assert len(net.grus) == 6 and net.grus[0].bidirectional
    assert net(torch.randn(4, 1, 30)).shape == (4, 23)


def compose(tmp_path, cache_dir, *overrides, logger="csv"):
    return compose_config([*overrides, f"logger={logger}", f"paths.root_dir={tmp_path}",
                           f"paths.output_dir={tmp_path}/run", f"paths.cache_dir={cache_dir}",
                           "callbacks.progress_bar.refresh_rate=0"])


@pytest.mark.slow  # 10-15 s; moved out of the fast suite to keep it under 10 minutes
def test_paper_preset_trains_in_process(tmp_path, mitdb_cache_dir, monkeypatch):
    """fast_dev_run of the preset, logged to MLflow: symbol class names such as "/" and '"'
    once made invalid MLflow param keys."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose(tmp_path, mitdb_cache_dir, "experiment=ju2019_dbgru_mitdb", "debug=fdr",
                  logger="mlflow")
    value, metrics = train(cfg)
    assert 0.0 <= value <= 1.0 and "test/accuracy" in metrics
    assert cfg.data.pca_components == 30 and cfg.data.label_scheme == "symbols"


def test_checkpoint_carries_the_pca_and_loads_weights_only(tmp_path, mitdb_cache_dir):
    cfg = compose(tmp_path, mitdb_cache_dir, "experiment=ju2019_dbgru_mitdb_interpatient",
                  "debug=limit", "data.pca_components=8", "model.net.hidden_sizes=[16,16]",
                  "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                  "trainer.limit_test_batches=1")
    train(cfg)
    best = sorted((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    assert best, list((tmp_path / "run").rglob("*"))
    checkpoint = torch.load(best[0], weights_only=True)
    pca, = checkpoint["MITBIHDataModule"]["transforms"]["pca"]
    assert pca["components_"]["shape"] == [8, 252]
    assert len(pca["explained_variance_ratio_"]["ndarray"]) == 8


def test_symbol_class_names_give_valid_metric_names():
    """MLflow refuses "val/f1//" (symbol "/"): such symbols are logged under an alias."""
    from mlflow.utils.validation import _validate_metric_name

    from ecg_lightning.data.labels import MITDB_SYMBOLS
    from ecg_lightning.metrics import metric_key

    keys = [f"val/f1/{metric_key(s)}" for s in MITDB_SYMBOLS]
    assert len(set(keys)) == len(keys) and "val/f1/paced" in keys and "val/f1/N" in keys
    for key in keys:
        _validate_metric_name(key)


def test_dbgru_reads_raw_windows_in_frames_and_the_preset_reads_pca_scores_one_per_step():
    """``model=dbgru`` on raw windows: frames of 9 samples (28 steps for 252 samples), so an
    epoch of ``run model=dbgru data=mitdb`` takes minutes, not hours; the preset keeps 1."""
    assert compose_config(["model=dbgru"]).model.net.frame_length == 9
    assert compose_config(["experiment=ju2019_dbgru_mitdb"]).model.net.frame_length == 1
    net = DeepBidirectionalGRU(num_classes=5, in_channels=1, hidden_sizes=(8, 8), frame_length=9)
    assert net.grus[0].input_size == 9
    assert net(torch.randn(2, 1, 252)).shape == (2, 5)
    with pytest.raises(ValueError, match="model.net.frame_length=0"):
        DeepBidirectionalGRU(num_classes=5, in_channels=1, frame_length=0)
