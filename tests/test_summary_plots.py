"""`python -m ecg_lightning.summary ... --plots`: the pictures to look at before training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("overrides, input_picture", [
    ([], "input.png"),
    (["experiment=mitdb_binary_cnn", "data.split=intra_patient"], "spectrogram.png"),
])
def test_summary_writes_the_plots(overrides, input_picture, small_mitdb, tmp_path):
    root = small_mitdb(("100", "119"))
    result = subprocess.run(
        [sys.executable, "-m", "ecg_lightning.summary", *overrides, f"data.root={root}",
         "data.split=intra_patient", f"paths.root_dir={tmp_path}",
         f"paths.cache_dir={tmp_path / 'cache'}", "--plots"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / "outputs" / "summary" / "mitdb"
    for name in ("class_distribution.png", "strip_10s.png", "strip_1s_abnormal.png", input_picture):
        assert (folder / name).read_bytes().startswith(PNG), name
        assert f"wrote {folder / name}" in result.stderr
