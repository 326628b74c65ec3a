"""Speed and memory benchmarks: preparation of every database, training throughput, loader
share, ``predict`` on a 30-minute record, peak memory.

    python -m ecg_lightning.bench [--out outputs/bench] [--quick]
        [--only default_run | --only train_throughput [KEY=VALUE ...]]
    ECG_DATA_DIR=../shared/data make bench

Writes one JSON report per benchmark under ``--out`` (``prepare_<database>.json``,
``train_throughput.json``, ``dataloader_share.json``, ``train_throughput_families.json``,
``predict.json``, ``memory.json``, ``augment_share.json``,
``prepare_mitdb_rr_two_leads.json``, ``default_run.json``) and a ``summary.json``; every report holds the date, machine facts, the measured figures, the targets
and whether each is met. A compact table is printed at the end.

* **prepare_<database>**, for every database of ``DATABASES`` whose files are under
  ``ECG_DATA_DIR`` (the others are listed as skipped): cold = ``prepare_data()`` into a fresh
  cache folder (reads every record, filters, cuts windows, writes the cache); warm = a new
  datamodule's ``prepare_data()`` + ``setup("fit")`` on that cache. Timed in-process, imports
  excluded. "Cold" means a cold *cache*: the raw files are in the OS page cache after the
  first read. Targets (< 2 s cold, < 0.2 s warm) for mitdb; the others are reported.
* **train_throughput**: samples/s of the Lightning loop (the real ``ClassificationTask`` under
  ``Trainer.fit``) against a plain PyTorch loop that drives the same pieces (net, loss module,
  Adam from the task's optimiser factory, train-accuracy metric) over the same train loader,
  batch size and step count, seeded alike. Runs alternate (plain-lightning, lightning-plain,
  ...) so that a drift in machine load, or any effect of going first, cancels out of the
  medians; the ratio is what matters on a shared machine. The default model's EMA of the
  weights (``model.ema_decay``) is switched off on both sides: it is the recipe's cost, not
  the framework's. ``--only train_throughput [KEY=VALUE ...]`` runs this one alone, on the
  default config with the overrides (e.g. ``model.net.width=32``). Profiled (2026-12-03, width
  16): Lightning adds about 8 ms to an 80 ms step, half of it the per-step
  ``self.log("train/loss", on_step=True)``; on a 2-core VM one run's per-round ratios spread
  0.82-1.57 (2026-12-03): only the interquartile verdict says whether a figure is decided.
* **dataloader_share**: time the plain loop spends waiting for batches, as a share of its time.
* **augment_share**: ``augment=default`` on a training batch, as a share of a training step
  (target < 5 %).
* **prepare_mitdb_rr_two_leads**: mitdb with both leads and four RR features, cold and warm,
  against the one-lead default of ``prepare_mitdb``.
* **train_throughput_families**: the same comparison (same rounds and run length) for every model
  family (an LSTM with two leads and RR features through the fusion head, whose
  ratio >= 0.95 is a target; GRU, late-fusion BiLSTM, 1-D CNN, multilabel CNN-GRU on PTB-XL, LSTM autoencoder on
  ECG5000, 2-D spectrogram CNN), each on data it fits (``FAMILIES``).
* **predict**: ``ecg_lightning.predict`` on MIT-BIH record 100 (30 min) with a checkpoint of
  the default model, with the record's annotations and with wfdb's detector (target < 1 s).
* **memory**: peak resident set size after preparation and after everything.
* **default_run**: ``python -m ecg_lightning.run`` as a user first types it, in a subprocess
  with a fresh project folder (so a cold cache; the raw files from ``ECG_DATA_DIR``): its wall
  time from process start to exit (target < 10 min on 2 cores), epochs run, best epoch, the
  median seconds an epoch (training and validation, the EMA included: ``seconds_per_epoch``
  from its MLflow run) and its peak RSS (``os.wait4``). It runs last, after the in-process
  benchmarks, whose worker RSS figures would otherwise include it. ``--only default_run`` runs
  this one alone (about 5 minutes).

The default config (``data=mitdb_interpatient model=beat_cnn loss=ce optimizer=adam``) is composed with
``compose_config``, as ``python -m ecg_lightning.run`` composes it; ``torch`` keeps its default
thread count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from ecg_lightning.run import build_model
from ecg_lightning.predict import predict
from ecg_lightning.summary import CONFIG_DIR, compose_config

SEED = 0


@dataclass(frozen=True)
class Settings:
    """How many repetitions and steps each benchmark runs."""

    cold_repeats: int = 3
    warm_repeats: int = 5
    warmup_steps: int = 3
    # Every timed run trains until its timed batches have taken at least this long: runs of
    # 15 steps (~0.6 s) swung the ratio from 0.96 to 0.83 between two runs of the same code
    # on a shared machine; runs of >= 5 s, interleaved over >= 6 rounds, with the spread of
    # the per-round ratios written beside the median, say whether a verdict is possible.
    min_run_s: float = 5.0
    rounds: int = 6  # one plain and one Lightning run each; even, so each loop goes first equally
    default_run_overrides: tuple[str, ...] = ()  # none: the default run as a user runs it


QUICK = Settings(cold_repeats=1, warm_repeats=3, warmup_steps=1, min_run_s=0.5, rounds=2,
                 default_run_overrides=("trainer.max_epochs=1", "+trainer.limit_train_batches=10",
                                        "+trainer.limit_val_batches=5", "bootstrap_resamples=10"))


@dataclass(frozen=True)
class Target:
    """A figure's target: ``figure op threshold``; informative targets do not fail the bench."""

    figure: str
    op: str  # "<" or ">="
    threshold: float
    informative: bool = False

    def check(self, figures: dict) -> dict:
        value = figures[self.figure]
        met = value < self.threshold if self.op == "<" else value >= self.threshold
        return {"figure": self.figure, "value": value, "target": f"{self.op} {self.threshold:g}",
                "met": bool(met), "informative": self.informative}


