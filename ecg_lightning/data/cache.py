"""An atomic on-disk cache of preprocessed arrays.

One cache entry is a folder of ``.npy`` files plus ``manifest.json`` (shapes, dtypes and the
preprocessing config that produced them). It is written into a hidden temporary sibling and
renamed into place only when complete, so a half-written entry is never read. Arrays are
memory-mapped on load, which keeps a warm start cheap whatever the database size.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"


class CorruptCacheError(ValueError):
    """A cache entry exists but does not match its manifest."""


def config_hash(config: dict) -> str:
    """Short, stable hash of a JSON-serialisable preprocessing config."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_cache(path: Path) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and info of a complete entry; ``None`` when there is none.

    Raises ``CorruptCacheError`` when the entry is damaged (truncated or missing file, shape or
    dtype that disagrees with the manifest).
    """
    manifest_file = path / MANIFEST
    if not manifest_file.exists():
        return None
    try:
        manifest = json.loads(manifest_file.read_text())
        arrays = {}
        for name, spec in manifest["arrays"].items():
            array = np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            if list(array.shape) != spec["shape"] or str(array.dtype) != spec["dtype"]:
                raise CorruptCacheError(f"{name}.npy has shape {array.shape} {array.dtype}, "
                                        f"manifest says {spec['shape']} {spec['dtype']}")
            arrays[name] = array
    except (OSError, EOFError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise CorruptCacheError(f"cache entry {path} is damaged: {error}") from error
    return arrays, manifest["info"]


def write_cache(path: Path, arrays: dict[str, np.ndarray], info: dict) -> None:
    """Write an entry atomically; a concurrent writer of the same entry is harmless."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        manifest = {"arrays": {name: {"shape": list(a.shape), "dtype": str(a.dtype)}
                               for name, a in arrays.items()},
                    "info": info}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
        if path.exists() and not (path / MANIFEST).exists():  # leftover of a damaged entry
            shutil.rmtree(path)
        try:
            os.rename(tmp, path)
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(tmp)  # another process finished the same entry first
    except OSError as error:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        message = (f"could not write the preprocessing cache {path}: {error.strerror or error}. "
                   "Point paths.cache_dir (or the ECG_CACHE_DIR environment variable) at a "
                   "writable folder with free space")
        # numpy reports a short write (full disk) as an OSError without errno: no "[Errno None]"
        raise (OSError(error.errno, message) if error.errno else OSError(message)) from error
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
