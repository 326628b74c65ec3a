"""`python -m ecg_lightning.report` over real runs of `python -m ecg_lightning.run`.

One module-wide project folder holds the runs (its own sqlite store): lstm with seeds 1 and 2,
gru with seed 1, and a gru run (seed 1) that fails after testing because its
``optimized_metric`` was never logged. Each run trains, validates and tests on one batch
(``debug=limit`` cut down; ``fast_dev_run`` would switch the loggers off, so no metric would
reach MLflow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from test_run import client_for, run_cli  # pytest puts tests/ on sys.path

from ecg_lightning.report import HEADLINE_METRICS, ReportError, main, make_report
from ecg_lightning.summary import compose_config
from ecg_lightning.tracking import preset_tags, recipe_fingerprint

ONE_BATCH = ("debug=limit", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
             "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
             "logger.mlflow.log_model=false")  # no checkpoint upload: the report reads metrics


@pytest.fixture(scope="module")
def project(tmp_path_factory, mitdb_cache_dir) -> Path:
    """A project folder whose MLflow store holds 3 finished runs and 1 failed one."""
    root = tmp_path_factory.mktemp("report_project")
    lstm = run_cli(root, mitdb_cache_dir, *ONE_BATCH, "model=lstm", "seed=1,2", flags=("-m",))
    assert lstm.returncode == 0, lstm.stderr[-3000:]
    # Two gru jobs in one process (saves a start-up): the second names a metric that is never
    # logged, so run.py raises after testing and ends that run FAILED; the sweep exits non-zero.
    gru = run_cli(root, mitdb_cache_dir, *ONE_BATCH, "model=gru", "seed=1",
                  "optimized_metric=val/f1_macro,val/f2", flags=("-m",))
    assert gru.returncode != 0 and "optimized_metric='val/f2'" in gru.stderr, gru.stderr[-3000:]
    return root


@pytest.fixture
def no_tracking_env(monkeypatch):
    """The report must find the project's own store, not one named in the environment."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def finished_runs(project: Path, model: str):
    client = client_for(project)
    experiment = client.get_experiment_by_name("ecg-lightning")
    return client.search_runs([experiment.experiment_id],
                              f"tags.model = '{model}' and attributes.status = 'FINISHED'")


def test_one_row_per_model_with_mean_and_sample_std_over_seeds(project, tmp_path,
                                                               no_tracking_env):
    report = make_report([f"paths.root_dir={project}", f"out={tmp_path}"])

    assert [p.name for p in report.files] == [
        "ecg-lightning.md", "ecg-lightning.csv", "ecg-lightning_not_counted.csv"]
    assert all(p.parent == tmp_path and p.is_file() for p in report.files)
    table = report.table.set_index("model")
    assert sorted(table.index) == ["gru", "lstm"]
    assert table.loc["lstm", "n"] == 2 and table.loc["lstm", "seeds"] == "1, 2"
    assert table.loc["gru", "n"] == 1 and table.loc["gru", "folds"] == "-"
    assert set(table["split"]) == {"inter_patient"}

    lstm = finished_runs(project, "lstm")
    assert len(lstm) == 2
    logged = [m for m in HEADLINE_METRICS if m in lstm[0].data.metrics]
    assert logged == list(HEADLINE_METRICS[:4])  # test/auroc is the autoencoders'
    for metric in logged:  # against numpy on the values MLflow hands back
        values = np.array([run.data.metrics[metric] for run in lstm])
        assert table.loc["lstm", f"{metric} mean"] == pytest.approx(values.mean())
        assert table.loc["lstm", f"{metric} std"] == pytest.approx(values.std(ddof=1))
        assert np.isnan(table.loc["gru", f"{metric} std"])  # one run: no spread
        gru_value = finished_runs(project, "gru")[0].data.metrics[metric]
        assert table.loc["gru", f"{metric} mean"] == pytest.approx(gru_value)

    csv = pd.read_csv(report.files[1], dtype={"seeds": str}).set_index("model")
    pd.testing.assert_frame_equal(csv, table, check_dtype=False)
    assert "sample standard deviation (ddof=1)" in report.markdown
    auroc = table.loc["lstm", "test/auroc_macro mean"], table.loc["lstm", "test/auroc_macro std"]
    assert f"{auroc[0]:.4f} ± {auroc[1]:.4f}" in report.markdown

    # The failed run is not averaged, but counted in its group, with its id.
    failed = report.not_counted
    assert failed[["model", "reason", "runs"]].values.tolist() == [["gru", "FAILED", 1]]
    failed_ids = [r.info.run_id for r in client_for(project).search_runs(
        [client_for(project).get_experiment_by_name("ecg-lightning").experiment_id],
        "attributes.status = 'FAILED'")]
    assert failed["run_ids"].tolist() == failed_ids
    assert "## Runs not counted" in report.markdown and failed_ids[0] in report.markdown


