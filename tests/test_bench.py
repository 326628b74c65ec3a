"""`make bench` end to end in its quick mode: every report is written with its figures and
targets (the figures themselves are machine-dependent and are not asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_bench_writes_every_report(tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, "-m", "ecg_lightning.bench", "--quick", "--out", str(out)],
                          cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    for name in ("prepare_mitdb", "train_throughput", "dataloader_share",
                 "train_throughput_families", "predict", "memory", "default_run"):
        report = json.loads((out / f"{name}.json").read_text())
        assert report["figures"] and f"{name}.json" in summary["files"]
    families = json.loads((out / "train_throughput_families.json").read_text())
    ratios = {k: v for k, v in families["figures"].items() if k.endswith("_ratio")}
    # every family whose data is here was measured (mitdb is always needed by the bench)
    assert {"gru_ratio", "bilstm_late_fusion_ratio", "cnn_1d_ratio",
            "spectrogram_cnn_2d_ratio"} <= set(ratios)
    assert all(ratio > 0 for ratio in ratios.values())
    assert "train_throughput_families" in done.stdout and "gru_ratio" in done.stdout


@pytest.mark.slow
def test_only_the_default_run(tmp_path):
    """``--only default_run``: the default command in a subprocess (quick: 10 batches), its wall
    time checked against the 10-minute limit, its epochs and RSS read back; nothing else runs."""
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, "-m", "ecg_lightning.bench", "--quick", "--only",
                           "default_run", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["default_run.json", "summary.json"]
    report = json.loads((out / "default_run.json").read_text())
    figures = report["figures"]
    assert 0 < figures["wall_s"] < 600 and figures["epochs_run"] == 1
    assert figures["peak_rss_mib"] > 100 and figures["seconds_per_epoch"] > 0
    assert report["checks"] == [{"figure": "wall_s", "value": figures["wall_s"],
                                 "target": "< 600", "met": True, "informative": False}]
    assert report["notes"]["command"].startswith("python -m ecg_lightning.run ")


@pytest.mark.slow
def test_only_the_throughput_with_an_override(tmp_path):
    """``--only train_throughput model.net.width=8``: the Lightning/plain comparison alone, on
    the default config changed by the override (the net the task trains is the narrow one)."""
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, "-m", "ecg_lightning.bench", "--quick", "--only",
                           "train_throughput", "--out", str(out), "model.net.width=8"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "train_throughput.json"]
    report = json.loads((out / "train_throughput.json").read_text())
    assert report["notes"]["overrides"] == ["model.net.width=8"]
    assert report["figures"]["model_parameters"] < 10_037  # the width-16 default's count
    assert {run["loop"] for run in report["figures"]["runs"]} == {"plain", "lightning"}
    assert report["figures"]["ratio_lightning_over_plain"] > 0


def test_overrides_are_refused_with_the_default_run_alone():
    done = subprocess.run([sys.executable, "-m", "ecg_lightning.bench", "--only", "default_run",
                           "model.net.width=8"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "model.net.width=8 apply to train_throughput only" in done.stderr
