"""Label schemes that map MIT-BIH style annotation symbols to class indices.

AAMI EC57 groups the MIT-BIH beat symbols into five classes; every other symbol in an
``.atr`` file (rhythm changes ``+``, noise ``~``, ``|``, ``!``, ``"``, ``x``, ``[``, ``]``) is a
non-beat annotation. The ``symbols`` scheme keeps all of them, as Ju et al. 2019 do.
"""

from __future__ import annotations

import numpy as np

AAMI_CLASSES = {
    "N": ("N", "L", "R", "e", "j"),
    "S": ("A", "a", "J", "S"),
    "V": ("V", "E"),
    "F": ("F",),
    "Q": ("/", "f", "Q"),
}
BEAT_SYMBOLS = tuple(s for group in AAMI_CLASSES.values() for s in group)

# Every symbol that occurs in the 48 MIT-BIH Arrhythmia ``.atr`` files, most frequent first.
MITDB_SYMBOLS = (
    "N", "L", "R", "V", "/", "A", "+", "f", "F", "~", "!", '"',
    "j", "x", "a", "|", "E", "J", "Q", "e", "[", "]", "S",
)

LABEL_SCHEMES = ("aami", "binary", "symbols")
AAMI_SCORED = ("N", "S", "V", "F")  # AAMI EC57 scores these; Q (unclassifiable) is left out


def scored_classes(scheme: str) -> list[str] | None:
    """The classes a scheme's headline figures are computed over, apart from the rest
    (``<stage>/nsvf/...``, ecg_lightning/metrics.py): AAMI's N, S, V, F; None for the others."""
    return list(AAMI_SCORED) if scheme == "aami" else None


def scheme_classes(scheme: str, symbols_present: tuple[str, ...] = MITDB_SYMBOLS) -> list[str]:
    """Class names of a label scheme, in class-index order."""
    if scheme == "aami":
        return list(AAMI_CLASSES)
    if scheme == "binary":
        return ["normal", "abnormal"]
    if scheme == "symbols":
        return list(symbols_present)
    raise ValueError(f"unknown label scheme {scheme!r}; valid: {', '.join(LABEL_SCHEMES)}")


def encode_symbols(symbols: np.ndarray, scheme: str, classes: list[str]) -> np.ndarray:
    """Class index for every annotation symbol; -1 where the scheme has no class for it.

    ``aami`` and ``binary`` keep beats only (binary: ``N`` is normal, every other beat
    abnormal); ``symbols`` keeps every annotation.
    """
    if scheme == "aami":
        table = {s: i for i, group in enumerate(AAMI_CLASSES.values()) for s in group}
    elif scheme == "binary":
        table = {s: int(s != "N") for s in BEAT_SYMBOLS}
    elif scheme == "symbols":
        table = {s: i for i, s in enumerate(classes)}
    else:
        scheme_classes(scheme)  # raises with the list of valid schemes
    lookup = np.vectorize(lambda s: table.get(s, -1), otypes=[np.int64])
    return lookup(symbols) if len(symbols) else np.zeros(0, dtype=np.int64)