def test_group_by_seed(project, tmp_path, no_tracking_env):
    report = make_report([f"paths.root_dir={project}", f"out={tmp_path}", "group_by=seed",
                          "metrics=test/accuracy,test/sensitivity/N"])
    table = report.table.set_index("seed")
    assert table["n"].to_dict() == {"1": 2, "2": 1}  # seed 1: lstm and gru
    assert list(report.table.columns[:3]) == ["seed", "split", "n"]
    assert "test/sensitivity/N mean" in table and "test/f1_macro mean" not in table
    assert report.not_counted[["seed", "reason"]].values.tolist() == [["1", "FAILED"]]


def test_filter_selects_runs_with_an_mlflow_search_filter(project, tmp_path, no_tracking_env):
    report = make_report([f"paths.root_dir={project}", f"out={tmp_path}",
                          "filter=tags.model = 'lstm'"])
    assert report.table[["model", "n"]].values.tolist() == [["lstm", 2]]
    assert report.not_counted.empty  # the failed run was a gru
    with pytest.raises(ReportError, match="no runs matching"):
        make_report([f"paths.root_dir={project}", "filter=tags.model = 'cnn'"])


def test_command_line_writes_under_outputs_reports(project):
    """As users call it: a subprocess, default output folder, exit status 0."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([sys.executable, "-m", "ecg_lightning.report",
                             f"paths.root_dir={project}", "group_by=data,model,loss"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = project / "outputs" / "reports"
    assert (reports / "ecg-lightning.md").read_text() in result.stdout
    csv = pd.read_csv(reports / "ecg-lightning.csv")
    assert csv[["model", "n"]].values.tolist() == [["gru", 1], ["lstm", 2]]


def test_unknown_experiment_lists_the_existing_ones(project, no_tracking_env):
    with pytest.raises(SystemExit) as exit_:
        main([f"paths.root_dir={project}", "experiment_name=nope"])
    assert "'nope'" in exit_.value.code and "ecg-lightning" in exit_.value.code


def test_unknown_tag_or_metric_is_a_clear_error(project, no_tracking_env):
    with pytest.raises(ReportError, match="no run has the tag.*colour.*tags: .*model"):
        make_report([f"paths.root_dir={project}", "group_by=model,colour"])
    with pytest.raises(ReportError, match="no run logged test/f2.*test/accuracy"):
        make_report([f"paths.root_dir={project}", "metrics=test/f2"])


def test_no_runs_or_no_store_is_an_error(tmp_path, no_tracking_env):
    with pytest.raises(ReportError, match="no MLflow store at"):
        make_report([f"paths.root_dir={tmp_path}"])  # and no empty store is created
    assert not (tmp_path / "outputs" / "mlflow.db").exists()

    (tmp_path / "outputs").mkdir()
    MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/outputs/mlflow.db").create_experiment(
        "ecg-lightning")
    with pytest.raises(SystemExit) as exit_:
        main([f"paths.root_dir={tmp_path}"])
    assert "has no runs" in exit_.value.code


def test_evaluate_reruns_are_not_counted_twice(tmp_path, no_tracking_env):
    """A run tagged ``evaluates_checkpoint`` (ecg_lightning.evaluate) is listed, not averaged.

    The runs are written with MLflow's client into a real store: the tags are those
    tracking.run_tags sets.
    """
    (tmp_path / "outputs").mkdir()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/outputs/mlflow.db")
    experiment_id = client.create_experiment("ecg-lightning")
    tags = {"data": "mitdb", "model": "lstm", "loss": "ce", "split": "inter_patient"}
    for seed, accuracy, extra in [(1, 0.5, {}), (2, 0.7, {}),
                                  (1, 0.9, {"evaluates_checkpoint": "best.ckpt"})]:
        run = client.create_run(experiment_id, tags={**tags, "seed": str(seed), **extra})
        client.log_metric(run.info.run_id, "test/accuracy", accuracy)
        client.set_terminated(run.info.run_id, "FINISHED")

    report = make_report([f"paths.root_dir={tmp_path}"])
    row = report.table.iloc[0]
    assert (row["n"], row["test/accuracy mean"]) == (2, pytest.approx(0.6))
    assert row["test/accuracy std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert report.not_counted["reason"].tolist() == ["evaluate re-test"]


def test_reproduction_table_across_experiments(tmp_path, no_tracking_env):
    """``experiments=all group_by=preset,command latest=true``: the README's table.

    One row per exact command (seed and display overrides left out), the newest run of a
    setting replacing an older one, the preset's published ``reference``, the run's duration;
    a fast_dev_run without test metrics is counted, not averaged. Runs written with MLflow's
    client into a real store, with the tags tracking.run_tags sets.
    """
    (tmp_path / "outputs").mkdir()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/outputs/mlflow.db")
    base = {"data": "ecgiddb", "model": "kim2020", "loss": "ce", "split": "within_subject_time",
            "preset": "kim2020_ecgiddb", "seed": "42"}
    command = "experiment=kim2020_ecgiddb trainer.max_epochs=3"
    runs = [  # experiment, overrides, start (ms), seconds, accuracy
        ("kim2020_ecgiddb", f"{command} callbacks.progress_bar.refresh_rate=0", 1_000, 60, 0.1),
        ("kim2020_ecgiddb", f"{command} seed=42", 500_000, 277, 0.7),  # newer: replaces it
        ("kim2020_ecgiddb", "experiment=kim2020_ecgiddb trainer.fast_dev_run=true", 900_000, 2,
         None),
        ("other", "experiment=kim2020_ecgiddb", 2_000, 100, 0.5)]
    for experiment, overrides, start, seconds, accuracy in runs:
        if client.get_experiment_by_name(experiment) is None:
            client.create_experiment(experiment)
        run = client.create_run(client.get_experiment_by_name(experiment).experiment_id,
                                start_time=start, tags={**base, "overrides": overrides})
        if accuracy is not None:
            client.log_metric(run.info.run_id, "test/accuracy", accuracy)
        client.set_terminated(run.info.run_id, "FINISHED", end_time=start + seconds * 1000)

    report = make_report([f"paths.root_dir={tmp_path}", "experiments=all",
                          "group_by=preset,command", "latest=true", f"out={tmp_path}"])
    table = report.table.set_index("command")
    assert list(table.index) == [
        "python -m ecg_lightning.run experiment=kim2020_ecgiddb",
        "python -m ecg_lightning.run experiment=kim2020_ecgiddb trainer.max_epochs=3"]
    reduced = table.iloc[1]
    assert (reduced["n"], reduced["test/accuracy mean"], reduced["duration"]) == (1, 0.7, 277)
    assert reduced["reference"] == "none: Kim & Pyun 2020 do not use ECG-ID"  # from the preset
    assert "| 4 min 37 s |" in report.markdown and report.files[0].name == "all.md"
    assert sorted(report.not_counted["reason"]) == ["no test metrics",
                                                    "superseded by a newer run"]

    # Without latest=true both runs of the setting are averaged; a list of experiments works.
    report = make_report([f"paths.root_dir={tmp_path}", "experiments=kim2020_ecgiddb",
                          "group_by=command", f"out={tmp_path}"])
    assert report.table["test/accuracy mean"].tolist() == [pytest.approx(0.4)]
    with pytest.raises(ReportError, match="no MLflow experiment named 'nope'"):
        make_report([f"paths.root_dir={tmp_path}", "experiments=other,nope"])


def test_preset_tags_name_the_budget_and_protocol_a_run_changed():
    """``tracking.preset_tags`` against the preset's own config (real Hydra composition)."""
    preset = compose_config(["experiment=kim2020_mitdb"])
    assert preset_tags(preset, "kim2020_mitdb") == {"budget": "full", "protocol": "preset"}
    reduced = compose_config(["experiment=kim2020_mitdb", "trainer.max_epochs=10"])
    assert preset_tags(reduced, "kim2020_mitdb") == {
        "budget": "trainer.max_epochs=10 (preset 30)", "protocol": "preset"}
    # smaller inputs and less data are budget too: the spectrogram study on 2 CPU cores
    smaller = compose_config(["experiment=spectrogram_resnet50", "model.net.image_size=32",
                              "data.stride_seconds=2.5"])
    assert preset_tags(smaller, "spectrogram_resnet50") == {
        "budget": "data.stride_seconds=2.5 (preset 0.5); model.net.image_size=32 (preset 224)",
        "protocol": "preset"}
    other_split = compose_config(["experiment=ju2019_dbgru_mitdb", "data.split=inter_patient"])
    assert preset_tags(other_split, "ju2019_dbgru_mitdb")["protocol"] == (
        "data.split=inter_patient (preset intra_patient)")
    assert preset_tags(compose_config([]), "none")["protocol"] == "no preset"
    # the ECG5000 figure is quoted at one bottleneck size; a key the preset lacks reads "not set"
    wider = compose_config(["experiment=ecg5000_lstm_ae", "model.net.embedding_dim=64"])
    assert preset_tags(wider, "ecg5000_lstm_ae")["protocol"] == (
        "model.net.embedding_dim=64 (preset 32)")
    paced = compose_config(["experiment=kim2020_ecgiddb", "+data.exclude_paced=true"])
    assert preset_tags(paced, "kim2020_ecgiddb")["protocol"] == (
        "data.exclude_paced=True (preset not set)")


