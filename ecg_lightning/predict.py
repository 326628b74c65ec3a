"""Classify every beat of a WFDB record with a trained checkpoint.

    python -m ecg_lightning.predict ckpt=<path or runs:/...> record=path/to/100 [out=folder]

Beat positions come from the record's ``.atr`` annotation file when there is one, otherwise
from wfdb's GQRS detector. The record is read, resampled to the rate the model was trained at
and filtered exactly as the training data was (the checkpoint carries its data config, its
data facts and its fitted transforms: PCA, RR scaling); RR features, when the model was
trained with them, are computed from this record's own beat positions. Writes into ``out`` (default
``outputs/predictions/<record>/``):

* ``<record>.pred``: a WFDB annotation file (``wfdb.rdann(path, "pred")``) with one annotation
  per classified beat: the class as the annotation symbol when it is one WFDB knows (N, S, V,
  F, Q...), otherwise ``Q``, and always the class name in the annotation's aux note;
* ``<record>_predictions.csv``: sample, time (s), label, then one probability per class;
* ``<record>_predictions.png``: the first 20 s of the record with the predicted labels.

Only beat-window models of the WFDB beat databases (mitdb, nsrdb, ecgiddb, svdb and their
presets; not the sliding windows of the spectrogram-CNN study) can predict on a record; the G-mean thresholds of the checkpoint are reported beside the argmax
label in the CSV (``<class>_at_gmean`` columns: 1 where the probability reaches the threshold).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import torch
import wfdb
from hydra.utils import instantiate
from omegaconf import OmegaConf
from wfdb.io.annotation import ann_label_table

from ecg_lightning.data.base import SIGNAL
from ecg_lightning.data.beats import BeatDataModule, read_beat_windows, with_record_template
from ecg_lightning.data.labels import BEAT_SYMBOLS
from ecg_lightning.evaluate import local_checkpoint, read_checkpoint
from ecg_lightning.plots import plot_strip
from ecg_lightning.run import model_from_facts

WFDB_SYMBOLS = set(ann_label_table["symbol"])


def load_for_prediction(ckpt: str):
    """``(config, datamodule with its saved state, model in eval mode, facts)`` of a checkpoint."""
    path, _ = local_checkpoint(ckpt)
    checkpoint = read_checkpoint(path)
    cfg = OmegaConf.create(checkpoint["hyper_parameters"]["run_config"])
    cfg.bootstrap_resamples = 0  # predict computes no test metric to bootstrap
    facts = checkpoint["hyper_parameters"].get("data_facts")
    if not facts or "sampling_rate_hz" not in facts:
        raise ValueError(f"ckpt={path} was not trained on a WFDB beat database (or predates "
                         "data facts in checkpoints): predict needs beat windows of a known rate")
    datamodule = instantiate(cfg.data)
    if not isinstance(datamodule, BeatDataModule):
        raise ValueError(f"ckpt={path}: its data ({cfg.data._target_}) is not a beat database")
    if datamodule.segmentation != "beats":
        # A sliding window spans several beats: its label is not one beat's, so there is no
        # beat-by-beat annotation file to write.
        raise ValueError(f"ckpt={path} was trained on data.segmentation={datamodule.segmentation} "
                         "windows; predict classifies one window per beat and needs a model trained "
                         "with data.segmentation=beats")
    datamodule.load_state_dict(checkpoint.get(type(datamodule).__name__, {}))
    model = model_from_facts(cfg, facts)
    model.load_state_dict(checkpoint["state_dict"])
    return cfg, datamodule, model.eval(), facts


def beat_inputs(datamodule: BeatDataModule, record: Path, facts: dict) -> dict:
    """The record's beat windows (and RR features), preprocessed as the training data."""
    if not record.with_suffix(".hea").is_file():
        raise FileNotFoundError(f"record={record}: no header {record.with_suffix('.hea')}")
    beats = "annotations" if record.with_suffix(".atr").is_file() else "detector"
    options = {**datamodule.read_options(), "fs": facts["sampling_rate_hz"], "beats": beats,
               "max_seconds": None}
    read = read_beat_windows(record, **options)
    if "missing_leads" in read:
        raise ValueError(f"record={record} lacks leads {read['missing_leads']} (its leads: "
                         f"{', '.join(read['record_leads'])}); the model was trained on "
                         f"{datamodule.leads}")
    expected = facts.get("window_leads")
    if expected is not None and read["windows"].shape[1] != expected:
        raise ValueError(f"record={record} has {read['windows'].shape[1]} lead(s) for "
                         f"data.leads={datamodule.leads}, the model was trained on {expected} "
                         f"({', '.join(read['leads'])} here)")
    is_beat = np.isin(read["symbols"], BEAT_SYMBOLS)  # classify beats, not rhythm or noise marks
    samples = read["samples"][is_beat]
    windows = read["windows"][is_beat]
    if datamodule.record_template is not None:  # this record's own median beat
        windows = with_record_template(windows, read["template"], datamodule.record_template)
    inputs = {SIGNAL: windows}
    if datamodule.rr_features:  # the same features, from this record's own beat positions
        inputs["rr"] = datamodule.rr_of_record(samples, read["beat_samples"],
                                               read["gap_samples"], read["fs"], str(record))
    return {"samples": samples, "beats": beats, "inputs": datamodule.features(inputs)}


