"""MIT-BIH Normal Sinus Rhythm Database (PhysioNet ``nsrdb``): beat windows of 18 subjects.

18 long-term (about 24 h) two-lead Holter recordings (``ECG1``, ``ECG2``) at 128 Hz of
subjects without significant arrhythmia, with reference beat annotations in ``.atr`` files;
one record per subject. Nearly every beat is normal, so the database serves subject
identification (``label_scheme=identification``, ``split=time``; Kim & Pyun 2020 report 100 %)
rather than beat classification.

``max_seconds`` reads only the start of every record (default 30 minutes, the length of an
MIT-BIH record): the whole database holds about 1.8 million beats.

Not in ``../shared/data``: ``prepare_data`` downloads it from PhysioNet (about 450 MB).
"""

from __future__ import annotations

from ecg_lightning.data.beats import BeatDataModule


class NSRDBDataModule(BeatDataModule):
    """Beat windows of the MIT-BIH Normal Sinus Rhythm Database (one subject per record)."""

    slug = "nsrdb"
    physionet_version = "1.0.0"
    splits_offered = ("time", "record", "kfold", "intra_patient")

    default_lead = "ECG1"

    def __init__(self, lead: str | None = None, max_seconds: float | None = 1800.0,
                 label_scheme: str = "identification", split: str = "time", **beat) -> None:
        super().__init__(lead=lead, max_seconds=max_seconds, label_scheme=label_scheme,
                         split=split, **beat)
