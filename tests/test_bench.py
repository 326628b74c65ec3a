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
                 "train_throughput_families", "predict", "memory"):
        report = json.loads((out / f"{name}.json").read_text())
        assert report["figures"] and f"{name}.json" in summary["files"]
    families = json.loads((out / "train_throughput_families.json").read_text())
    ratios = {k: v for k, v in families["figures"].items() if k.endswith("_ratio")}
    # every family whose data is here was measured (mitdb is always needed by the bench)
    assert {"gru_ratio", "bilstm_late_fusion_ratio", "cnn_1d_ratio",
            "spectrogram_cnn_2d_ratio"} <= set(ratios)
    assert all(ratio > 0 for ratio in ratios.values())
    assert "train_throughput_families" in done.stdout and "gru_ratio" in done.stdout
