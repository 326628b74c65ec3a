"""ECG5000: the UCR reader, the datamodule's splits, the download, the reconstruction task, presets.

The real ``ECG5000_TRAIN.txt`` (500 beats) comes from ``$ECG_DATA_DIR``. The ``.ts``, ``.arff``
and ``.tsv`` files, the damaged files and the zip served by a loopback mirror are written by
these tests from its rows.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import serve_folder
from sklearn.metrics import roc_auc_score
from torchmetrics.functional.classification import binary_auroc

from ecg_lightning.data.download import DataUnavailableError
from ecg_lightning.data.ecg5000 import ECG5000DataModule
from ecg_lightning.data.ucr import UCRFormatError, read_ucr
from ecg_lightning.losses import CrossEntropy
from ecg_lightning.models.autoencoder import LSTMAutoencoder, TransformerAutoencoder
from ecg_lightning.run import train
from ecg_lightning.summary import compose_config
from ecg_lightning.tasks.reconstruction import ReconstructionTask, unit_scores

REPO = Path(__file__).resolve().parents[1]
UCR_COUNTS = [292, 177, 10, 19, 2]  # classes 1..5 in ECG5000_TRAIN
ABNORMAL = sum(UCR_COUNTS[1:])


@pytest.fixture(scope="module")
def train_file(data_dir) -> Path:
    path = data_dir / "ecg5000" / "ECG5000_TRAIN.txt"
    if not path.is_file():
        pytest.skip(f"ECG5000 not found at {path} (set ECG_DATA_DIR)")
    return path


@pytest.fixture(scope="module")
def rows(train_file):
    """The real file's (values [500, 140], labels "1".."5")."""
    series = read_ucr(train_file)
    return series.values, np.array(series.labels)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ecg5000-cache")


def prepared(root, cache_dir, **options) -> ECG5000DataModule:
    dm = ECG5000DataModule(root=str(root), cache_dir=str(cache_dir), **options)
    dm.prepare_data()
    dm.setup()
    return dm


def subset(rows, per_class: dict[str, int], skip: dict[str, int] | None = None):
    """``per_class[label]`` rows of every class, after the first ``skip[label]`` of it."""
    values, labels = rows
    skip = skip or {}
    index = np.concatenate([np.flatnonzero(labels == label)[skip.get(label, 0):][:n]
                            for label, n in per_class.items()])
    return values[index], labels[index]


# ---------------------------------------------------------------------------- writers (UCR formats)
def number(value: float) -> str:
    return f"{value:.9g}"  # exact for float32


def write_txt(path: Path, values, labels) -> Path:
    path.write_text("".join(f"  {float(label):.7e}" + "".join(f"  {number(v)}" for v in row) + "\n"
                            for row, label in zip(values, labels)))
    return path


def write_tsv(path: Path, values, labels) -> Path:
    path.write_text("".join("\t".join([label, *map(number, row)]) + "\n"
                            for row, label in zip(values, labels)))
    return path


def write_ts(path: Path, values, labels) -> Path:
    header = ("# written by tests/test_ecg5000.py\n@problemName ECG5000\n@timeStamps false\n"
              "@missing false\n@univariate true\n@equalLength true\n"
              f"@seriesLength {values.shape[1]}\n@classLabel true 1 2 3 4 5\n@data\n")
    path.write_text(header + "".join(",".join("?" if np.isnan(v) else number(v) for v in row)
                                     + f":{label}\n"
                                     for row, label in zip(values, labels)))
    return path


def write_arff(path: Path, values, labels) -> Path:
    header = ("% written by tests/test_ecg5000.py\n@relation ECG5000\n"
              + "".join(f"@attribute att{i + 1} numeric\n" for i in range(values.shape[1]))
              + "@attribute target {1,2,3,4,5}\n\n@data\n")
    path.write_text(header + "".join(",".join([*map(number, row), label]) + "\n"
                                     for row, label in zip(values, labels)))
    return path