def test_recipe_fingerprint_changes_with_the_recipe_not_with_seed_or_paths(tmp_path):
    """``tracking.recipe_fingerprint`` on real Hydra compositions of one preset."""
    preset = ["experiment=kim2020_ecgiddb"]
    fingerprint = recipe_fingerprint(compose_config(preset))
    assert len(fingerprint) == 12
    for same in (["seed=7"], [f"paths.root_dir={tmp_path}"], ["data.num_workers=2"],
                 ["experiment_name=elsewhere", "callbacks.progress_bar.refresh_rate=0"]):
        assert recipe_fingerprint(compose_config([*preset, *same])) == fingerprint, same
    for other in (["trainer.gradient_clip_val=null"], ["optimizer.lr=1e-4"],
                  ["callbacks.early_stopping.patience=3"], ["data.split=cross_session"]):
        assert recipe_fingerprint(compose_config([*preset, *other])) != fingerprint, other


def test_latest_keeps_the_newest_recipe_of_a_row(tmp_path, no_tracking_env):
    """Seeds 1 and 2 of a command under an older preset version, then seed 1 again after the
    preset changed: ``latest=true`` reports the new recipe's run alone and lists seed 2 as an
    older recipe; ``group_by=...,recipe`` shows both versions as rows."""
    (tmp_path / "outputs").mkdir()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/outputs/mlflow.db")
    experiment = client.create_experiment("kim2020_ecgiddb")
    base = {"data": "ecgiddb", "model": "kim2020", "loss": "ce", "split": "within_subject_time",
            "preset": "kim2020_ecgiddb", "overrides": "experiment=kim2020_ecgiddb"}
    for start, seed, recipe, accuracy in ((1_000, 1, "aaaaaaaaaaaa", 0.30),
                                          (2_000, 2, "aaaaaaaaaaaa", 0.40),
                                          (3_000, 1, "bbbbbbbbbbbb", 0.70)):
        run = client.create_run(experiment, start_time=start,
                                tags={**base, "seed": str(seed), "recipe": recipe})
        client.log_metric(run.info.run_id, "test/accuracy", accuracy)
        client.set_terminated(run.info.run_id, "FINISHED", end_time=start + 60_000)

    report = make_report([f"paths.root_dir={tmp_path}", "experiments=all",
                          "group_by=preset,command", "latest=true", f"out={tmp_path}"])
    row = report.table.iloc[0]
    assert (len(report.table), row["n"], row["seeds"]) == (1, 1, "1")
    assert row["test/accuracy mean"] == pytest.approx(0.70)
    assert sorted(report.not_counted["reason"]) == ["older recipe (the preset changed since)",
                                                    "superseded by a newer run"]

    by_recipe = make_report([f"paths.root_dir={tmp_path}", "experiments=all",
                             "group_by=preset,command,recipe", "latest=true", f"out={tmp_path}"])
    rows = by_recipe.table.set_index("recipe")
    assert rows.loc["aaaaaaaaaaaa", "seeds"] == "1, 2" and rows.loc["bbbbbbbbbbbb", "seeds"] == "1"


