"""MIT-BIH Supraventricular Arrhythmia Database (PhysioNet ``svdb``): beats of 78 subjects.

Greenwald 1990 (MIT thesis); PhysioNet ``svdb`` 1.0.0: 78 half-hour excerpts of two-lead
Holter recordings (``ECG1``, ``ECG2``) at 128 Hz, records ``800``-``894`` (not contiguous), one
subject each, chosen to supplement the supraventricular arrhythmias of the MIT-BIH Arrhythmia
Database. The ``.atr`` beat annotations use the MIT-BIH symbol set (supraventricular ectopic
beats are ``S``), so the AAMI mapping of ``labels.py`` applies unchanged.

Reading, filtering, windows (beat-centred or sliding) and the generic splits come from
``beats.py``; ``mitdb_svdb.py`` combines this database with MIT-BIH. A missing folder is
downloaded from PhysioNet by ``prepare_data`` (about 80 MB). Record 860's ``.atr`` marks a beat
at sample 230,400, its length: dropped and counted on the card (``beats.drop_past_end``).
"""

from __future__ import annotations

from ecg_lightning.data.beats import BeatDataModule


class SVDBDataModule(BeatDataModule):
    """Beat windows of the MIT-BIH Supraventricular Arrhythmia Database (one subject per record)."""

    slug = "svdb"
    physionet_version = "1.0.0"
    splits_offered = ("record", "kfold", "intra_patient", "time")

    default_lead = "ECG1"

    def __init__(self, lead: str | None = None, label_scheme: str = "aami",
                 split: str = "record", **beat) -> None:
        super().__init__(lead=lead, label_scheme=label_scheme, split=split, **beat)
