"""Fetch a PhysioNet database into a local folder, verified and all-or-nothing.

Every datamodule's ``prepare_data`` calls :func:`download_physionet` when its data
folder is missing. The download follows PhysioNet's URL layout::

    {base}/{slug}/{version}/SHA256SUMS.txt     lines "<sha256>  <relative/path>"
    {base}/{slug}/{version}/{relative/path}

Files are written to a hidden sibling folder and renamed to the destination only once
every checksum matched, so a crash or a bad file never leaves a half-filled data folder
that a later run would mistake for a complete one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

PHYSIONET_URL = "https://physionet.org/files"
SUMS_FILE = "SHA256SUMS.txt"
TIMEOUT_S = 60  # per urlopen: a stalled mirror must fail, not hang a training job
_CHUNK = 1 << 20
# What a flaky or absent network raises while opening or reading a response.
_NETWORK_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException)


class DataUnavailableError(FileNotFoundError):
    """The data folder is missing and cannot be downloaded (offline, unknown slug...)."""


class ChecksumError(ValueError):
    """A downloaded file does not match the SHA256 that the mirror lists for it."""


def physionet_base_url() -> str:
    """Base URL of PhysioNet, or of the mirror named by ``ECG_PHYSIONET_URL``, without trailing slash."""
    return (os.environ.get("ECG_PHYSIONET_URL") or PHYSIONET_URL).rstrip("/")


def parse_sha256sums(text: str) -> dict[str, str]:
    """Map relative path -> lowercase hex digest from the text of a ``SHA256SUMS.txt``."""
    sums = {}
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2:
            digest, name = parts
            sums[name.lstrip("*")] = digest.lower()  # "*" marks binary mode in sha256sum output
    return sums


def sha256_file(path: Path) -> str:
    """Hex SHA256 of a file, read in chunks so large signals never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256sums(folder: str | Path) -> list[str]:
    """Relative paths listed in ``folder/SHA256SUMS.txt`` that are missing or whose hash differs."""
    folder = Path(folder)
    sums = parse_sha256sums((folder / SUMS_FILE).read_text())
    return [name for name, digest in sums.items()
            if not (folder / name).is_file() or sha256_file(folder / name) != digest]


def download_physionet(slug: str, version: str, dest: str | Path, *, base_url: str | None = None,
                       files: Iterable[str] | Callable[[str], bool] | None = None,
                       progress: bool = True) -> Path:
    """Download PhysioNet database ``slug``/``version`` into ``dest`` and return ``dest``.

    If ``dest`` already exists and is not empty it is returned untouched: the caller decides
    when a download is due. ``files`` restricts the download to those relative paths (the
    checksum file always comes too), or, as a predicate, to the listed paths it accepts (e.g.
    PTB-XL without its 500 Hz records); by default every file listed in SHA256SUMS.txt is fetched.
    ``dest/SHA256SUMS.txt`` lists exactly the files downloaded, so :func:`verify_sha256sums`
    can check the folder later.

    Raises :class:`DataUnavailableError` if the mirror cannot be reached or does not have the
    database or a requested file, and :class:`ChecksumError` if a file is corrupted; in every
    case nothing is left at ``dest`` and no temporary folder remains.
    """
    dest = Path(dest)
    if _is_populated(dest):
        return dest
    root = f"{(base_url or physionet_base_url()).rstrip('/')}/{slug}/{version}"
    url = f"{root}/{SUMS_FILE}"  # the URL in flight, named by the error if the network fails
    try:
        # The checksum list comes first and into memory: an unreachable mirror creates nothing on disk.
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            sums = parse_sha256sums(response.read().decode())
        if callable(files):  # a predicate over the listed paths
            files = [name for name in sums if files(name)]
        wanted = list(sums) if files is None else [f for f in dict.fromkeys(files) if f != SUMS_FILE]
        unknown = [f for f in wanted if f not in sums]
        if unknown:
            raise DataUnavailableError(_unavailable_message(
                slug, version, url, dest, f"files not listed on the mirror: {', '.join(unknown)}"))
        for name in wanted:
            _check_relative(name)

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        try:
            with _Progress(len(wanted), f"{slug} {version}", progress) as bar:
                for name in wanted:
                    url = f"{root}/{name}"
                    bar.update(_download_verified(url, tmp / name, sums[name], name))
            (tmp / SUMS_FILE).write_text("".join(f"{sums[name]}  {name}\n" for name in wanted))
            try:
                os.replace(tmp, dest)  # atomic on one filesystem; also replaces an empty dest folder
            except OSError:
                if not _is_populated(dest):
                    raise  # else another process finished the same download first: keep its copy
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing left to remove after a successful rename
    except _NETWORK_ERRORS as err:
        raise DataUnavailableError(_unavailable_message(slug, version, url, dest, _reason(err, url))) from err
    return dest


def _is_populated(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _download_verified(url: str, target: Path, expected: str, name: str) -> int:
    """Stream ``url`` to ``target`` while hashing it; return its size in bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(target, "wb") as out:
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    if digest.hexdigest() != expected:
        raise ChecksumError(f"Checksum mismatch for {name!r} downloaded from {url}: expected sha256 "
                            f"{expected}, got {digest.hexdigest()} ({size} bytes). The file is corrupted "
                            f"on the mirror or in transit; the download was discarded.")
    return size


def _reason(err: Exception, url: str) -> str:
    if isinstance(err, urllib.error.HTTPError) and err.code == 404:
        # Every PhysioNet database has a checksum list, so its absence means a bad slug or version.
        return ("HTTP 404: this slug/version is unknown on the mirror" if url.endswith(SUMS_FILE)
                else "HTTP 404: the mirror lists this file but does not serve it")
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"mirror unreachable ({err.reason})"
    return f"mirror unreachable ({type(err).__name__}: {err})"


def _unavailable_message(slug: str, version: str, url: str, dest: Path, reason: str) -> str:
    return (f"PhysioNet database {slug!r} (version {version}) is not at {dest} and cannot be downloaded: "
            f"{reason}.\n  URL tried: {url}\n"
            f"Fix it in one of two ways:\n"
            f"  - set the environment variable ECG_DATA_DIR to a folder holding {slug}/, or\n"
            f"  - pass data.root=/path/to/{slug}\n"
            f"(or point ECG_PHYSIONET_URL at a reachable PhysioNet mirror).")


def _check_relative(name: str) -> None:
    """Refuse checksum entries that would write outside the download folder."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"Unsafe path {name!r} in {SUMS_FILE}")


class _Progress:
    """One status line on stderr: files done / total and megabytes; tqdm when it is installed."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.total, self.desc, self.enabled = total, desc, enabled
        self.done, self.megabytes, self.bar = 0, 0.0, None
        if enabled:
            try:
                from tqdm import tqdm  # ships with lightning; optional here
                self.bar = tqdm(total=total, desc=desc, unit="file", file=sys.stderr)
            except ImportError:
                pass

    def update(self, nbytes: int) -> None:
        self.done += 1
        self.megabytes += nbytes / 1e6
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.megabytes:.1f} MB", refresh=False)
            self.bar.update()
        elif self.enabled:
            print(f"\r{self.desc}: {self.done}/{self.total} files, {self.megabytes:.1f} MB",
                  end="", file=sys.stderr, flush=True)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(file=sys.stderr)
