"""ECG-ID Database (PhysioNet ``ecgiddb``): beats of 90 persons for biometric identification.

Lugovaya 2005: 310 records of 20 s, lead I at 500 Hz, from 90 volunteers, 2 to 20 records per
person collected over up to 6 months (``Person_XX/rec_N``, numbered in recording order). Every
record holds the raw signal (``ECG I``) and the authors' filtered one (``ECG I filtered``):
``lead`` selects either. The ``.atr`` files mark only the first 10 beats of every record, from
an automated, unaudited detector, so beats are found with wfdb's GQRS detector on the whole
record (``beats=detector``, about 8,100 beats; ``beats=annotations`` keeps the 3,100 marked
ones). Measured on the filtered lead at 500 Hz: in 288 of the 310 records (93 %) the detector
finds at least 9 of the 10 marked beats within 30 ms, in 255 (82 %) all 10; the misses are in
noisy records, whose detected "beats" then carry some noise windows.

The task is identification (one class per person). Splits:

* ``time``: each person's earlier beats train, the later ones validate and test (every record
  of every day is a source of all three);
* ``cross_session``: the recording day comes from each header's ``# ECG date: dd.mm.yyyy``;
  20 of the 90 persons were recorded on more than one day (124 person-days in all). Each
  person's earliest day trains, the last ``val_fraction`` of that day's beats (in time order)
  validates, and the beats of that person's later days test; the 70 persons recorded on one
  day train and validate only, and stay enrolled identities (impostor claims) in verification.
"""

from __future__ import annotations

import re
from datetime import date, datetime

import wfdb

from ecg_lightning.data.beats import BeatDataModule

LEADS = ("ECG I filtered", "ECG I")


class ECGIDDataModule(BeatDataModule):
    """Beat windows of ECG-ID, labelled by person."""

    slug = "ecgiddb"
    physionet_version = "1.0.0"
    splits_offered = ("time", "cross_session")
    label_schemes = ("identification",)

    default_lead = "ECG I filtered"

    def __init__(self, lead: str | None = None, beats: str = "detector",
                 label_scheme: str = "identification", split: str = "time", **beat) -> None:
        if lead is not None and lead not in LEADS:
            raise ValueError(f"data.lead={lead!r} is not an ECG-ID signal; valid: {', '.join(LEADS)}")
        super().__init__(lead=lead, beats=beats, label_scheme=label_scheme, split=split, **beat)

    def subject_of(self, record: str) -> str:
        return record.split("/")[0]  # Person_XX/rec_N

    def recording_day(self, record: str) -> date | None:
        """The header's ``# ECG date: dd.mm.yyyy`` comment (ECG-ID sets no base date)."""
        for comment in wfdb.rdheader(str(self.record_path(record))).comments:
            found = re.fullmatch(r"\s*ECG date:\s*(\d{2}\.\d{2}\.\d{4})\s*", comment)
            if found:
                return datetime.strptime(found.group(1), "%d.%m.%Y").date()
        return None
