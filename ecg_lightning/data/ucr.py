"""Read and download datasets of the UCR time-series classification archive.

The archive (Dau et al., "The UCR Time Series Archive", IEEE/CAA J. Autom. Sinica 6(6), 2019;
https://www.timeseriesclassification.com) ships every dataset as ``<NAME>_TRAIN`` and
``<NAME>_TEST`` files in up to four formats, all read by :func:`read_ucr`:

* ``.txt``: one series per line, the class label first, values separated by whitespace
  (the pre-2018 archive; labels written as floats, ``1.0000000e+00``);
* ``.tsv``: the same with tabs (the 2018 archive; variable-length series padded with ``NaN``);
* ``.ts``: the sktime/aeon format, ``@`` header lines then ``v1,v2,...,vn:label`` per series,
  ``?`` for a missing value (univariate, without time stamps: what the UCR sets are);
* ``.arff``: Weka's format, read with ``scipy.io.arff``; numeric attributes, then the nominal
  class attribute last.

Labels come back as strings, integral numbers without their decimals (``"1.0"`` -> ``"1"``),
so every format names a class the same way. A malformed row is an error naming the file and
its line. Rows with missing samples (``NaN``, ``?``) are an error too unless ``on_nan="skip"``:
then they are dropped and their line numbers returned, for the caller to count and report.

:func:`download_ucr` fetches a dataset's zip (the archive publishes no checksums: pass
``sha256`` to pin one; the digest is logged either way) and unpacks only its TRAIN/TEST files,
all or nothing.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg_lightning.data.download import DataUnavailableError

log = logging.getLogger(__name__)

FORMATS = ("txt", "tsv", "ts", "arff")  # the order in which format="auto" looks for a file
ON_NAN = ("error", "skip")
TIMEOUT_S = 60
_CHUNK = 1 << 20
_NETWORK_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException)


class UCRFormatError(ValueError):
    """A UCR file that cannot be read: names the file and, where it applies, the line."""


@dataclass
class UCRSeries:
    """The series of one file: ``values`` [N, T] float32, ``labels`` (N strings), ``lines``
    (the 1-based line of every series in the file) and ``skipped`` (lines dropped for NaNs)."""

    values: np.ndarray
    labels: list[str]
    lines: list[int]
    skipped: list[int]


def read_ucr(path: str | Path, on_nan: str = "error") -> UCRSeries:
    """Every series of a UCR ``.txt``, ``.tsv``, ``.ts`` or ``.arff`` file (see the module doc)."""
    path = Path(path)
    if on_nan not in ON_NAN:
        raise ValueError(f"data.on_nan={on_nan!r} is unknown; valid: {', '.join(ON_NAN)}")
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in FORMATS:
        raise UCRFormatError(f"{path}: unknown UCR format {path.suffix!r}; valid: "
                             + ", ".join(f".{f}" for f in FORMATS))
    reader = {"txt": _rows_delimited, "tsv": _rows_delimited, "ts": _rows_ts,
              "arff": _rows_arff}[suffix]
    rows = reader(path)  # [(line, label, values)]
    if not rows:
        raise UCRFormatError(f"{path}: holds no series")
    length = len(rows[0][2])
    kept, skipped = [], []
    for line, label, values in rows:
        if len(values) != length:
            raise UCRFormatError(f"{path} line {line}: {len(values)} samples, but line "
                                 f"{rows[0][0]} has {length}")
        missing = np.isnan(values)
        if missing.any():
            if on_nan == "error":
                raise UCRFormatError(
                    f"{path} line {line}: {int(missing.sum())} missing (NaN) samples, the first "
                    f"at sample {int(missing.argmax()) + 1}; set data.on_nan=skip to drop such "
                    "rows (the dataset card counts them)")
            skipped.append(line)
            continue
        kept.append((line, label, values))
    if not kept:
        raise UCRFormatError(f"{path}: every one of its {len(rows)} series has missing samples")
    return UCRSeries(values=np.stack([v for _, _, v in kept]).astype(np.float32),
                     labels=[label for _, label, _ in kept], lines=[line for line, _, _ in kept],
                     skipped=skipped)


def _label(text: str) -> str:
    """``"1.0000000e+00"`` -> ``"1"``; other labels stay as written."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _numbers(path: Path, line: int, fields: list[str]) -> np.ndarray:
    """Floats of one row (``?`` and ``NaN`` -> NaN); an error naming the bad field otherwise."""
    try:
        return np.array([np.nan if f.strip() == "?" else float(f) for f in fields])
    except ValueError:
        bad = next(i for i, f in enumerate(fields) if not _is_number(f))
        raise UCRFormatError(f"{path} line {line}: sample {bad + 1} is {fields[bad]!r}, "
                             "not a number") from None


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return field.strip() == "?"
    return True


