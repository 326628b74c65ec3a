"""RR-interval features, several leads, named inputs, fitted transforms, edge padding (real files)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import wfdb

from ecg_lightning.data.labels import BEAT_SYMBOLS
from ecg_lightning.data.mitdb import DS1, DS2, MITBIHDataModule
from ecg_lightning.data.rr import RR_FEATURES, rr_features
from ecg_lightning.predict import predict
from ecg_lightning.run import build_model, train
from ecg_lightning.summary import compose_config

RR = ["pre", "post", "local", "average"]
# de Chazal et al. 2004, Table I (AAMI classes of the MIT-BIH beat annotations)
DE_CHAZAL_COUNTS = {"DS1": {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8},
                    "DS2": {"N": 44259, "S": 1837, "V": 3221, "F": 388, "Q": 7}}


@pytest.fixture(scope="module")
def rr_two_leads(mitdb_dir, mitdb_cache_dir):
    datamodule = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir),
                                  leads="all", rr_features=list(RR_FEATURES))
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def test_every_beat_is_an_item_and_de_chazal_counts_hold(rr_two_leads):
    card = rr_two_leads.describe()
    splits = card["splits"]
    ds1 = {c: splits["train"]["per_class"][c] + splits["val"]["per_class"][c] for c in "NSVFQ"}
    assert ds1 == DE_CHAZAL_COUNTS["DS1"]
    assert splits["test"]["per_class"] == DE_CHAZAL_COUNTS["DS2"]
    assert card["windows_padded_at_record_edges"] > 0  # the first/last beats of the records
    assert sorted(np.unique(rr_two_leads.records[rr_two_leads.splits["test"]])) == sorted(DS2)


def test_edge_windows_are_padded_with_the_edge_value(mitdb_dir, small_mitdb, tmp_path):
    dm = MITBIHDataModule(root=str(small_mitdb(("100",))), cache_dir=str(tmp_path / "c"),
                          bandpass=None, normalize="none", split="intra_patient")
    dm.prepare_data()
    dm.setup()
    first = int(np.argmin(dm.samples))
    sample = int(dm.samples[first])
    pre = round(0.25 * 360)
    assert sample < pre  # the first annotation of 100 sits 18 samples in
    raw = wfdb.rdrecord(str(mitdb_dir / "100"), channel_names=["MLII"], sampto=400).p_signal[:, 0]
    window = dm.inputs["signal"][first, 0]
    np.testing.assert_allclose(window[:pre - sample], raw[0], atol=1e-5)
    np.testing.assert_allclose(window[pre - sample:pre + 20], raw[:sample + 20], atol=1e-5)


def test_rr_features_match_wfdb_annotations(rr_two_leads, mitdb_dir):
    dm = rr_two_leads
    assert dm.raw_inputs["rr"].shape == (len(dm.targets), len(RR_FEATURES))
    assert np.isfinite(dm.raw_inputs["rr"]).all()
    ann = wfdb.rdann(str(mitdb_dir / "119"), "atr")
    beats = np.unique(ann.sample[np.isin(ann.symbol, BEAT_SYMBOLS)])
    intervals = np.diff(beats) / 360.0
    mine = np.flatnonzero(dm.records == 119)
    order = mine[np.argsort(dm.samples[mine])]
    rr = dm.raw_inputs["rr"][order]
    column = {name: i for i, name in enumerate(RR_FEATURES)}
    # intervals that span a ~ (signal quality) mark are gaps, replaced by a neighbour
    marks = ann.sample[np.asarray(ann.symbol) == "~"]
    gap = np.array([((marks > a) & (marks <= b)).any() for a, b in zip(beats[:-1], beats[1:])])
    assert gap.any() and (intervals <= 3.0).all()
    valid = ~gap
    inner = np.flatnonzero(valid[:-1] & valid[1:]) + 1  # beats with both intervals valid
    np.testing.assert_allclose(rr[inner, column["pre"]], intervals[inner - 1], rtol=1e-5)
    np.testing.assert_allclose(rr[inner, column["post"]], intervals[inner], rtol=1e-5)
    before_gap = np.flatnonzero(gap)  # beat k's post interval is a gap: post <- its pre
    np.testing.assert_allclose(rr[before_gap[before_gap > 0], column["post"]],
                               rr[before_gap[before_gap > 0], column["pre"]], rtol=1e-5)
    intervals = intervals[valid]  # the average and local means skip the gaps
    # local: causal mean of the ten most recent pre intervals, this one included
    k = 50
    assert valid[:k].all()
    np.testing.assert_allclose(rr[k, column["local"]], np.diff(beats)[k - 10:k].mean() / 360.0,
                               rtol=1e-5)
    np.testing.assert_allclose(rr[:, column["pre_norm"]], rr[:, column["pre"]] / intervals.mean(),
                               rtol=1e-5)
    np.testing.assert_allclose(rr[:, column["pre_local"]],
                               rr[:, column["pre"]] / rr[:, column["local"]], rtol=1e-5)
    # first beat: no previous beat, takes its next interval; last beat: its previous one
    assert rr[0, column["pre"]] == pytest.approx(np.diff(beats)[0] / 360.0)
    assert rr[-1, column["post"]] == pytest.approx(np.diff(beats)[-1] / 360.0)


def test_rr_gaps_take_documented_values():
    beats = np.array([0, 100, 200, 1500, 1600, 1700])  # a 13 s hole between 200 and 1500
    values = rr_features(beats, beats, np.array([], dtype=np.int64), 100.0,
                         ["pre", "post", "local", "average"], local_beats=3, gap_seconds=3.0)
    assert np.isfinite(values).all()
    np.testing.assert_allclose(values[:, 3], 1.0)  # the gap is not part of the average
    assert values[2, 1] == pytest.approx(1.0)  # beside the gap: post <- its own pre
    assert values[3, 0] == pytest.approx(1.0)  # pre <- its own post
    # a ~ mark inside an interval makes it a gap too
    marked = rr_features(beats[:3], beats[:3], np.array([150]), 100.0, ["post"])
    assert marked[1, 0] == pytest.approx(1.0)  # 100 -> 200 spans the mark: post <- pre
    with pytest.raises(ValueError, match="at least two"):
        rr_features(np.array([5]), np.array([5]), np.array([]), 100.0, ["pre"], record="x/1")


def test_irregularity_tells_a_premature_beat_from_atrial_fibrillation(rr_two_leads):
    fs, none = 100.0, np.array([], dtype=np.int64)
    regular = np.full(40, 0.8)
    regular[20], regular[21] = 0.5, 1.1  # one premature beat and its compensatory pause
    beats = np.concatenate([[0], np.cumsum(regular * fs)]).astype(np.int64)
    one_early = rr_features(beats, beats, none, fs, ["irregularity"], local_beats=5)[:, 0]
    assert one_early[21] == pytest.approx(0.0)  # medians ignore the one early beat
    assert one_early.max() < 0.05
    chaotic = np.random.default_rng(0).uniform(0.4, 1.2, 40)
    beats = np.concatenate([[0], np.cumsum(chaotic * fs)]).astype(np.int64)
    fibrillation = rr_features(beats, beats, none, fs, ["irregularity"], local_beats=5)[:, 0]
    assert np.median(fibrillation) > 0.2
    # on MIT-BIH: the N beats of the atrial fibrillation records of DS1 (201, 203) are far
    # more irregular than those of sinus-rhythm records (100, 101)
    column = RR_FEATURES.index("irregularity")
    raw, labels = rr_two_leads.raw_inputs["rr"][:, column], rr_two_leads.targets
    normal = labels == rr_two_leads.class_names.index("N")
    median = {r: np.median(raw[(rr_two_leads.records == r) & normal]) for r in (101, 201, 203)}
    assert median[201] > 3 * median[101] and median[203] > 3 * median[101]


def test_two_leads_by_name_and_all(rr_two_leads, mitdb_dir, mitdb_cache_dir):
    assert rr_two_leads.inputs["signal"].shape[1] == 2
    assert rr_two_leads.info["leads"]["114"] == ["MLII", "V5"]  # MLII first: 114 stores it second
    with pytest.raises(ValueError) as error:
        dm = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir),
                              leads=["MLII", "V1"])
        dm.prepare_data()
        dm.setup()
    for record, lead in (("100", "V5"), ("103", "V2"), ("117", "V2"), ("123", "V5"),
                         ("124", "V4")):
        assert f"{record}: MLII, {lead}" in str(error.value)
    assert "data.leads=all" in str(error.value)
    with pytest.raises(ValueError, match="both set"):
        MITBIHDataModule(root=str(mitdb_dir), lead="MLII", leads=["MLII", "V1"])
    with pytest.raises(ValueError, match="data.leads"):
        MITBIHDataModule(root=str(mitdb_dir), leads="every")


def test_rr_features_need_beat_positions(data_dir):
    from ecg_lightning.data.ecg5000 import ECG5000DataModule
    from ecg_lightning.data.ptbxl import PTBXLDataModule

    for module in (ECG5000DataModule, PTBXLDataModule):
        with pytest.raises(ValueError, match="no RR intervals"):
            module(rr_features=["pre"])
    with pytest.raises(ValueError, match="choose distinct names"):
        MITBIHDataModule(rr_features=["pre", "tempo"])


def test_fitted_transform_state_is_checked(rr_two_leads, mitdb_dir, mitdb_cache_dir):
    state = rr_two_leads.state_dict()
    assert set(state["transforms"]) == {"rr_scaling"}
    scaled = rr_two_leads.inputs["rr"][rr_two_leads.splits["train"]]
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-3)  # fitted on train only
    assert abs(rr_two_leads.inputs["rr"][rr_two_leads.splits["test"]].mean()) > 1e-3
    other = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir), leads="all",
                             rr_features=list(RR_FEATURES))
    with pytest.raises(ValueError, match="no fitted state of transform 'rr_scaling'"):
        other.load_state_dict({})
    plain = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir))
    with pytest.raises(ValueError, match="rr_scaling"):
        plain.load_state_dict(state)


BEAT_MODELS = ["beat_cnn", "lstm", "gru", "dbgru", "kim2020"]
SPECTROGRAM_MODELS = ["binary_bilstm", "binary_cnn", "binary_alexnet", "binary_alexnet2d", "binary_gru",
                      "spectrogram_mobilenetv3"]


@pytest.mark.parametrize("model", BEAT_MODELS + SPECTROGRAM_MODELS)
def test_every_beat_classifier_takes_rr_features(model, tmp_path):
    spectrogram = model in SPECTROGRAM_MODELS
    cfg = compose_config([f"model={model}", f"paths.output_dir={tmp_path}"])
    facts = {"num_classes": 5, "in_channels": 33 if spectrogram else 2,
             "seq_len": 46 if spectrogram else 252, "auxiliary_inputs": {"rr": 4},
             "class_names": list("NSVFQ"), "task": "multiclass", "class_counts": [10] * 5,
             "num_items": 50}
    from ecg_lightning.run import model_from_facts

    task = model_from_facts(cfg, facts)
    assert task.net.input_names == ("signal", "rr")
    batch = {"signal": torch.randn(4, facts["in_channels"], facts["seq_len"]),
             "rr": torch.randn(4, 4), "target": torch.zeros(4, dtype=torch.long)}
    task.eval()
    logits = task(batch)
    assert logits.shape == (4, 5)
    batch["rr"] = batch["rr"] + 5.0  # the RR branch reaches the decision
    assert not torch.allclose(task(batch), logits)


def test_an_autoencoder_refuses_auxiliary_inputs(tmp_path):
    from ecg_lightning.run import model_from_facts

    cfg = compose_config(["data=ecg5000", "model=lstm_ae", "loss=l1",
                          f"paths.output_dir={tmp_path}"])
    facts = {"num_classes": 2, "in_channels": 1, "seq_len": 140, "auxiliary_inputs": {"rr": 4},
             "class_names": ["normal", "abnormal"], "task": "multiclass"}
    with pytest.raises(ValueError, match="cannot use the auxiliary inputs"):
        model_from_facts(cfg, facts)


def test_train_predict_with_rr_and_two_leads(tmp_path, mitdb_dir, mitdb_cache_dir):
    """A checkpoint trained with RR features annotates a new record with the same features;
    a record with one beat is refused."""
    cfg = compose_config([f"paths.output_dir={tmp_path / 'run'}", f"data.cache_dir={mitdb_cache_dir}",
                          "logger=none", "debug=limit", "trainer.max_epochs=1",
                          "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
                          "trainer.limit_test_batches=2", "data.leads=all",
                          "data.rr_features=[pre,post,local,average]", "augment=default",
                          "callbacks.progress_bar.refresh_rate=0"])
    train(cfg)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert "rr_scaling" in state["MITBIHDataModule"]["transforms"]
    result = predict(str(checkpoint), str(mitdb_dir / "100"), out=str(tmp_path / "pred"))
    ann = wfdb.rdann(str(mitdb_dir / "100"), "atr")
    assert len(result["labels"]) == int(np.isin(ann.symbol, BEAT_SYMBOLS).sum())
    # a two-channel record with a single annotated beat
    signal = np.random.default_rng(0).normal(size=(2000, 2)) * 0.1
    wfdb.wrsamp("one", fs=360, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=signal,
                fmt=["212", "212"], write_dir=str(tmp_path))
    wfdb.wrann("one", "atr", np.array([1000]), symbol=["N"], write_dir=str(tmp_path))
    with pytest.raises(ValueError, match="at least two"):
        predict(str(checkpoint), str(tmp_path / "one"), out=str(tmp_path / "pred-one"))
    # a one-lead record for a model of two leads
    wfdb.wrsamp("mlii", fs=360, units=["mV"], sig_name=["MLII"], p_signal=signal[:, :1],
                fmt=["212"], write_dir=str(tmp_path))
    wfdb.wrann("mlii", "atr", np.array([500, 1000, 1500]), symbol=["N"] * 3,
               write_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"has 1 lead\(s\) for data.leads=all, the model was "
                                         r"trained on 2 \(MLII here\)"):
        predict(str(checkpoint), str(tmp_path / "mlii"), out=str(tmp_path / "pred-mlii"))


def test_augmentation_touches_training_batches_only(mitdb_dir, mitdb_cache_dir, tmp_path):
    import lightning as L

    cfg = compose_config([f"data.cache_dir={mitdb_cache_dir}", "augment=default",
                          f"paths.output_dir={tmp_path}",
                          "data.augment.noise_probability=1.0"])
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    seen = {}

    class Spy(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, index):
            seen["train"] = batch["signal"].clone()

        def on_validation_batch_start(self, trainer, module, batch, index, loader=0):
            seen.setdefault("val", batch["signal"].clone())

    model = build_model(cfg, datamodule)
    trainer = L.Trainer(fast_dev_run=1, logger=False, enable_progress_bar=False,
                        callbacks=[Spy()], accelerator="cpu")
    trainer.fit(model, datamodule=datamodule)
    val = torch.from_numpy(datamodule.inputs["signal"][datamodule.splits["val"][:len(seen["val"])]])
    torch.testing.assert_close(seen["val"], val)  # validation untouched
    train_rows = datamodule.dataset("train").inputs["signal"]
    nearest = ((train_rows[:, None] - seen["train"][None, :2]) ** 2).sum(dim=(2, 3)).min(dim=0)
    assert (nearest.values > 1e-3).all()  # every training item got noise (p = 1)


def test_record_template_subtracts_each_records_median_beat(mitdb_dir, mitdb_cache_dir):
    plain = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir), leads="all")
    subtract = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir), leads="all",
                                record_template="subtract")
    append = MITBIHDataModule(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir), leads="all",
                              record_template="append")
    for dm in (plain, subtract, append):
        dm.prepare_data()
        dm.setup("test")
    mine = np.flatnonzero(plain.records == 232)
    windows = plain.inputs["signal"][mine]
    expected = windows - np.median(windows, axis=0, keepdims=True)
    np.testing.assert_allclose(subtract.inputs["signal"][mine], expected, atol=1e-5)
    assert append.inputs["signal"].shape[1] == 4  # both leads, then their differences
    np.testing.assert_allclose(append.inputs["signal"][mine, :2], windows, atol=1e-6)
    np.testing.assert_allclose(append.inputs["signal"][mine, 2:], expected, atol=1e-5)
    with pytest.raises(ValueError, match="data.record_template='median'"):
        MITBIHDataModule(record_template="median")
    with pytest.raises(ValueError, match="needs data.segmentation=beats and no data.spectrogram"):
        MITBIHDataModule(record_template="subtract", spectrogram={"nperseg": 64, "hop": 32})


def test_on_time_record_template_leaves_early_beats_out(mitdb_dir, mitdb_cache_dir):
    options = dict(root=str(mitdb_dir), cache_dir=str(mitdb_cache_dir), rr_local_beats=20)
    plain = MITBIHDataModule(**options)
    on_time = MITBIHDataModule(**options, record_template="subtract",
                               record_template_beats="on_time")
    for dm in (plain, on_time):
        dm.prepare_data()
        dm.setup("test")
    assert on_time.preprocessing_config() != MITBIHDataModule(
        **options, record_template="subtract").preprocessing_config()  # its own cached medians
    # record 208 (46 % of its beats V or F): the median over the beats whose RR interval is at
    # least their 20-beat local mean, from the record's own annotations
    annotation = wfdb.rdann(str(mitdb_dir / "208"), "atr")
    symbols = np.asarray(annotation.symbol)
    beats = np.unique(annotation.sample[np.isin(symbols, BEAT_SYMBOLS)])
    mine = np.flatnonzero(plain.records == 208)
    pre_local = rr_features(plain.samples[mine], beats, annotation.sample[symbols == "~"],
                            360.0, ["pre_local"], 20)[:, 0]
    windows = plain.inputs["signal"][mine]
    template = np.median(windows[pre_local >= 1], axis=0, keepdims=True)
    np.testing.assert_allclose(on_time.inputs["signal"][mine], windows - template, atol=1e-5)
    # and it is the patient's normal beat more than the median of every beat is
    normal = np.median(windows[plain.targets[mine] == plain.class_names.index("N")], axis=0)
    every = np.median(windows, axis=0)
    assert np.abs(template[0] - normal).mean() < 0.5 * np.abs(every - normal).mean()
    with pytest.raises(ValueError, match="data.record_template_beats='late'"):
        MITBIHDataModule(record_template="subtract", record_template_beats="late")


def test_rr_only_ablation_reads_no_window(tmp_path):
    from ecg_lightning.run import model_from_facts

    cfg = compose_config(["ablation=rr_only", f"paths.output_dir={tmp_path}"])
    facts = {"num_classes": 5, "in_channels": 2, "seq_len": 252, "auxiliary_inputs": {"rr": 4},
             "class_names": list("NSVFQ"), "task": "multiclass", "class_counts": [10] * 5,
             "num_items": 50}
    task = model_from_facts(cfg, facts).eval()
    rr = torch.randn(3, 4)
    one = task({"signal": torch.randn(3, 2, 252), "rr": rr})
    other = task({"signal": torch.randn(3, 2, 252), "rr": rr})
    torch.testing.assert_close(one, other)  # the window changes nothing
    cfg = compose_config(["model=rr_only", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ValueError, match="no auxiliary input"):
        model_from_facts(cfg, {**facts, "auxiliary_inputs": {}})