WRITERS = {"txt": write_txt, "tsv": write_tsv, "ts": write_ts, "arff": write_arff}
HEADER_LINES = {"txt": 0, "tsv": 0, "ts": 9, "arff": 145}  # lines before the first series


# ---------------------------------------------------------------------------- the reader
def test_reader_reads_the_real_train_file(train_file):
    series = read_ucr(train_file)
    assert series.values.shape == (500, 140) and series.values.dtype == np.float32
    assert [series.labels.count(str(c)) for c in range(1, 6)] == UCR_COUNTS
    assert series.lines == list(range(1, 501)) and series.skipped == []
    reference = np.loadtxt(train_file)
    np.testing.assert_allclose(series.values, reference[:, 1:], rtol=1e-6)


@pytest.mark.parametrize("fmt", ["ts", "arff", "tsv", "txt"])
def test_every_format_reads_back_the_same_rows(tmp_path, rows, fmt):
    values, labels = subset(rows, {"1": 6, "2": 4, "3": 2, "4": 2, "5": 1})
    path = WRITERS[fmt](tmp_path / f"ECG5000_TRAIN.{fmt}", values, labels)
    series = read_ucr(path)
    np.testing.assert_array_equal(series.values, values)
    assert series.labels == list(labels)
    first = HEADER_LINES[fmt] + 1
    assert series.lines == list(range(first, first + len(labels)))


def damage(path: Path, line: int, new_text: str) -> Path:
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = new_text + "\n"
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize("fmt, line, text, message", [
    ("txt", 3, "1.0 0.5 abc 0.2", "sample 2 is 'abc', not a number"),
    ("txt", 4, "1.0 0.5 0.7", "2 samples, but line 1 has 140"),
    ("txt", 2, "2.0", "a label without samples"),
    ("tsv", 3, "1\t0.5\t\t0.2", "sample 2 is '', not a number"),
    ("ts", 11, "0.5,0.1:0.2:1", "expected 'v1,v2,...,vn:label'"),
    ("ts", 12, "0.5,x,0.2:1", "sample 2 is 'x', not a number"),
    ("arff", 149, "0.5,abc,2", "not a readable ARFF file"),
])
def test_a_malformed_row_names_file_and_line(tmp_path, rows, fmt, line, text, message):
    values, labels = subset(rows, {"1": 4, "2": 4})
    path = damage(WRITERS[fmt](tmp_path / f"ECG5000_TRAIN.{fmt}", values, labels), line, text)
    with pytest.raises(UCRFormatError) as excinfo:
        read_ucr(path)
    assert f"{path} line {line}" in str(excinfo.value) and message in str(excinfo.value)


def test_a_nan_sample_is_an_error_or_a_counted_skip(tmp_path, rows, cache_dir):
    values, labels = subset(rows, {"1": 30, "2": 20, "3": 5, "4": 5, "5": 2})
    values = values.copy()
    values[7, 12] = np.nan
    values[40, 0] = np.nan
    root = tmp_path / "ecg5000"
    root.mkdir()
    path = write_txt(root / "ECG5000_TRAIN.txt", values, labels)
    with pytest.raises(UCRFormatError, match=r"line 8: 1 missing \(NaN\) samples, the first at "
                                             r"sample 13; set data.on_nan=skip"):
        read_ucr(path)
    with pytest.raises(UCRFormatError, match="line 8"):  # the datamodule stops the same way
        prepared(root, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("manifest.json"))  # nothing cached
    # "?" in .ts is a missing value too
    ts = write_ts(tmp_path / "ECG5000_TRAIN.ts", values, labels)
    assert read_ucr(ts, on_nan="skip").skipped == [9 + 8, 9 + 41]

    dm = prepared(root, tmp_path / "cache", on_nan="skip")
    assert len(dm.targets) == len(labels) - 2
    card = dm.describe()
    assert card["rows_skipped_for_nan"] == {"TRAIN": 2}
    assert card["lines_skipped_for_nan"] == {"TRAIN": [8, 41]}
    assert not np.isnan(dm.inputs["signal"]).any() and not np.isnan(dm.raw_inputs["signal"]).any()