def _rows_delimited(path: Path) -> list[tuple[int, str, np.ndarray]]:
    """``.txt`` (whitespace) and ``.tsv`` (tabs): the label, then the samples."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            fields = text.split("\t") if path.suffix.lower() == ".tsv" else text.split()
            if len(fields) < 2:
                raise UCRFormatError(f"{path} line {line}: a label without samples")
            rows.append((line, _label(fields[0]), _numbers(path, line, fields[1:])))
    return rows


def _rows_ts(path: Path) -> list[tuple[int, str, np.ndarray]]:
    """sktime/aeon ``.ts``: ``@`` headers, then ``v1,...,vn:label`` per line after ``@data``."""
    rows, in_data = [], False
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            text = text.strip()
            if not text or text.startswith("#"):
                continue
            if not in_data:
                key, _, value = text.lower().partition(" ")
                if key == "@univariate" and value.strip() == "false":
                    raise UCRFormatError(f"{path} line {line}: multivariate series are not supported")
                if key == "@timestamps" and value.strip() == "true":
                    raise UCRFormatError(f"{path} line {line}: time-stamped series are not supported")
                if key == "@classlabel" and not value.startswith("true"):
                    raise UCRFormatError(f"{path} line {line}: the series carry no class label")
                in_data = key == "@data"
                continue
            *dimensions, label = text.split(":")
            if len(dimensions) != 1:
                raise UCRFormatError(f"{path} line {line}: expected 'v1,v2,...,vn:label', found "
                                     f"{len(dimensions) + 1} ':'-separated fields")
            rows.append((line, _label(label), _numbers(path, line, dimensions[0].split(","))))
    if not in_data:
        raise UCRFormatError(f"{path}: no @data line: not a .ts file")
    return rows


def _rows_arff(path: Path) -> list[tuple[int, str, np.ndarray]]:
    """Weka ``.arff`` via scipy: numeric attributes, then the nominal class attribute."""
    from scipy.io import arff

    try:
        data, meta = arff.loadarff(path)
    except (ValueError, IndexError, arff.ArffError) as error:
        raise UCRFormatError(f"{path}{_bad_arff_line(path)}: not a readable ARFF file "
                             f"({type(error).__name__}: {error})") from error
    names, types = meta.names(), meta.types()
    if types[-1] != "nominal" or any(t != "numeric" for t in types[:-1]):
        raise UCRFormatError(f"{path}: expected numeric attributes and a nominal class last, "
                             f"found {', '.join(f'{n} ({t})' for n, t in zip(names, types))}")
    values = np.stack([data[name].astype(float) for name in names[:-1]], axis=1)
    labels = [_label(label.decode()) for label in data[names[-1]]]
    lines = _arff_data_lines(path)
    return list(zip(lines, labels, values))


def _arff_data_lines(path: Path) -> list[int]:
    """The 1-based line number of every data row (after ``@data``; comments and blanks skipped)."""
    lines, in_data = [], False
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            text = text.strip()
            if not text or text.startswith("%"):
                continue
            if in_data:
                lines.append(line)
            elif text.lower().startswith("@data"):
                in_data = True
    return lines


def _bad_arff_line(path: Path) -> str:
    """`` line N`` of the first data row whose field count or numbers are wrong, else ``""``."""
    with open(path, encoding="utf-8") as handle:
        header = [t.strip() for t in handle]
    attributes = sum(t.lower().startswith("@attribute") for t in header)
    for line in _arff_data_lines(path):
        fields = header[line - 1].split(",")
        if len(fields) != attributes or not all(_is_number(f) for f in fields[:-1]):
            return f" line {line}"
    return ""


# ---------------------------------------------------------------------------- download
def download_ucr(url: str, dest: str | Path, name: str, sha256: str | None = None) -> Path:
    """Fetch the zip at ``url`` and unpack ``<name>_TRAIN``/``<name>_TEST`` files into ``dest``.

    Files are matched by their base name, wherever they sit in the zip, and written into a
    hidden sibling folder that is renamed to ``dest`` only when complete: a failure leaves
    nothing at ``dest``. Raises :class:`DataUnavailableError` when the URL cannot be fetched or
    the zip holds no TRAIN file, ``ValueError`` when ``sha256`` does not match.
    """
    dest = Path(dest)
    wanted = re.compile(rf"^{re.escape(name)}_(TRAIN|TEST)\.({'|'.join(FORMATS)})$")
    tmp = None
    try:
        # The connection opens before anything is created: an unreachable URL leaves no folder.
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
            digest = _save(response, tmp / "archive.zip", Path(url).name)
        if sha256 is not None and digest != sha256.lower():
            raise ValueError(f"{url}: sha256 {digest}, but data.sha256 says {sha256}; the "
                             "download was discarded")
        log.info("downloaded %s (sha256 %s)", url, digest)  # pin it with data.sha256
        _unpack(tmp / "archive.zip", tmp, wanted, url)
        (tmp / "archive.zip").unlink()
        os.replace(tmp, dest)  # atomic; also replaces an empty dest folder
    except _NETWORK_ERRORS as error:
        raise DataUnavailableError(_unavailable(name, url, dest, error)) from error
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing left after a successful rename
    return dest


def _save(response, target: Path, desc: str) -> str:
    """Stream an open HTTP response to ``target`` with a progress bar; return its sha256."""
    from tqdm import tqdm  # ships with lightning

    digest = hashlib.sha256()
    size = int(response.headers.get("Content-Length") or 0) or None
    with open(target, "wb") as out, tqdm(total=size, unit="B", unit_scale=True, desc=desc) as bar:
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _unpack(archive: Path, folder: Path, wanted: re.Pattern, url: str) -> None:
    """Write the zip's members whose base name matches ``wanted`` into ``folder``."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [m for m in bundle.namelist() if wanted.match(Path(m).name)]
            if not any("_TRAIN." in m for m in members):
                raise DataUnavailableError(
                    f"{url} holds no file matching {wanted.pattern}; it has: "
                    f"{', '.join(bundle.namelist()[:20]) or 'nothing'}")
            for member in members:  # by base name only: nothing is written outside the folder
                (folder / Path(member).name).write_bytes(bundle.read(member))
    except zipfile.BadZipFile as error:
        raise DataUnavailableError(f"{url} is not a zip archive ({error})") from error


def _unavailable(name: str, url: str, dest: Path, error: Exception) -> str:
    reason = (f"HTTP {error.code} {error.reason}" if isinstance(error, urllib.error.HTTPError)
              else f"unreachable ({getattr(error, 'reason', error)})")
    return (f"UCR dataset {name} is not at {dest} and cannot be downloaded: {reason}.\n"
            f"  URL tried: {url}\n"
            f"Fix it in one of two ways:\n"
            f"  - set the environment variable ECG_DATA_DIR to a folder holding {dest.name}/, or\n"
            f"  - pass data.root=/path/to/{dest.name}\n"
            f"(or point data.url at a reachable copy of the archive's zip).")