def test_records_export_and_rebuild_the_paper_table(tmp_path, no_tracking_env):
    """``export=`` writes one record per counted run; ``records=`` builds the same table from
    them without the store; a run off the preset's protocol shows no published figure."""
    (tmp_path / "outputs").mkdir()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/outputs/mlflow.db")
    experiment = client.create_experiment("kim2020_ecgiddb")
    base = {"data": "ecgiddb", "model": "kim2020", "loss": "ce", "split": "within_subject_time",
            "preset": "kim2020_ecgiddb"}
    for seed, accuracy, overrides in ((1, 0.70, "experiment=kim2020_ecgiddb seed=1"),
                                      (2, 0.74, "experiment=kim2020_ecgiddb seed=2"),
                                      (1, 0.50, "experiment=kim2020_ecgiddb data.split=cross_session")):
        # runs from before the budget/protocol tags: export derives them from the overrides
        run = client.create_run(experiment, start_time=1_000 * seed,
                                tags={**base, "seed": str(seed), "overrides": overrides})
        client.log_metric(run.info.run_id, "test/accuracy", accuracy)
        client.log_metric(run.info.run_id, "epochs_run", 30)
        client.log_param(run.info.run_id, "data/split", overrides.split("split=")[-1]
                         if "split=" in overrides else "time")
        client.log_param(run.info.run_id, "paths/output_dir", "/somewhere")  # not kept
        client.set_terminated(run.info.run_id, "FINISHED", end_time=1_000 * seed + 277_000)
    group_by = "group_by=preset,data,budget,protocol,command"
    exported = make_report([f"paths.root_dir={tmp_path}", "experiments=all", group_by,
                            f"export={tmp_path / 'records'}", f"out={tmp_path}"])
    records = sorted((tmp_path / "records" / "kim2020_ecgiddb").glob("run-*.json"))
    assert len(records) == 3
    record = json.loads(records[0].read_text())
    assert set(record["params"]) == {"data/split"} and record["metrics"]["epochs_run"] == 30
    assert record["tags"]["budget"] == "full" and record["duration"] == 277

    rebuilt = make_report([f"paths.root_dir={tmp_path}", f"records={tmp_path / 'records'}",
                           group_by, f"out={tmp_path / 'from-records'}", "name=paper"])
    assert rebuilt.files[0].name == "paper.md"
    columns = ["preset", "protocol", "n", "test/accuracy mean", "reference"]
    pd.testing.assert_frame_equal(rebuilt.table[columns], exported.table[columns])
    rows = rebuilt.table.set_index("protocol")
    assert rows.loc["preset", "n"] == 2
    assert rows.loc["preset", "test/accuracy mean"] == pytest.approx(0.72)
    assert rows.loc["preset", "reference"] == "none: Kim & Pyun 2020 do not use ECG-ID"
    changed = "data.split=cross_session (preset time)"
    assert rows.loc[changed, "reference"] == "- (not the preset's protocol)"
    with pytest.raises(ReportError, match="no run record"):
        make_report([f"paths.root_dir={tmp_path}", f"records={tmp_path / 'nothing'}"])