def test_an_unknown_label_names_its_line(tmp_path, rows):
    values, labels = subset(rows, {"1": 10, "2": 10})
    labels = labels.copy()
    labels[4] = "7"
    root = tmp_path / "ecg5000"
    root.mkdir()
    write_txt(root / "ECG5000_TRAIN.txt", values, labels)
    with pytest.raises(UCRFormatError, match=r"ECG5000_TRAIN.txt line 5: label '7' is not an? "
                                             r"ECG5000 class"):
        prepared(root, tmp_path / "cache")


# ---------------------------------------------------------------------------- splits
def test_stratified_split_is_seeded_disjoint_and_stratified(train_file, cache_dir):
    root = train_file.parent
    dm = prepared(root, cache_dir)
    again = prepared(root, cache_dir)
    other = prepared(root, cache_dir, seed=1)
    assert dm.split_paradigm == "stratified_random_of_train"
    assert set(dm.inputs) == {"signal"} and dm.inputs["signal"].shape == (500, 1, 140)
    assert dm.auxiliary_inputs == {} and not dm.transforms  # no fitted statistics by default
    assert dm.class_names == ["Normal", "R-on-T PVC", "PVC", "SP or EB", "Unclassified beat"]
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(dm.splits[name], again.splits[name])
    assert not np.array_equal(dm.splits["test"], other.splits["test"])
    together = np.concatenate(list(dm.splits.values()))
    assert sorted(together) == list(range(500))  # disjoint and complete
    assert len(np.unique(dm.groups)) == 500  # every row its own subject
    for name, fraction in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        counts = np.bincount(dm.targets[dm.splits[name]], minlength=5)
        # every class with 10 beats or more is split in proportion, to within one beat
        assert all(abs(c - fraction * n) <= 1 for c, n in zip(counts, UCR_COUNTS) if n >= 10), counts
    card = dm.describe()
    assert card["split_paradigm"] == "stratified_random_of_train"
    assert card["files"] == {"TRAIN": {"name": "ECG5000_TRAIN.txt", "rows": 500}}


def test_anomaly_trains_and_validates_on_normal_beats_only(train_file, cache_dir):
    root = train_file.parent
    classes = prepared(root, cache_dir)
    anomaly = prepared(root, cache_dir, label_scheme="anomaly")
    assert anomaly.class_names == ["normal", "abnormal"]
    for name in ("train", "val"):
        assert (anomaly.targets[anomaly.splits[name]] == 0).all()
        np.testing.assert_array_equal(  # the normal beats of the same classification split
            anomaly.splits[name], classes.splits[name][classes.targets[classes.splits[name]] == 0])
    test = anomaly.splits["test"]
    assert (anomaly.targets[test] == 1).sum() == ABNORMAL  # every abnormal beat is tested
    assert (anomaly.targets[test] == 0).sum() == (classes.targets[classes.splits["test"]] == 0).sum()
    assert anomaly.class_counts == [len(anomaly.splits["train"]), 0]

    kept = prepared(root, cache_dir, label_scheme="anomaly", abnormal_to_test=False)
    np.testing.assert_array_equal(kept.splits["test"], classes.splits["test"])


def test_bad_options_are_refused(train_file, tmp_path):
    with pytest.raises(ValueError, match="data.label_scheme='aami' is unknown for ecg5000"):
        ECG5000DataModule(label_scheme="aami")
    with pytest.raises(ValueError, match="data.normal_class='7' is not a ECG5000 class"):
        ECG5000DataModule(normal_class="7")
    with pytest.raises(ValueError, match="data.split=official needs ECG5000_TEST"):
        prepared(train_file.parent, tmp_path, split="official")
    stray = tmp_path / "data" / "ecg5000"
    stray.mkdir(parents=True)
    (stray / "ECG5000_TRAIN.csv").write_text("1,2,3\n")
    with pytest.raises(DataUnavailableError, match=r"holds no ECG5000_TRAIN.txt\|tsv\|ts\|arff "
                                                   r"file; it has: ECG5000_TRAIN.csv"):
        prepared(stray, tmp_path / "cache")


