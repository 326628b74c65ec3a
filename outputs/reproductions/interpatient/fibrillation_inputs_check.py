"""What drives a DS1-CV checkpoint's false S calls in a held-out fibrillation record (2026-12-06).

    ECG_DATA_DIR=... .venv/bin/python outputs/reproductions/interpatient/fibrillation_inputs_check.py <run dir> <record>

The run dir is one DS1 cross-validation run (ds1_cv_selection.md) whose test fold holds the
record (201 in fold 0, 203 in fold 1). Its best checkpoint classifies the test fold again, with
one input at a time replaced: the window zeroed, every RR input or one of them set to the mean
of the training split's N beats (scaled as the net sees them). Prints, per variant, how many of
the record's N beats inside atrial fibrillation or flutter (its ``(AFIB`` / ``(AFL`` rhythm
annotations) are called S. DS1 only; explains, chooses nothing.
"""
import glob
import sys

import numpy as np
import torch
import wfdb

from ecg_lightning.data.base import ITEM, SIGNAL, TARGET
from ecg_lightning.predict import load_for_prediction

S = 1  # AAMI class index: N S V F Q


def predictions(model, batches, change) -> np.ndarray:
    out = []
    with torch.no_grad():
        for batch in batches:
            batch = {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()}
            change(batch)
            out.append(model.probabilities(model(batch)).argmax(1))
    return torch.cat(out).numpy()


if __name__ == "__main__":
    run_dir, record = sys.argv[1], sys.argv[2]
    cfg, dm, model, _ = load_for_prediction(glob.glob(f"{run_dir}/checkpoints/best-*.ckpt")[0])
    dm.setup("fit")
    dm.setup("test")
    batches = list(dm.test_dataloader())
    item = dm.split_indices()["test"][torch.cat([b[ITEM] for b in batches]).numpy()]
    train = list(dm.train_dataloader())
    train_rr = torch.cat([b["rr"] for b in train])
    normal_rr = train_rr[torch.cat([b[TARGET] for b in train]) == 0].mean(0)

    annotation = wfdb.rdann(str(dm.record_path(record)), "atr")
    changes = [(s, a.strip("\x00")) for s, sym, a in
               zip(annotation.sample, annotation.symbol, annotation.aux_note) if sym == "+"]
    samples = dm.samples[item]
    rhythm = np.array([([a for at, a in changes if at <= s] or ["?"])[-1] for s in samples])
    fibrillation_n = ((dm.records.astype(str)[item] == record) & np.isin(rhythm, ["(AFIB", "(AFL"])
                      & (dm.targets[item] == 0))

    def one_rr(column):
        def change(batch):
            batch["rr"][:, column] = normal_rr[column]
        return change

    variants = [("as trained", lambda b: None), ("window zeroed", lambda b: b[SIGNAL].zero_()),
                ("every RR input at the N mean", lambda b: b["rr"].copy_(normal_rr.expand_as(b["rr"])))]
    variants += [(f"{name} at the N mean", one_rr(k)) for k, name in enumerate(dm.rr_features)]
    print(f"{record}: {fibrillation_n.sum()} N beats in fibrillation or flutter")
    for name, change in variants:
        called = predictions(model, batches, change)
        print(f"  {name:32s} called S: {(called[fibrillation_n] == S).sum()}")
