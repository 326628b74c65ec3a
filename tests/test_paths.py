"""Folders named by the environment are made absolute once, when ``ecg_lightning`` is imported.

``ECG_DATA_DIR=../shared/data make test`` (the README's command) names the data relative to
the directory the command runs in; tests and tools change directory later (``monkeypatch.chdir``,
a subprocess's ``cwd``), and the datamodules read the variable lazily.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from ecg_lightning import PATH_VARIABLES, absolute_path_variables

REPO = Path(__file__).resolve().parents[1]


def test_relative_variables_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ECG_DATA_DIR", "../shared/data")
    monkeypatch.setenv("ECG_CACHE_DIR", "cache")
    monkeypatch.setenv("ECG_PROJECT_ROOT", str(tmp_path / "root"))  # already absolute: kept
    absolute_path_variables()
    assert os.environ["ECG_DATA_DIR"] == str(tmp_path.parent / "shared" / "data")
    assert os.environ["ECG_CACHE_DIR"] == str(tmp_path / "cache")
    assert os.environ["ECG_PROJECT_ROOT"] == str(tmp_path / "root")
    assert set(PATH_VARIABLES) == {"ECG_DATA_DIR", "ECG_CACHE_DIR", "ECG_PROJECT_ROOT"}


def test_relative_data_dir_still_finds_the_data_after_a_chdir(tmp_path, mitdb_dir):
    """A fresh process started in the repository with a relative ECG_DATA_DIR, as
    ``ECG_DATA_DIR=../shared/data make test`` starts pytest; it changes directory after import."""
    relative = os.path.relpath(mitdb_dir.parent, REPO)
    assert not os.path.isabs(relative)
    code = textwrap.dedent(f"""
        import os
        import ecg_lightning
        os.chdir({str(tmp_path)!r})
        from ecg_lightning.data.mitdb import MITBIHDataModule
        root = MITBIHDataModule().root
        print(os.environ["ECG_DATA_DIR"], os.environ["ECG_CACHE_DIR"], root, sep="\\n")
        assert root.is_absolute() and (root / "RECORDS").exists(), root
    """)
    env = {**os.environ, "ECG_DATA_DIR": relative, "ECG_CACHE_DIR": "some/cache"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    data_dir, cache_dir, root = result.stdout.split("\n")[:3]
    assert Path(data_dir).is_absolute()
    assert Path(data_dir).resolve() == mitdb_dir.parent.resolve()
    assert cache_dir == str(REPO / "some" / "cache")
    assert Path(root) == Path(data_dir) / "mitdb"