# ---------------------------------------------------------------------------- download
@pytest.fixture
def mirror(tmp_path, rows):
    """A loopback server with ``ECG5000.zip``: TRAIN as .ts, TEST as .arff, and a decoy file."""
    served = tmp_path / "served"
    served.mkdir()
    train = {"1": 40, "2": 25, "3": 4, "4": 6, "5": 1}
    parts = {"TRAIN": subset(rows, train),  # TEST: the next rows of every class
             "TEST": subset(rows, {"1": 20, "2": 10, "3": 3, "4": 3, "5": 1}, skip=train)}
    archive = served / "ECG5000.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ECG5000/ECG5000_TRAIN.ts",
                        write_ts(tmp_path / "train.ts", *parts["TRAIN"]).read_text())
        bundle.writestr("ECG5000/ECG5000_TEST.arff",
                        write_arff(tmp_path / "test.arff", *parts["TEST"]).read_text())
        bundle.writestr("ECG5000/ECG5000.txt", "the archive's description of the dataset\n")
    with serve_folder(served) as base_url:
        yield base_url, hashlib.sha256(archive.read_bytes()).hexdigest(), parts


def test_download_through_a_mirror_gives_the_official_split(mirror, tmp_path):
    base_url, digest, parts = mirror
    root = tmp_path / "data" / "ecg5000"
    dm = prepared(root, tmp_path / "cache", url=f"{base_url}/ECG5000.zip", sha256=digest)
    assert sorted(p.name for p in root.iterdir()) == ["ECG5000_TEST.arff", "ECG5000_TRAIN.ts"]
    assert [p.name for p in root.parent.iterdir()] == ["ecg5000"]  # no partial folder left
    assert dm.split_paradigm == "ucr_official"
    test_values, test_labels = parts["TEST"]
    np.testing.assert_array_equal(dm.inputs["signal"][dm.splits["test"], 0], test_values)
    assert [dm.class_names[t] for t in dm.targets[dm.splits["test"]]] == \
        [dm.label_names[label] for label in test_labels]
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == len(parts["TRAIN"][1])
    assert len(dm.splits["val"]) == round(0.1 * len(parts["TRAIN"][1]))
    assert dm.describe()["files"] == {"TRAIN": {"name": "ECG5000_TRAIN.ts", "rows": 76},
                                      "TEST": {"name": "ECG5000_TEST.arff", "rows": 37}}


def test_a_failed_download_leaves_nothing(mirror, tmp_path):
    base_url, digest, _ = mirror
    root = tmp_path / "data" / "ecg5000"
    with pytest.raises(ValueError, match=f"sha256 {digest}, but data.sha256 says 00ff"):
        prepared(root, tmp_path / "cache", url=f"{base_url}/ECG5000.zip", sha256="00ff")
    assert list(root.parent.iterdir()) == []
    with pytest.raises(DataUnavailableError) as excinfo:
        prepared(root, tmp_path / "cache", url=f"{base_url}/missing.zip")
    for part in ("HTTP 404", f"{base_url}/missing.zip", str(root), "ECG_DATA_DIR", "data.root"):
        assert part in str(excinfo.value)
    assert list(root.parent.iterdir()) == []
    with pytest.raises(DataUnavailableError, match="data.download=false"):
        prepared(root, tmp_path / "cache", download=False)


# ---------------------------------------------------------------------------- models and task
@pytest.mark.parametrize("net", [
    LSTMAutoencoder(in_channels=1, seq_len=140, embedding_dim=8),
    TransformerAutoencoder(in_channels=1, seq_len=140, embedding_dim=8, d_model=16, nhead=2,
                           num_layers=1, dim_feedforward=32)])
def test_autoencoders_squeeze_a_beat_through_one_embedding(net):
    torch.manual_seed(0)
    net.eval()
    x = torch.randn(3, 1, 140)
    embedding = net.encode(x)
    assert embedding.shape == (3, 8)
    torch.testing.assert_close(net(x), net.decode(embedding))  # nothing else reaches the decoder
    assert net(x).shape == x.shape