# ---------------------------------------------------------------------------- helpers
def machine_facts() -> dict:
    """What the figures depend on: cores, platform, versions, threads and the current load."""
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "machine": platform.machine(),  # not platform.processor(): it forks `uname -p`
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],
    }


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size of this process (or of its largest finished child) in MiB."""
    peak = resource.getrusage(who).ru_maxrss
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 2**10, 1)  # bytes vs KiB


def timed(action, *args) -> float:
    """Seconds that ``action(*args)`` takes."""
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start


def now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def quartiles(values: list[float]) -> list[float]:
    """The 25 % and 75 % quantiles (``statistics``' inclusive method; one value: itself twice)."""
    if len(values) < 2:
        return [values[0], values[0]]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return [q1, q3]


def verdict(per_round: list[float], threshold: float) -> str:
    """Whether the per-round ratios' interquartile range allows a verdict on ``>= threshold``."""
    low, high = quartiles(per_round)
    if low >= threshold:
        return f"meets: the interquartile range {low:.3f}-{high:.3f} lies above {threshold:g}"
    if high < threshold:
        return f"misses: the interquartile range {low:.3f}-{high:.3f} lies below {threshold:g}"
    return (f"no verdict: the interquartile range {low:.3f}-{high:.3f} straddles {threshold:g} "
            "(the machine's noise is larger than the difference)")


def median(values: list[float]) -> float:
    return statistics.median(values)


def rounded(values: list[float], digits: int = 4) -> list[float]:
    return [round(v, digits) for v in values]


def write_report(out_dir: Path, name: str, figures: dict, targets: list[Target],
                 notes: dict) -> dict:
    """Write ``<out_dir>/<name>.json`` (date, machine, figures, checks, notes); return it."""
    checks = [target.check(figures) for target in targets]
    report = {"benchmark": name, "date": now_iso(),
              "machine": machine_facts(), "figures": figures, "checks": checks,
              "all_met": all(c["met"] for c in checks if not c["informative"]), "notes": notes}
    (out_dir / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


# ---------------------------------------------------------------------------- preparation
def new_datamodule(cfg: DictConfig, cache_dir: Path):
    """The configured datamodule on ``cache_dir``; never downloads (a bench times preprocessing)."""
    return instantiate(cfg.data, cache_dir=str(cache_dir), download=False)


def prepare_and_setup(datamodule) -> None:
    datamodule.prepare_data()
    datamodule.setup("fit")


def bench_prepare(cfg: DictConfig, workdir: Path, settings: Settings, targets: list[Target]):
    """Cold and warm preparation of ``cfg.data``; returns (figures, targets, notes)."""
    cold, cache = [], None
    for repeat in range(settings.cold_repeats):
        if cache is not None:
            shutil.rmtree(cache)  # keep only the newest cache: the warm runs read it
        cache = workdir / f"cache-{repeat}"
        cold.append(timed(new_datamodule(cfg, cache).prepare_data))
    warm = []
    for _ in range(settings.warm_repeats):
        datamodule = new_datamodule(cfg, cache)
        warm.append(timed(prepare_and_setup, datamodule))
    cache_bytes = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    figures = {
        "cold_median_s": round(median(cold), 4), "cold_runs_s": rounded(cold),
        "warm_median_s": round(median(warm), 4), "warm_runs_s": rounded(warm),
        "cache_mib": round(cache_bytes / 2**20, 1),
        "items": {name: int(len(index)) for name, index in datamodule.splits.items()},
        "peak_rss_mib_after": peak_rss_mib(),
        # The largest preprocessing worker; a forked worker also counts the pages it shares
        # with this process, so this overlaps with the figure above.
        "peak_rss_workers_mib": peak_rss_mib(resource.RUSAGE_CHILDREN),
    }
    notes = {"cold": "fresh cache folder per run: prepare_data() builds the cache (every record "
                     "read, filtered, windowed, written); the raw files are in the OS page "
                     "cache after the first run",
             "warm": "cache present: a new datamodule's prepare_data() + setup('fit')",
             "config": f"data={cfg.data._target_} as configured, cache_dir=<temp>, "
                       "download=false"}
    return figures, targets, notes


# Databases whose preparation is timed when their files are under ECG_DATA_DIR; the targets
# of the guide hold for mitdb, the others are reported.
PREPARE_TARGETS = {"mitdb": [Target("cold_median_s", "<", 2.0), Target("warm_median_s", "<", 0.2)]}
DATABASES = ("mitdb", "ecgiddb", "nsrdb", "svdb", "ptbxl", "ecg5000")


def available_databases(workdir: Path) -> tuple[list[str], dict[str, str]]:
    """The configured databases whose files are here, and why each other one is skipped."""
    found, skipped = [], {}
    for name in DATABASES:
        if not (CONFIG_DIR / "data" / f"{name}.yaml").is_file():
            skipped[name] = "no data config"
            continue
        datamodule = new_datamodule(compose_config([f"data={name}",
                                                    f"paths.output_dir={workdir}"]), workdir)
        if datamodule.root.is_dir() and any(datamodule.root.iterdir()):
            found.append(name)
        else:
            skipped[name] = f"not on this machine ({datamodule.root})"
    return found, skipped


# ---------------------------------------------------------------------------- training
def build_task(cfg: DictConfig, datamodule, seed: int = SEED) -> L.LightningModule:
    """The config's LightningModule, built as ``run`` builds it, freshly seeded."""
    L.seed_everything(seed, verbose=False)
    return build_model(cfg, datamodule)


def plain_loop(task: L.LightningModule, loader, settings: Settings, _workdir: Path) -> dict:
    """The task's own ``training_step`` driven by hand: fetch a batch, ``training_step``
    (forward, loss, train-metric update; its ``self.log`` calls return at once without a
    Trainer), zero_grad, backward, the optimiser step; the task's end-of-epoch hook at the end
    (train metrics compute and reset). What Lightning adds is the difference. Times fetches;
    stops after the timed batch that reaches ``settings.min_run_s``."""
    optimizer = task.configure_optimizers()  # the task's own optimiser factory
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    task.train()
    batches = iter(loader)
    fetch_s = 0.0
    timed_batches = samples = 0
    step = 0
    while True:
        if step == settings.warmup_steps:
            fetch_s = 0.0
            start = time.perf_counter()
        fetched = time.perf_counter()
        batch = next(batches, None)
        if batch is None:  # a small training split: a new epoch, as Lightning's max_steps does
            batches = iter(loader)
            batch = next(batches)
        fetch_s += time.perf_counter() - fetched
        loss = task.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= settings.warmup_steps:
            timed_batches += 1
            samples += len(batch["target"])
            if time.perf_counter() - start >= settings.min_run_s:
                break
        step += 1
    task.on_train_epoch_end()
    seconds = time.perf_counter() - start
    return {"batches": timed_batches, "samples": samples, "seconds": seconds, "fetch_s": fetch_s}


class StepTimer(L.Callback):
    """Clock from the start of the first batch after ``warmup`` batches to the end of fit;
    stops the fit once the timed batches have taken at least ``min_run_s``."""

    def __init__(self, warmup: int, min_run_s: float) -> None:
        self.warmup, self.min_run_s = warmup, min_run_s
        self.batches = self.samples = 0
        self.start = self.seconds = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.batches == self.warmup:
            self.start = time.perf_counter()
        if self.batches >= self.warmup:
            self.samples += len(batch["target"])
        self.batches += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.start is not None and time.perf_counter() - self.start >= self.min_run_s:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def lightning_loop(task: L.LightningModule, loader, settings: Settings, workdir: Path) -> dict:
    """``Trainer.fit`` of the task until ``min_run_s`` of timed steps, without validation or
    logging (epochs roll over as the plain loop's do)."""
    timer = StepTimer(settings.warmup_steps, settings.min_run_s)
    trainer = L.Trainer(max_steps=-1, max_epochs=10_000,
                        limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, accelerator="cpu", devices=1, callbacks=[timer],
                        default_root_dir=str(workdir))
    trainer.fit(task, train_dataloaders=loader)
    return {"batches": timer.batches - settings.warmup_steps, "samples": timer.samples,
            "seconds": timer.seconds}


LOOPS = {"plain": plain_loop, "lightning": lightning_loop}


def interleaved_runs(cfg: DictConfig, datamodule, settings: Settings, workdir: Path) -> list[dict]:
    """Every run of both loops, alternating their order from one round to the next."""
    runs = []
    for round_ in range(settings.rounds):
        for name in (LOOPS if round_ % 2 == 0 else reversed(LOOPS)):
            task = build_task(cfg, datamodule)  # seeds, so both loops see the same batches
            result = LOOPS[name](task, datamodule.train_dataloader(), settings, workdir)
            result = {"loop": name, "round": round_, **result,
                      "samples_per_s": result["samples"] / result["seconds"]}
            runs.append({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()})
    return runs


def per_round_ratios(runs: list[dict]) -> list[float]:
    """Lightning over plain samples/s within each round (its two runs are neighbours in time)."""
    plain = [r for r in runs if r["loop"] == "plain"]
    lightning = [r for r in runs if r["loop"] == "lightning"]
    return [l["samples_per_s"] / p["samples_per_s"] for p, l in zip(plain, lightning)]


def bench_training(runs: list[dict], batch_size: int, settings: Settings, train_items: int):
    """Throughput figures of the interleaved runs; returns (figures, targets, notes)."""
    plain = [r for r in runs if r["loop"] == "plain"]
    lightning = [r for r in runs if r["loop"] == "lightning"]
    plain_rate = median([r["samples_per_s"] for r in plain])
    lightning_rate = median([r["samples_per_s"] for r in lightning])
    per_round = per_round_ratios(runs)
    figures = {
        "batch_size": batch_size, "warmup_steps": settings.warmup_steps,
        "min_run_s": settings.min_run_s, "rounds": settings.rounds,
        "order": [r["loop"] for r in runs], "runs": runs,
        "plain_samples_per_s_median": round(plain_rate, 2),
        "lightning_samples_per_s_median": round(lightning_rate, 2),
        "ratio_lightning_over_plain": round(lightning_rate / plain_rate, 4),
        "ratio_per_round": rounded(per_round),
        "ratio_per_round_median": round(median(per_round), 4),
        "ratio_per_round_iqr": rounded(quartiles(per_round)),
        "ratio_verdict": verdict(per_round, 0.95),
        # one training epoch of the default run at the measured rate (validation not included)
        "train_items": train_items,
        "epoch_train_seconds_at_lightning_rate": round(train_items / lightning_rate, 2),
    }
    targets = [Target("ratio_lightning_over_plain", ">=", 0.95)]
    notes = {
        "model": "default config: model=beat_cnn with the RR branch of the shared fusion "
                 "(built as run builds it), loss=ce, optimizer=adam; fresh and seeded "
                 f"(seed {SEED}) for every run",
        "data": "the default config's datamodule (mitdb_interpatient: MLII, record template, "
                "four RR features) and its train_dataloader() (shuffled)",
        "plain": "the task's training_step (forward, loss, train metrics update) driven by "
                 "hand, then zero_grad, backward, Adam step; on_train_epoch_end (train metrics "
                 "compute+reset) at the end; timed from the fetch of the first timed batch to the end",
        "lightning": "Trainer.fit of the real ClassificationTask (its training_step logs "
                     "train/loss and the train metrics), logger/checkpointing/progress bar/"
                     "validation off; timed from on_train_batch_start of the first timed batch "
                     "to on_train_end (Lightning prefetches one batch ahead, so one fetch, "
                     "about 2 ms, falls outside its window)",
        "warmup": "the first warmup_steps batches of each run are excluded from the count",
        "length": "a run stops after the timed batch that reaches min_run_s; 'batches' "
                  "is what each run timed",
        "spread": "ratio_per_round: Lightning over plain within each round (the two runs of a "
                  "round are neighbours in time); ratio_per_round_iqr: their interquartile "
                  "range; ratio_verdict: whether that range lies above, below or across the "
                  "0.95 target",
    }
    return figures, targets, notes


def bench_dataloader_share(runs: list[dict]):
    """Share of the plain loop's time spent fetching batches; returns (figures, targets, notes)."""
    plain = [r for r in runs if r["loop"] == "plain"]
    shares = [100 * r["fetch_s"] / r["seconds"] for r in plain]
    figures = {"fetch_share_pct_median": round(median(shares), 3),
               "fetch_share_pct_runs": rounded(shares, 3),
               "fetch_ms_per_batch_median": round(median(
                   [1000 * r["fetch_s"] / r["batches"] for r in plain]), 3)}
    targets = [Target("fetch_share_pct_median", "<", 5.0, informative=True)]
    notes = {"measure": "time in next(train loader iterator) over the plain loop's timed time"}
    return figures, targets, notes


# Every model family, each on data it fits; the default run's model above is the headline figure.
FAMILIES = {
    # an LSTM with two leads and RR features (the fusion branch of models/fusion.py)
    "lstm_rr_two_leads": ["model=lstm", "data.leads=all", "data.rr_features=[pre,post,local,average]"],
    "gru": ["model=gru"],
    "bilstm_late_fusion": ["model=kim2020"],
    "cnn_1d": ["model=binary_cnn"],
    "cnn_gru_multilabel": ["data=ptbxl", "model=ptbxl_cnngru", "loss=bce"],
    "lstm_autoencoder": ["data=ecg5000", "data.label_scheme=anomaly", "model=lstm_ae", "loss=l1"],
    "spectrogram_cnn_2d": ["data=mitdb_spectrogram", "data.max_seconds=180",
                           "model=spectrogram_mobilenetv3", "model.net.image_size=32"],
}
BINDING_FAMILIES = ("lstm_rr_two_leads",)  # a target of its own issue, not informative
FAMILY_SETTINGS = Settings(warmup_steps=2, min_run_s=5.0, rounds=6)


def bench_families(workdir: Path, databases: list[str], settings: Settings):
    """Lightning against the plain loop for every model family of ``FAMILIES`` whose data is
    here (the headline figure's method); returns (figures, targets, notes)."""
    figures, targets, skipped = {}, [], {}
    for family, overrides in FAMILIES.items():
        data = next((o.split("=")[1] for o in overrides if o.startswith("data=")), "mitdb")
        base = "mitdb" if data.startswith("mitdb") else data
        if base not in databases:
            skipped[family] = f"{base} is not on this machine"
            continue
        cfg = compose_config([*overrides, f"paths.output_dir={workdir}"])
        datamodule = new_datamodule(cfg, workdir / f"family-{family}")
        prepare_and_setup(datamodule)
        runs = interleaved_runs(cfg, datamodule, settings, workdir)
        plain = median([r["samples_per_s"] for r in runs if r["loop"] == "plain"])
        lightning = median([r["samples_per_s"] for r in runs if r["loop"] == "lightning"])
        per_round = per_round_ratios(runs)
        figures[f"{family}_ratio"] = round(lightning / plain, 4)
        figures[f"{family}_ratio_per_round_iqr"] = rounded(quartiles(per_round))
        figures[f"{family}_ratio_verdict"] = verdict(per_round, 0.95)
        figures[f"{family}_plain_samples_per_s"] = round(plain, 2)
        figures[f"{family}_lightning_samples_per_s"] = round(lightning, 2)
        figures[f"{family}_fetch_share_pct"] = round(median(
            [100 * r["fetch_s"] / r["seconds"] for r in runs if r["loop"] == "plain"]), 3)
        figures[f"{family}_batches_per_run"] = [r["batches"] for r in runs]
        targets.append(Target(f"{family}_ratio", ">=", 0.95,
                              informative=family not in BINDING_FAMILIES))
    notes = {"families": {family: " ".join(overrides) for family, overrides in FAMILIES.items()},
             "skipped": skipped,
             "method": f"as train_throughput (same plain loop, interleaved runs) with "
                       f"{settings.rounds} rounds of runs of at least {settings.min_run_s:g} s; "
                       "each family's per-round ratio interquartile range and verdict beside "
                       "its median ratio; the targets other than the binding family's are "
                       "informative; fetch share from the plain runs"}
    return figures, targets, notes


# ---------------------------------------------------------------------------- augmentation
AUGMENT_CALLS = 200


def bench_augment(datamodule, runs: list[dict]):
    """Time of ``augment=default`` on one training batch against the plain loop's time per
    step of the default run; returns (figures, targets, notes)."""
    from ecg_lightning.data.augment import Augment

    cfg = compose_config(["augment=default"])
    augment = instantiate(cfg.data.augment)
    assert isinstance(augment, Augment)
    signal = next(iter(datamodule.train_dataloader()))["signal"]
    generator = torch.Generator().manual_seed(SEED)
    augment(signal, datamodule.sampling_rate_hz, generator)  # untimed first call
    start = time.perf_counter()
    for _ in range(AUGMENT_CALLS):
        augment(signal, datamodule.sampling_rate_hz, generator)
    augment_ms = 1000 * (time.perf_counter() - start) / AUGMENT_CALLS
    plain = [r for r in runs if r["loop"] == "plain"]
    step_ms = median([1000 * r["seconds"] / r["batches"] for r in plain])
    figures = {"augment_ms_per_batch": round(augment_ms, 3), "step_ms_per_batch": round(step_ms, 3),
               "augment_share_pct": round(100 * augment_ms / (step_ms + augment_ms), 3),
               "batch_shape": list(signal.shape)}
    notes = {"augment": "augment=default (noise, wander, scale, shift, each with p=0.5) on one "
                        f"training batch of the default config, mean of {AUGMENT_CALLS} calls",
             "step": "the default run's plain-loop time per training step (train_throughput)",
             "share": "augment / (step + augment): what augmentation adds to a step"}
    return figures, [Target("augment_share_pct", "<", 5.0)], notes


def bench_prepare_rr(workdir: Path, settings: Settings, one_lead: dict):
    """mitdb with both leads and RR features against the default (one lead, no RR features)."""
    cfg = compose_config(["data=mitdb", "data.leads=all",
                          "data.rr_features=[pre,post,local,average]", f"paths.output_dir={workdir}"])
    (workdir / "mitdb-rr").mkdir()
    figures, _, notes = bench_prepare(cfg, workdir / "mitdb-rr", settings, [])
    figures["cold_ratio_over_one_lead"] = round(figures["cold_median_s"]
                                                / one_lead["cold_median_s"], 3)
    figures["warm_ratio_over_one_lead"] = round(figures["warm_median_s"]
                                                / one_lead["warm_median_s"], 3)
    notes["config"] = ("data.leads=all data.rr_features=[pre,post,local,average] against "
                       "prepare_mitdb (lead MLII, no RR features), same settings, same run")
    return figures, [], notes


# ---------------------------------------------------------------------------- predict
PREDICT_RECORD = "100"  # 30 min 5 s at 360 Hz, 2,273 beats


DEFAULT_RUN_LIMIT_S = 600.0  # the default run must finish within 10 minutes on 2 CPU cores


def bench_default_run(workdir: Path, settings: Settings):
    """The default run end to end, as a user types it (see the module docstring); returns
    (figures, targets, notes)."""
    from mlflow.tracking import MlflowClient

    root = workdir / "default-run"
    command = [sys.executable, "-m", "ecg_lightning.run", f"paths.root_dir={root}",
               "callbacks.progress_bar.refresh_rate=0", *settings.default_run_overrides]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "ECG_CACHE_DIR")}
    log = workdir / "default-run.log"
    started = time.perf_counter()
    with log.open("w") as output:
        child = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own resource usage
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: the default run failed ({' '.join(command)}):\n"
                 f"{log.read_text()[-3000:]}")
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/outputs/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("ecg-lightning").experiment_id])[0]
    metrics = run.data.metrics
    figures = {"wall_s": round(wall, 1),
               "epochs_run": metrics.get("epochs_run"), "best_epoch": metrics.get("best_epoch"),
               "seconds_per_epoch": metrics.get("seconds_per_epoch"),
               "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}
    notes = {"command": " ".join(["python -m ecg_lightning.run", *command[4:]]),
             "measure": "wall time of the subprocess from start to exit (imports, cold cache, "
                        "training, test, plots, MLflow included); seconds_per_epoch: the run's "
                        "own median time between two validations; peak RSS: the process's "
                        "ru_maxrss from os.wait4",
             "mlflow_run_id": run.info.run_id}
    return figures, [Target("wall_s", "<", DEFAULT_RUN_LIMIT_S)], notes


def trained_checkpoint(workdir: Path, cache_dir: Path) -> Path:
    """A default-config model (model=beat_cnn, mitdb_interpatient) trained for 20 batches: what
    predict loads.

    Speed does not depend on how well it learned; the checkpoint is a real one from ``run``."""
    from ecg_lightning.run import train  # late: run imports Hydra's main machinery

    output_dir = workdir / "predict-model"
    train(compose_config([f"paths.output_dir={output_dir}", f"data.cache_dir={cache_dir}",
                          "logger=none", "test=false", "debug=limit", "trainer.max_epochs=1",
                          "+trainer.enable_model_summary=false",
                          "trainer.limit_train_batches=20", "trainer.limit_val_batches=5",
                          "callbacks.progress_bar.refresh_rate=0"]))
    return output_dir / "checkpoints" / "last.ckpt"


def bench_predict(workdir: Path, cache_dir: Path, settings: Settings):
    """``predict`` on a full 30-minute MIT-BIH record, in process (start-up and imports
    excluded, one untimed call first); returns (figures, targets, notes)."""
    checkpoint = trained_checkpoint(workdir, cache_dir)
    source = Path(os.environ.get("ECG_DATA_DIR", "data")) / "mitdb" / PREDICT_RECORD
    # The same record without its .atr: beats from wfdb's GQRS detector.
    bare = workdir / "no-annotations" / PREDICT_RECORD
    bare.parent.mkdir()
    for ext in ("hea", "dat"):
        shutil.copyfile(source.with_suffix(f".{ext}"), bare.with_suffix(f".{ext}"))
    figures = {}
    for name, record in (("annotations", source), ("detector", bare)):
        out = workdir / f"predictions-{name}"
        beats = len(predict(str(checkpoint), str(record), out=str(out))["labels"])  # untimed
        runs = [timed(predict, str(checkpoint), str(record), str(out))
                for _ in range(settings.warm_repeats)]
        figures[f"{name}_median_s"] = round(median(runs), 4)
        figures[f"{name}_runs_s"] = rounded(runs)
        figures[f"{name}_beats"] = beats
    targets = [Target("annotations_median_s", "<", 1.0),
               Target("detector_median_s", "<", 1.0, informative=True)]
    notes = {"record": f"mitdb/{PREDICT_RECORD} (30 min 5 s, 360 Hz, MLII)",
             "model": "default config (model=beat_cnn, MLII windows minus the record template, RR "
                      "features), trained 20 batches by run.train",
             "measure": "predict(): load the checkpoint, read and filter the record, cut every "
                        "beat window, classify, write the .pred annotations, CSV and PNG; "
                        "process start-up and imports excluded, one untimed call first",
             "detector": "the record copied without its .atr, so beats come from wfdb's GQRS "
                         "(pure Python) detector"}
    return figures, targets, notes


# ---------------------------------------------------------------------------- summary
def bench_memory(after_prepare: dict):
    """Peak RSS after preparation and after everything; returns (figures, targets, notes)."""
    figures = {"peak_rss_mib_after_prepare": after_prepare["peak_rss_mib_after"],
               "peak_rss_mib_after_all": peak_rss_mib(),
               "peak_rss_workers_mib": after_prepare["peak_rss_workers_mib"]}
    notes = {"measure": "resource.getrusage(RUSAGE_SELF).ru_maxrss of this process; workers: "
                        "RUSAGE_CHILDREN after preparation (the largest forked preprocessing "
                        "worker, pages shared with this process included)"}
    return figures, [], notes


def write_summary(out_dir: Path, reports: list[dict], settings: Settings, seconds: float,
                  load_at_start: tuple[float, float, float], skipped: dict[str, str]) -> dict:
    """``summary.json``: every check of every report, the settings and the total time.

    The load average at start tells whether other processes shared the CPUs (noisy figures).
    """
    summary = {"benchmark": "summary", "date": now_iso(),
               "machine": machine_facts(), "settings": asdict(settings),
               "load_average_at_start_1_5_15min": [round(x, 2) for x in load_at_start],
               "total_seconds": round(seconds, 1),
               "peak_rss_mib": peak_rss_mib(),
               "checks": {r["benchmark"]: r["checks"] for r in reports},
               "all_met": all(r["all_met"] for r in reports),
               "files": [f"{r['benchmark']}.json" for r in reports],
               "databases_skipped": skipped}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


TABLE_FIGURES = {  # report (prepare_<db>: "prepare") -> headline figures and their units
    "default_run": {"wall_s": "s", "seconds_per_epoch": "s", "epochs_run": "",
                    "peak_rss_mib": "MiB"},
    "prepare": {"cold_median_s": "s", "warm_median_s": "s"},
    "train_throughput": {"plain_samples_per_s_median": "samples/s",
                         "lightning_samples_per_s_median": "samples/s",
                         "ratio_lightning_over_plain": "", "ratio_per_round_median": ""},
    "dataloader_share": {"fetch_share_pct_median": "%"},
    "augment_share": {"augment_share_pct": "%"},
    "predict": {"annotations_median_s": "s", "detector_median_s": "s"},
    "memory": {"peak_rss_mib_after_prepare": "MiB", "peak_rss_mib_after_all": "MiB"},
}


def format_table(reports: list[dict], summary: dict) -> str:
    """One line per headline figure: value, unit, target and whether it is met."""
    checks = {(r["benchmark"], c["figure"]): c for r in reports for c in r["checks"]}
    figures = {(r["benchmark"], name): value
               for r in reports for name, value in r["figures"].items()}
    row = "{:<17} {:<42} {:>10} {:<10} {:<8} {}"
    lines = [row.format("benchmark", "figure", "value", "unit", "target", "met"), "-" * 96]
    def headline(report: dict) -> dict[str, str]:
        if report["benchmark"].startswith("prepare_"):
            return TABLE_FIGURES["prepare"]
        if report["benchmark"] == "train_throughput_families":
            return {name: "" for name in report["figures"] if name.endswith("_ratio")}
        return TABLE_FIGURES[report["benchmark"]]

    shown = [((r["benchmark"], name), unit) for r in reports for name, unit in headline(r).items()]
    for key, unit in shown:
        check = checks.get(key)
        target = met = ""
        if check is not None:
            target = check["target"]
            met = ("yes" if check["met"] else "NO") + (" (info)" if check["informative"] else "")
        lines.append(row.format(*key, f"{figures[key]:g}", unit, target, met).rstrip())
    for report in reports:  # whether each ratio's spread allows a verdict
        for name, value in report["figures"].items():
            if name.endswith("verdict"):
                lines.append(f"{report['benchmark']} {name}: {value}")
    machine = summary["machine"]
    if summary["databases_skipped"]:
        lines.append("not benchmarked: " + "; ".join(
            f"{name}: {why}" for name, why in summary["databases_skipped"].items()))
    lines.append(f"{machine['cpu_count']} CPUs, torch {machine['torch']} with "
                 f"{machine['torch_num_threads']} threads, load average at start "
                 f"{summary['load_average_at_start_1_5_15min']}; "
                 f"{summary['total_seconds']} s in all; all targets met: {summary['all_met']}")
    return "\n".join(lines)


def quiet_lightning() -> None:
    """Silence Lightning's banner and the warnings a deliberately bare Trainer provokes."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for message in (".*does not have many workers.*", ".*val_dataloader.*", ".*self.log.*",
                    ".*validation_step.*", ".*Skipping val loop.*", ".*LeafSpec.*deprecated.*"):
        warnings.filterwarnings("ignore", message=message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ecg_lightning.bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="outputs/bench", help="folder of the JSON reports")
    parser.add_argument("--quick", action="store_true",
                        help=f"fewer repeats and steps (a smoke run): {QUICK}")
    parser.add_argument("--only", choices=["default_run", "train_throughput"],
                        help="run this benchmark alone (the others share prepared data)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides of train_throughput's model and data "
                             "(e.g. model.net.width=32)")
    args = parser.parse_args(argv)
    if args.overrides and args.only == "default_run":
        parser.error(f"--only default_run runs the default command as typed: the overrides "
                     f"{' '.join(args.overrides)} apply to train_throughput only")
    return args


def bench_throughput(out_dir: Path, workdir: Path, settings: Settings, overrides: list[str]):
    """The default config's Lightning/plain throughput (``overrides`` change it, e.g.
    ``model.net.width=32``); returns (its report, the datamodule, the interleaved runs)."""
    # Its EMA of the weights (model.ema_decay) is left out of the throughput comparison: a
    # recipe the plain loop does not run, not Lightning's overhead.
    cfg = compose_config([f"paths.output_dir={workdir}", "model.ema_decay=null", *overrides])
    (workdir / "default").mkdir()
    datamodule = new_datamodule(cfg, workdir / "default")  # its data: RR features and all
    prepare_and_setup(datamodule)
    runs = interleaved_runs(cfg, datamodule, settings, workdir)
    figures, targets, notes = bench_training(runs, datamodule.batch_size, settings,
                                             len(datamodule.dataset("train")))
    figures["model_parameters"] = sum(p.numel() for p in build_task(cfg, datamodule).parameters())
    notes["overrides"] = overrides
    return write_report(out_dir, "train_throughput", figures, targets, notes), datamodule, runs


def bench_in_process(out_dir: Path, workdir: Path, databases: list[str], settings: Settings,
                     quick: bool, overrides: list[str]) -> list[dict]:
    """Every benchmark but the default run: preparation of each database, training throughput,
    loader and augmentation shares, two leads + RR, the model families, predict and memory;
    returns their reports."""
    reports = []
    for name in databases:
        cfg = compose_config([f"data={name}", f"paths.output_dir={workdir}"])
        (workdir / name).mkdir()
        reports.append(write_report(out_dir, f"prepare_{name}", *bench_prepare(
            cfg, workdir / name, settings, PREPARE_TARGETS.get(name, []))))
    prepare_mitdb = reports[databases.index("mitdb")]["figures"]
    throughput, datamodule, runs = bench_throughput(out_dir, workdir, settings, overrides)
    return [
        *reports,
        throughput,
        write_report(out_dir, "dataloader_share", *bench_dataloader_share(runs)),
        write_report(out_dir, "augment_share", *bench_augment(datamodule, runs)),
        write_report(out_dir, "prepare_mitdb_rr_two_leads",
                     *bench_prepare_rr(workdir, settings, prepare_mitdb)),
        write_report(out_dir, "train_throughput_families",
                     *bench_families(workdir, databases, QUICK if quick else FAMILY_SETTINGS)),
        write_report(out_dir, "predict",
                     *bench_predict(workdir, Path(datamodule.cache_dir), settings)),
        write_report(out_dir, "memory", *bench_memory(prepare_mitdb)),
    ]


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    settings = QUICK if args.quick else Settings()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    quiet_lightning()
    started, load_at_start = time.perf_counter(), os.getloadavg()
    reports = []
    with tempfile.TemporaryDirectory(prefix="ecg-bench-") as tmp:
        workdir = Path(tmp)
        databases, skipped = available_databases(workdir)
        if "mitdb" not in databases:
            sys.exit(f"bench: the MIT-BIH database is needed ({skipped.get('mitdb')}); "
                     "set ECG_DATA_DIR")
        if args.only is None:
            reports.extend(bench_in_process(out_dir, workdir, databases, settings, args.quick,
                                            args.overrides))
        if args.only == "train_throughput":
            reports.append(bench_throughput(out_dir, workdir, settings, args.overrides)[0])
        else:
            reports.append(write_report(out_dir, "default_run",
                                        *bench_default_run(workdir, settings)))
    summary = write_summary(out_dir, reports, settings, time.perf_counter() - started,
                            load_at_start, skipped)
    print(format_table(reports, summary))
    print(f"reports in {out_dir}/: {', '.join(summary['files'])}, summary.json")
    return summary


if __name__ == "__main__":
    main()
