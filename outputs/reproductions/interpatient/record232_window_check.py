"""What tells record 232's missed S beats from those found (2026-12-06; beat_cnn's docstring).

    ECG_DATA_DIR=... .venv/bin/python outputs/reproductions/interpatient/record232_window_check.py <ckpt>

Read on DS2 after its test, with the checkpoint of a default run (seed 42 here): it explains,
it chooses nothing. Prints the median of each standardised RR input and the RMS of the input
window (the window minus 232's median beat) for the S beats missed, those found and 232's
normal (RBBB, ``R``) beats, and the S probability of the missed.
"""
import sys
from pathlib import Path

import numpy as np
import torch
import wfdb

from ecg_lightning.data.base import SIGNAL
from ecg_lightning.predict import beat_inputs, load_for_prediction

cfg, datamodule, model, facts = load_for_prediction(sys.argv[1])
record = Path(datamodule.root) / "232"
beats = beat_inputs(datamodule, record, facts)
inputs = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in beats["inputs"].items()}
with torch.no_grad():
    probs = model.probabilities(model(inputs)).numpy()
annotation = wfdb.rdann(str(record), "atr")
symbol_at = dict(zip(annotation.sample, annotation.symbol))
symbols = np.array([symbol_at[int(round(s))] for s in beats["samples"]])  # 360 Hz, as read
predicted = probs.argmax(axis=1)
is_s = np.isin(symbols, list("AaJS"))
groups = {"missed S": is_s & (predicted != 1), "found S": is_s & (predicted == 1), "R": symbols == "R"}
print({name: int(mask.sum()) for name, mask in groups.items()})
rms = np.sqrt((inputs[SIGNAL].numpy().reshape(len(symbols), -1) ** 2).mean(axis=1))
for i, name in enumerate(cfg.data.rr_features):
    print(f"{name:14s}", "  ".join(f"{g} {np.median(beats['inputs']['rr'][m, i]):+.2f}" for g, m in groups.items()))
print("window RMS     ", "  ".join(f"{g} {np.median(rms[m]):.3f}" for g, m in groups.items()))
missed = probs[groups["missed S"], 1]
print(f"S probability of the missed: median {np.median(missed):.2f}, over 0.1 for {(missed > 0.1).mean():.0%}")