def test_transformer_refuses_another_length():
    net = TransformerAutoencoder(in_channels=1, seq_len=140, d_model=16, nhead=2)
    with pytest.raises(ValueError, match="built for 140 samples"):
        net(torch.randn(2, 1, 100))


def test_reconstruction_task_refuses_a_classification_loss():
    net = LSTMAutoencoder(in_channels=1, seq_len=140)
    with pytest.raises(ValueError, match=r"loss=l1 or loss=l2.*CrossEntropy"):
        ReconstructionTask(net, CrossEntropy(class_counts=[1, 1]), torch.optim.Adam,
                           class_names=["normal", "abnormal"])


def test_unit_scores_keep_the_auroc_of_large_errors():
    """torchmetrics would sigmoid these scores to 1.0 and tie them; unit_scores does not."""
    scores = torch.tensor([40.0, 55.0, 70.0, 90.0, 45.0, 60.0])
    abnormal = torch.tensor([0, 0, 1, 1, 1, 0])
    expected = roc_auc_score(abnormal.numpy(), scores.numpy())
    assert float(binary_auroc(unit_scores(scores), abnormal)) == pytest.approx(expected)
    assert float(binary_auroc(scores, abnormal)) == pytest.approx(0.5)  # the tie it avoids


def test_reconstruction_scores_threshold_and_auroc(train_file, cache_dir, tmp_path):
    """One epoch on the real anomaly split; every figure recomputed outside the task."""
    L.seed_everything(0)
    dm = prepared(train_file.parent, cache_dir, label_scheme="anomaly", batch_size=64)
    net = LSTMAutoencoder(in_channels=1, seq_len=140, embedding_dim=8)
    task = ReconstructionTask(net, torch.nn.L1Loss(reduction="none"),
                              lambda params: torch.optim.Adam(params, lr=1e-2),
                              class_names=dm.class_names, bootstrap_resamples=20,
                              threshold_percentile=90)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, datamodule=dm)
    trainer.test(task, datamodule=dm, verbose=False)
    report = task.test_report

    def scores_of(split):
        x = dm.dataset(split).inputs["signal"]  # the items a batch of that split carries
        np.testing.assert_array_equal(x.numpy(), dm.inputs["signal"][dm.splits[split]])
        with torch.no_grad():
            return (net.eval()(x) - x).abs().mean(dim=(1, 2)).numpy()

    test_scores, abnormal = scores_of("test"), dm.targets[dm.splits["test"]]
    np.testing.assert_allclose(report["scores"], test_scores, rtol=1e-5, atol=1e-6)
    assert report["abnormal"] == abnormal.tolist()
    threshold = np.percentile(scores_of("val"), 90)
    assert report["threshold"]["value"] == pytest.approx(threshold, rel=1e-5)
    metrics = report["metrics"]
    assert metrics["test/auroc"] == pytest.approx(roc_auc_score(abnormal, test_scores), abs=1e-6)
    assert metrics["test/auroc_ci_low"] <= metrics["test/auroc"] <= metrics["test/auroc_ci_high"]
    flagged = test_scores >= threshold
    assert metrics["test/sensitivity"] == pytest.approx(flagged[abnormal == 1].mean())
    assert metrics["test/specificity"] == pytest.approx(1 - flagged[abnormal == 0].mean())
    assert metrics["test/loss"] == pytest.approx(test_scores.mean(), rel=1e-5)
    assert float(trainer.callback_metrics["test/auroc"]) == pytest.approx(metrics["test/auroc"])
    examples = report["examples"]
    assert [e["abnormal"] for e in examples].count(0) == 3 and len(examples) == 6

    files = task.write_test_report(tmp_path / "report")  # the task writes its own report
    assert sorted(f.name for f in files) == ["anomaly_scores.png", "metrics_test.json",
                                             "reconstructions.png", "test_scores.csv"]
    assert all(f.is_file() and f.parent == tmp_path / "report" for f in files)
    assert json.loads((tmp_path / "report" / "metrics_test.json").read_text())["kind"] == \
        "reconstruction"