def predict(ckpt: str, record: str, out: str | None = None, batch_size: int = 1024) -> dict:
    cfg, datamodule, model, facts = load_for_prediction(ckpt)
    record_path = Path(record)
    native_fs = wfdb.rdheader(str(record_path)).fs
    beats = beat_inputs(datamodule, record_path, facts)
    inputs = {name: torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
              for name, values in beats["inputs"].items()}
    with torch.no_grad():
        probs = torch.cat([model.probabilities(model({name: values[start:start + batch_size]
                                                      for name, values in inputs.items()}))
                           for start in range(0, len(beats["samples"]), batch_size)]).numpy()
    names = facts["class_names"]
    labels = [names[i] for i in probs.argmax(axis=1)]
    samples = np.round(beats["samples"] * native_fs / facts["sampling_rate_hz"]).astype(np.int64)
    folder = Path(out) if out else Path(cfg.paths.outputs_dir) / "predictions" / record_path.name
    folder.mkdir(parents=True, exist_ok=True)
    files = write_outputs(record_path, folder, samples, native_fs, labels, probs, names,
                          model.gmean_thresholds.numpy())
    return {"labels": labels, "samples": samples, "probabilities": probs, "files": files,
            "beat_positions": beats["beats"]}


def write_outputs(record: Path, folder: Path, samples, fs: float, labels: list[str], probs,
                  names: list[str], thresholds) -> list[Path]:
    symbols = [label if label in WFDB_SYMBOLS else "Q" for label in labels]
    wfdb.wrann(record.name, "pred", samples, symbol=symbols, aux_note=labels, fs=fs,
               write_dir=str(folder))
    table = folder / f"{record.name}_predictions.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample", "time_s", "label", *names, *(f"{n}_at_gmean" for n in names)])
        called = probs >= np.nan_to_num(thresholds, nan=np.inf)
        for sample, label, row, calls in zip(samples, labels, probs, called):
            writer.writerow([int(sample), round(sample / fs, 4), label,
                             *(f"{p:.5f}" for p in row), *calls.astype(int)])
    seconds = min(20.0, wfdb.rdheader(str(record)).sig_len / fs)
    signal = wfdb.rdrecord(str(record), sampto=round(seconds * fs), channels=[0]).p_signal[:, 0]
    shown = samples < len(signal)
    figure = plot_strip(np.arange(len(signal)) / fs, signal, samples[shown] / fs,
                        [l for l, s in zip(labels, shown) if s],
                        f"{record.name}: predicted labels (first {seconds:.0f} s, channel 0)",
                        folder / f"{record.name}_predictions.png")
    return [folder / f"{record.name}.pred", table, figure]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = dict(a.split("=", 1) for a in argv if "=" in a)
    if "ckpt" not in args or "record" not in args or set(args) - {"ckpt", "record", "out"}:
        sys.exit("usage: python -m ecg_lightning.predict ckpt=<path or runs:/...> "
                 "record=<path/to/record> [out=<folder>]")
    result = predict(args["ckpt"], args["record"], args.get("out"))
    counts = {name: result["labels"].count(name) for name in sorted(set(result["labels"]))}
    print(f"{len(result['labels'])} beats ({result['beat_positions']}): {counts}")
    for path in result["files"]:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
