"""The DS1 cross-validation checkpoints of the default, scored with a bias on S (2026-12-06).

    ECG_DATA_DIR=... .venv/bin/python outputs/reproductions/interpatient/s_bias_check.py <run dir>...

Each run dir is one cross-validation run (`hydra.run.dir` of the command in
ds1_cv_selection.md). Its best checkpoint classifies its validation and held-out records (the
datamodule of its own config); the decision is the argmax over N, S, V, F of the log-probability
with ``bias`` added to S. Prints, per bias, the means over the runs of the held-out macro-F1,
accuracy, S Se and S +P, and per run the bias that maximises the validation macro-F1. Figures
from ``ecg_lightning.metrics.scored_metrics`` (the runs' own test figures at bias 0).
"""
import glob
import sys

import numpy as np
import torch

from ecg_lightning.data.base import RECORD, TARGET
from ecg_lightning.metrics import scored_metrics
from ecg_lightning.predict import load_for_prediction

SCORED = [0, 1, 2, 3]  # N, S, V, F
BIASES = [-0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]


def probabilities(run_dir: str) -> dict:
    _, datamodule, model, _ = load_for_prediction(glob.glob(f"{run_dir}/checkpoints/best-*.ckpt")[0])
    datamodule.setup("fit")
    datamodule.setup("test")
    out = {}
    for stage, loader in (("val", datamodule.val_dataloader()), ("test", datamodule.test_dataloader())):
        with torch.no_grad():
            batches = [(model.probabilities(model(b)), b[TARGET]) for b in loader]
        out[stage] = (torch.cat([p for p, _ in batches]), torch.cat([y for _, y in batches]))
    return out


def figures(probs: torch.Tensor, target: torch.Tensor, bias: float) -> dict:
    kept = torch.isin(target, torch.tensor(SCORED))
    logp = probs[kept][:, SCORED].clamp_min(1e-12).log()
    logp[:, 1] += bias
    m = scored_metrics(target[kept], logp.argmax(dim=1), len(SCORED))
    return {"f1_macro": float(m["f1_macro"]), "accuracy": float(m["accuracy"]),
            "S_Se": float(m["sensitivity"][1]), "S_+P": float(m["precision"][1])}


if __name__ == "__main__":
    runs = {d: probabilities(d) for d in sys.argv[1:]}
    for bias in BIASES:
        rows = [figures(*r["test"], bias) for r in runs.values()]
        print(f"bias {bias:+.2f}: " + ", ".join(f"{k} {np.mean([row[k] for row in rows]):.3f}"
                                                for k in rows[0]))
    for d, r in runs.items():
        best = max(BIASES, key=lambda b: figures(*r["val"], b)["f1_macro"])
        print(f"{d}: validation macro-F1 highest at bias {best:+.2f}")