def test_tracking_imports_no_task_module():
    """Each task writes its own report (``model.write_test_report``): tracking knows no task."""
    import ast

    import ecg_lightning.tracking as tracking

    tree = ast.parse(Path(tracking.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert not [name for name in imported if name and name.startswith("ecg_lightning.tasks")]


# ---------------------------------------------------------------------------- presets and summary
def compose(tmp_path, cache_dir, *overrides, logger="csv"):
    return compose_config([*overrides, f"logger={logger}", f"paths.root_dir={tmp_path}",
                           f"paths.output_dir={tmp_path}/run", f"paths.cache_dir={cache_dir}",
                           "callbacks.progress_bar.refresh_rate=0", "debug=fdr"])


@pytest.mark.parametrize("preset", ["ecg5000_lstm_ae", "ecg5000_transformer_ae"])
def test_autoencoder_presets_run_and_write_their_report(preset, tmp_path, cache_dir, train_file):
    value, metrics = train(compose(tmp_path, cache_dir, f"experiment={preset}"))
    assert value == metrics["val/loss"] > 0  # the preset's monitored metric
    assert np.isfinite(metrics["test/loss"]) and metrics["test/score_threshold"] > 0
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"metrics_test.json", "test_scores.csv", "reconstructions.png",
            "anomaly_scores.png"} <= files
    report = json.loads((tmp_path / "run" / "metrics_test.json").read_text())
    assert report["kind"] == "reconstruction" and report["normal_class"] == "normal"


def test_lstm_ae_preset_logs_its_artifacts_to_mlflow(tmp_path, cache_dir, train_file, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    train(compose(tmp_path, cache_dir, "experiment=ecg5000_lstm_ae", logger="mlflow"))
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("ecg5000_lstm_ae").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["split"] == "stratified_random_of_train"
    assert run.data.tags["label_scheme"] == "anomaly"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"reconstructions.png", "anomaly_scores.png", "metrics_test.json"} <= artifacts


def test_classification_preset_runs(tmp_path, cache_dir, train_file):
    value, metrics = train(compose(tmp_path, cache_dir, "experiment=ecg5000_lstm"))
    assert 0.0 <= metrics["test/accuracy"] <= 1.0


def test_summary_of_ecg5000(train_file, tmp_path):
    result = subprocess.run([sys.executable, "-m", "ecg_lightning.summary", "data=ecg5000",
                             "data.label_scheme=anomaly", f"paths.cache_dir={tmp_path}", "--json"],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads(result.stdout)
    assert card["database"] == "ecg5000" and card["label_classes"] == ["normal", "abnormal"]
    assert card["split_paradigm"] == "stratified_random_of_train"
    assert card["splits"]["train"]["per_class"]["abnormal"] == 0
    assert card["splits"]["test"]["per_class"]["abnormal"] == ABNORMAL
    assert sum(s["items"] for s in card["splits"].values()) == 500


def test_evaluate_retests_an_autoencoder_checkpoint(tmp_path, cache_dir, train_file, monkeypatch):
    """``evaluate`` takes the monitored metric (val/loss) from the checkpoint, not the default
    config's val/f1_macro, and reproduces the run's test AUROC."""
    from ecg_lightning.evaluate import evaluate

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    common = [f"paths.root_dir={tmp_path}", f"paths.cache_dir={cache_dir}", "logger=none",
              "callbacks.progress_bar.refresh_rate=0", "debug=limit"]  # 2 test batches both times
    _, trained = train(compose_config(["experiment=ecg5000_lstm_ae", *common,
                                       "trainer.max_epochs=1", f"paths.output_dir={tmp_path}/run"]))
    checkpoint = next((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    value, metrics = evaluate(str(checkpoint), common)
    assert value == metrics["test/loss"] == pytest.approx(trained["test/loss"])
    assert metrics["test/auroc"] == pytest.approx(trained["test/auroc"])
