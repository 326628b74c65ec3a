"""AAMI-scored figures (N, S, V, F; Q left out), the record-level bootstrap, per-record results."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
import wfdb
from sklearn.metrics import f1_score, precision_score, recall_score

from ecg_lightning.data.labels import AAMI_CLASSES
from ecg_lightning.metrics import (flatten_scored, per_record_rows, record_bootstrap,
                                   scored_decisions, scored_metrics)
from ecg_lightning.run import train
from ecg_lightning.summary import compose_config

NAMES = ["N", "S", "V", "F"]


def test_q_beats_are_left_out_and_decisions_are_the_best_scored_class():
    # classes N S V F Q; the second item's true class is Q (unscored)
    probs = torch.tensor([[0.1, 0.2, 0.1, 0.0, 0.6],   # Q most probable -> S among N S V F
                          [0.9, 0.0, 0.0, 0.0, 0.1],
                          [0.0, 0.1, 0.8, 0.1, 0.0]])
    targets = torch.tensor([1, 4, 2])
    kept, target, predicted = scored_decisions(probs, targets, [0, 1, 2, 3])
    assert kept.tolist() == [True, False, True]
    assert target.tolist() == [1, 2] and predicted.tolist() == [1, 2]


def test_scored_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, 500)
    predicted = np.where(rng.random(500) < 0.7, target, rng.integers(0, 4, 500))
    results = scored_metrics(torch.from_numpy(target), torch.from_numpy(predicted), 4)
    flat = flatten_scored("test", results, NAMES, torch.from_numpy(target))
    assert flat["test/nsvf/accuracy"] == pytest.approx(float((target == predicted).mean()))
    assert flat["test/nsvf/f1_macro"] == pytest.approx(f1_score(target, predicted, average="macro"))
    for index, name in enumerate(NAMES):
        assert flat[f"test/nsvf/sensitivity/{name}"] == pytest.approx(
            recall_score(target, predicted, labels=[index], average="macro"))
        assert flat[f"test/nsvf/precision/{name}"] == pytest.approx(
            precision_score(target, predicted, labels=[index], average="macro"), abs=1e-6)


def test_record_bootstrap_is_wider_than_the_beat_bootstrap():
    """Two kinds of records: ones where every beat is right, ones where half are wrong. The
    record-level interval reflects that records differ; resampling beats hides it."""
    rng = np.random.default_rng(1)
    target, predicted, record = [], [], []
    for code in range(20):
        beats = 500
        t = rng.integers(0, 2, beats)
        p = t.copy() if code % 2 else np.where(rng.random(beats) < 0.5, 1 - t, t)
        target.append(t), predicted.append(p), record.append(np.full(beats, code))
    target, predicted, record = (torch.from_numpy(np.concatenate(a)) for a in
                                 (target, predicted, record))
    cluster = record_bootstrap(target, predicted, record, NAMES, resamples=200, seed=0)
    again = record_bootstrap(target, predicted, record, NAMES, resamples=200, seed=0)
    assert cluster == again  # seeded
    point = float((target == predicted).float().mean())
    low, high = cluster["test/nsvf/accuracy_record_ci_low"], cluster["test/nsvf/accuracy_record_ci_high"]
    assert low < point < high
    # beat-level resampling of the same decisions
    generator = torch.Generator().manual_seed(0)
    beat_level = [float((target == predicted)[torch.randint(len(target), (len(target),),
                                                            generator=generator)].float().mean())
                  for _ in range(200)]
    beat_width = np.quantile(beat_level, 0.975) - np.quantile(beat_level, 0.025)
    assert high - low > 3 * beat_width


def test_per_record_rows_count_and_rate():
    target = torch.tensor([0, 0, 1, 1, 0, 2])
    predicted = torch.tensor([0, 1, 1, 0, 0, 2])
    record = torch.tensor([0, 0, 0, 0, 1, 1])
    rows = per_record_rows(target, predicted, record, ["232", "100"], NAMES)
    assert rows[0]["record"] == "232" and rows[0]["S_beats"] == 2
    assert rows[0]["S_Se"] == 0.5 and rows[0]["S_+P"] == 0.5 and rows[0]["V_Se"] == ""
    assert rows[1] == {"record": "100", "beats": 2, "N_beats": 1, "N_Se": 1.0, "N_+P": 1.0,
                       "S_beats": 0, "S_Se": "", "S_+P": "", "V_beats": 1, "V_Se": 1.0,
                       "V_+P": 1.0, "F_beats": 0, "F_Se": "", "F_+P": ""}


def test_inter_patient_runs_keep_the_best_epoch_over_the_scored_classes():
    """Validation records without Q: a five-class macro-F1 loses a fifth whenever one beat is
    called Q, so the inter-patient data monitors N, S, V, F; other data keeps its own."""
    default = compose_config([])
    assert default.monitor.metric == "val/nsvf/f1_macro" and default.monitor.mode == "max"
    assert (default.callbacks.model_checkpoint.monitor == default.callbacks.early_stopping.monitor
            == default.optimized_metric == "val/nsvf/f1_macro")
    assert compose_config(["experiment=interpatient_best"]).monitor.metric == "val/nsvf/f1_macro"
    assert compose_config(["data=mitdb"]).monitor.metric == "val/f1_macro"
    # no scored classes in another label scheme: the metric it logs
    assert compose_config(["data.label_scheme=binary"]).monitor.metric == "val/f1_macro"
    assert compose_config(["monitor=f1_macro"]).monitor.metric == "val/f1_macro"  # the user's word wins
    assert compose_config(["experiment=ptbxl_gru"]).monitor.metric == "val/loss"


def test_a_run_writes_scored_figures_and_per_record_results(tmp_path, mitdb_cache_dir):
    cfg = compose_config([f"paths.output_dir={tmp_path}", f"data.cache_dir={mitdb_cache_dir}",
                          "logger=none", "debug=limit", "trainer.max_epochs=1",
                          "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
                          "trainer.limit_test_batches=12", "bootstrap_resamples=50",
                          "callbacks.progress_bar.refresh_rate=0"])
    _, metrics = train(cfg)
    for name in ("test/nsvf/accuracy", "test/nsvf/f1_macro", "test/nsvf/sensitivity/N",
                 "test/nsvf/accuracy_record_ci_low", "test/nsvf/f1_macro_record_ci_high",
                 "val/nsvf/f1_macro"):
        assert name in metrics, name
    assert cfg.monitor.metric == "val/nsvf/f1_macro"  # checkpointing and early stopping found it
    with (tmp_path / "per_record.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["record"] for row in rows] == ["100", "103"]  # 12 batches of 256 test beats
    assert sum(int(row["beats"]) for row in rows) == 12 * 256
    report = json.loads((tmp_path / "metrics_test.json").read_text())
    assert report["per_record"][0]["record"] == "100"
    assert (tmp_path / "per_record.png").stat().st_size > 0


def test_a_mitdb_checkpoint_is_evaluated_on_svdb_as_written(tmp_path, mitdb_cache_dir, data_dir):
    """External validation in one command: the checkpoint's rate, window, RR features and
    leads (all -> SVDB's ECG1 and ECG2) are carried onto SVDB, every record tests."""
    from ecg_lightning.evaluate import evaluate

    svdb = tmp_path / "svdb"
    svdb.mkdir()
    for record in ("800", "860"):  # 860: the annotation at its very last sample
        for ext in ("hea", "dat", "atr"):
            (svdb / f"{record}.{ext}").symlink_to(data_dir / "svdb" / f"{record}.{ext}")
    (svdb / "RECORDS").write_text("800\n860\n")
    cfg = compose_config([f"paths.output_dir={tmp_path / 'run'}",
                          f"data.cache_dir={mitdb_cache_dir}", "logger=none", "debug=limit",
                          "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                          "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
                          "data.leads=all", "data.rr_features=[pre_norm,post_norm]",
                          "bootstrap_resamples=20", "callbacks.progress_bar.refresh_rate=0"])
    train(cfg)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    _, metrics = evaluate(str(checkpoint), ["data=svdb", f"data.root={svdb}", "logger=none",
                                            f"paths.root_dir={tmp_path}",
                                            f"paths.cache_dir={tmp_path / 'cache'}",
                                            "bootstrap_resamples=20"])
    assert "test/nsvf/sensitivity/S" in metrics and "test/nsvf/accuracy_record_ci_low" in metrics
    folder = next((tmp_path / "outputs" / "evaluations").iterdir())
    rows = list(csv.DictReader((folder / "per_record.csv").open()))
    assert [row["record"] for row in rows] == ["800", "860"]
    ann = wfdb.rdann(str(svdb / "800"), "atr")
    scored = sum(symbol in AAMI_CLASSES[c] for symbol in ann.symbol for c in NAMES)
    assert int(rows[0]["beats"]) == scored  # every N/S/V/F beat of 800, read at 360 Hz


def test_external_data_maps_leads_into_the_target_databases_naming(tmp_path):
    from ecg_lightning.evaluate import external_data

    def data(*overrides):
        return compose_config([*overrides, f"paths.output_dir={tmp_path}"])

    mitdb, svdb = data("data=mitdb_interpatient"), data("data=svdb")
    to_svdb = external_data(mitdb, svdb.data, {"sampling_rate_hz": 360.0, "lead_names": ["MLII"]})
    assert to_svdb["leads"] == ["ECG1"] and to_svdb["fs"] == 360.0
    assert to_svdb["split"] == "external" and to_svdb["record_template"] == "subtract"
    assert to_svdb["record_template_beats"] == "on_time"  # the template over the same beats
    older = OmegaConf.create(OmegaConf.to_container(mitdb))  # a checkpoint from before the option
    del older.data["record_template_beats"]
    assert external_data(older, svdb.data, {"sampling_rate_hz": 360.0, "lead_names": ["MLII"]}
                         )["record_template_beats"] == "all"
    assert to_svdb["rr_features"] == list(mitdb.data.rr_features)  # the checkpoint's features
    to_mitdb = external_data(svdb, mitdb.data, {"sampling_rate_hz": 128.0, "lead_names": ["ECG1"]})
    assert to_mitdb["leads"] == ["MLII"] and to_mitdb["fs"] == 128.0
    both = external_data(mitdb, svdb.data, {"sampling_rate_hz": 360.0, "lead_names": "all"})
    assert both["leads"] == "all"
    same_naming = external_data(svdb, data("data=nsrdb").data,
                                {"sampling_rate_hz": 128.0, "lead_names": ["ECG2"]})
    assert same_naming["leads"] == ["ECG2"]
