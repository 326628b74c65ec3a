"""Compare MLflow runs: a table with mean ± std over seeds and folds, one row per group.

    python -m ecg_lightning.report                                   # experiment ecg-lightning
    python -m ecg_lightning.report experiment_name=my-sweep group_by=model,loss
    python -m ecg_lightning.report metrics=test/accuracy,test/sensitivity/S out=paper/tables
    python -m ecg_lightning.report "filter=tags.preset = 'none'"     # an MLflow search filter
    python -m ecg_lightning.report experiments=all latest=true export=outputs/reproductions
                                             # every counted run's record, committed
    python -m ecg_lightning.report records=outputs/reproductions latest=true \
        group_by=preset,data,budget,protocol,command out=outputs/reproductions
                                             # the README's paper table, from the records

What it reads: the runs of one MLflow experiment (``experiment_name``, default the run
config's ``ecg-lightning``), or of several (``experiments=a,b,c``; ``experiments=all``: every
experiment of the store), in the store that ``run`` writes to: ``MLFLOW_TRACKING_URI`` when
set, else ``sqlite:///<outputs>/mlflow.db``. Both come from composing the run config, so the
run's overrides apply here too (``paths.root_dir=...``, ``logger.mlflow.tracking_uri=...``).

How it groups: by the run tags in ``group_by`` (default ``data,model,loss``; any tag that
``tracking.run_tags`` sets works, e.g. ``seed``, ``preset``, ``label_scheme``) and always by
the split paradigm (tag ``split``), so an intra-patient figure is never averaged with an
inter-patient one. ``command`` also works in ``group_by``: the run's command line
(``python -m ecg_lightning.run`` and its overrides, less ``seed``, ``data.fold`` and display
options), so runs of one exact setting form one row. ``latest=true`` keeps only the newest
run per group, seed and fold: a re-run of a setting replaces the older one; and only the runs
of the group's newest ``recipe`` (the fingerprint of what a run computes,
``tracking.recipe_fingerprint``): seeds run before the preset changed are listed in the second
table as "older recipe", not averaged with the new ones (a run from before the tag existed
reads ``-``, one recipe of its own). ``group_by=...,recipe`` shows every recipe as a row. A group's cell is the mean ± the *sample* standard deviation (ddof=1)
over its FINISHED training runs (one per seed x fold); a group of one run shows its value
alone. Not averaged, but counted per group in a second table so that none disappears
silently: runs in any other state (FAILED, RUNNING, KILLED), re-tests of a checkpoint by
``python -m ecg_lightning.evaluate`` (tag ``evaluates_checkpoint``), which would count a
trained model twice, and runs that logged none of the metrics (``trainer.fast_dev_run``).

What it writes (and prints): ``<out>/<experiment>.md`` (both tables) and
``<out>/<experiment>.csv`` (``name=`` for another file name; the comparison: group tags, ``split``, ``n``, ``seeds``,
``folds``, and per metric ``<metric> mean``, ``<metric> std`` and ``<metric> count``, the
number of runs that logged it, ``duration`` (the mean MLflow run time: training and testing,
not the process start-up) and ``reference`` (the published figure that the group's preset
names in its ``reference`` key, when it has one) and ``<out>/<experiment>_not_counted.csv`` (the second
table, possibly empty). ``out`` defaults to ``<outputs>/reports``. Metrics: those of
test/accuracy, test/f1_macro, test/f1_weighted, test/auroc_macro, test/auroc (autoencoders)
that the runs logged, or
``metrics=a,b,c``.

Run records (``export=<folder>``, ``records=<folder>``): the outputs folder and its MLflow
store do not travel from one machine to the next, so every counted run (FINISHED training
runs with test metrics, the newest per setting with ``latest=true``) can be exported as a
small JSON record (grouped by ``EXPORT_GROUP_BY`` unless ``group_by`` says otherwise, so that
``latest=true`` keeps the newest run of every exact setting), ``<folder>/<experiment>/run-<run id>.json``: status, start, duration, the
tags (command, preset, ``budget``, ``protocol``, split, seed...), the parameters that define
the setting (``data/``, ``model/``, ``loss/``, ``optimizer/``, ``trainer/max_epochs``) and the
final test metrics with ``epochs_run`` and ``best_epoch``; no checkpoint, no artifact.
``records=<folder>`` reads every record under the folder instead of a store, so runs made on
different days and machines add up to one table. A run from before the ``budget`` and
``protocol`` tags existed gets them on export, from its ``overrides`` and preset
(``tracking.preset_tags``).

The paper table: ``group_by=preset,data,budget,protocol,command``. A row whose ``protocol``
is not ``preset`` (the run overrode the split, label scheme, records, database or network:
``tracking.PROTOCOL_KEYS``) shows no published figure: the preset's reference no longer
describes it.

Arguments are ``key=value`` words: ``group_by``, ``metrics``, ``out``, ``filter``,
``experiments``, ``latest``, ``export``, ``records`` and ``name`` are this command's own; every other
word is a Hydra override of the run config.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from hydra.errors import ConfigCompositionException
from mlflow.tracking import MlflowClient

from ecg_lightning.summary import compose_config

DEFAULT_GROUP_BY = ("data", "model", "loss")
EXPORT_GROUP_BY = ("preset", "data", "model", "loss", "budget", "protocol", "command")
# test/auroc: the anomaly AUROC of the reconstruction task (autoencoders)
HEADLINE_METRICS = ("test/accuracy", "test/f1_macro", "test/f1_weighted", "test/auroc_macro",
                    "test/auroc")
OWN_KEYS = ("group_by", "metrics", "out", "filter", "experiments", "latest", "export", "records",
            "name")
# The parameters a run record keeps (MLflow's flattened names): what defines the setting.
RECORD_PARAMS = ("data/", "model/", "loss/", "optimizer/", "scheduler/", "trainer/max_epochs",
                 "callbacks/early_stopping/patience", "seed", "augment")
RECORD_METRICS = ("test/", "epochs_run", "best_epoch", "seconds_per_epoch")
MISSING = "-"  # shown for a tag a run does not carry (e.g. ``fold`` outside k-fold splits)
EVALUATION_TAG = "evaluates_checkpoint"  # set by ecg_lightning.evaluate on its runs
# Overrides that do not change what a run computes, left out of its ``command``.
NOT_IN_COMMAND = ("seed", "data.fold", "experiment_name", "run_name",
                  "callbacks.progress_bar.refresh_rate")


class ReportError(Exception):
    """A problem the user can fix (unknown experiment, no runs, unknown tag or metric)."""


@dataclass
class Report:
    table: pd.DataFrame        # one row per group: the comparison
    not_counted: pd.DataFrame  # one row per group and reason (state, or evaluate re-test)
    markdown: str
    files: list[Path] = field(default_factory=list)


def parse_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split ``key=value`` words into this command's options and Hydra overrides."""
    options, overrides = {}, []
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep:
            raise ReportError(f"expected key=value, got {word!r}")
        if key in OWN_KEYS:
            options[key] = value
        else:
            overrides.append(word)
    return options, overrides


def comma_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def open_store(tracking_uri: str) -> MlflowClient:
    """A client on the store; a sqlite file that is not there is an error, not a new store."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not path.is_file():  # MLflow would quietly create an empty store here
            raise ReportError(f"no MLflow store at {path.resolve()} ({tracking_uri}); run from "
                              "the project root, or pass paths.root_dir=... or set "
                              "MLFLOW_TRACKING_URI")
    return MlflowClient(tracking_uri=tracking_uri)


def load_runs(client: MlflowClient, experiment_names: list[str],
              filter_string: str = "") -> pd.DataFrame:
    """One row per (not deleted) run: ``run_id``, ``status``, ``start``, ``duration`` (s),
    ``tags.<name>`` and ``metrics.<name>`` (last value), as ``mlflow.search_runs`` gives them.
    ``experiment_names`` ``["all"]`` reads every experiment of the store."""
    experiments = {e.name: e for e in client.search_experiments()}
    names = sorted(experiments) if experiment_names == ["all"] else experiment_names
    unknown = [name for name in names if name not in experiments]
    if unknown:
        raise ReportError(f"no MLflow experiment named {', '.join(map(repr, unknown))} in "
                          f"{client.tracking_uri}; experiments there: "
                          f"{', '.join(sorted(experiments))}")
    experiment_name = ", ".join(names)
    runs, token = [], None
    while True:  # search_runs returns pages of at most max_results
        page = client.search_runs([experiments[name].experiment_id for name in names],
                                  filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    if not runs:
        where = f" matching {filter_string!r}" if filter_string else ""
        raise ReportError(f"experiment {experiment_name!r} in {client.tracking_uri} has no "
                          f"runs{where}")
    experiment_of = {e.experiment_id: e.name for e in experiments.values()}
    return pd.DataFrame([{"run_id": r.info.run_id, "status": r.info.status,
                          "experiment": experiment_of[r.info.experiment_id],
                          "start": r.info.start_time,
                          "duration": ((r.info.end_time - r.info.start_time) / 1000
                                       if r.info.end_time else float("nan")),
                          **{f"tags.{k}": v for k, v in r.data.tags.items()},
                          **{f"metrics.{k}": v for k, v in r.data.metrics.items()},
                          **{f"params.{k}": v for k, v in r.data.params.items()
                             if k.startswith(RECORD_PARAMS)}}
                         for r in runs])


def load_records(folder: Path) -> pd.DataFrame:
    """The run records under ``folder`` (``export``), as ``load_runs`` gives runs."""
    files = sorted(Path(folder).rglob("run-*.json"))
    if not files:
        raise ReportError(f"no run record (run-*.json) under {Path(folder).resolve()}; write "
                          "them with `python -m ecg_lightning.report export=<folder>`")
    rows = []
    for path in files:
        try:
            record = json.loads(path.read_text())
            rows.append({"run_id": record["run_id"], "status": record["status"],
                         "experiment": record["experiment"], "start": record["start"],
                         "duration": record["duration"],
                         **{f"{kind}.{k}": v for kind in ("tags", "metrics", "params")
                            for k, v in record[kind].items()}})
        except (ValueError, KeyError) as error:
            raise ReportError(f"{path} is not a run record ({type(error).__name__}: {error}); "
                              "records come from `report export=<folder>`") from error
    return pd.DataFrame(rows)


def with_preset_tags(runs: pd.DataFrame) -> pd.DataFrame:
    """``budget`` and ``protocol`` for runs from before they were tagged (from ``overrides``)."""
    from ecg_lightning.tracking import preset_tags

    runs = runs.copy()
    for column in ("tags.budget", "tags.protocol"):
        if column not in runs:
            runs[column] = None
    known = {}  # (overrides, preset) -> tags: composing a config takes a fraction of a second
    for index, row in runs[runs["tags.budget"].isna()].iterrows():
        overrides, preset = row.get("tags.overrides"), row.get("tags.preset")
        if not isinstance(overrides, str) or not isinstance(preset, str):
            continue
        if (overrides, preset) not in known:
            try:
                known[overrides, preset] = preset_tags(compose_config(overrides.split()), preset)
            except ConfigCompositionException:  # a preset or key renamed since the run
                known[overrides, preset] = None
        tags = known[overrides, preset]
        if tags is not None:
            runs.loc[index, ["tags.budget", "tags.protocol"]] = [tags["budget"], tags["protocol"]]
    return runs


def row_part(row: pd.Series, kind: str, keep: tuple[str, ...] | None = None) -> dict:
    """``{name: value}`` of a run row's ``tags.``, ``params.`` or ``metrics.`` columns that it
    has (MLflow's own ``mlflow.*`` tags left out; ``keep``: only names starting so)."""
    prefix = f"{kind}."
    return {column[len(prefix):]: row[column] for column in row.index
            if column.startswith(prefix) and not column.startswith("tags.mlflow.")
            and pd.notna(row[column])
            and (keep is None or column[len(prefix):].startswith(keep))}


def export_records(runs: pd.DataFrame, counted: list[str], folder: Path,
                   client: MlflowClient) -> list[Path]:
    """One ``run-<id>.json`` per counted run (see the module docstring); returns the files.
    A run from before ``seconds_per_epoch`` was logged gets it from its history here."""
    from ecg_lightning.tracking import seconds_per_epoch

    files = []
    for _, row in runs[runs["run_id"].isin(counted)].iterrows():
        if pd.isna(row.get("metrics.seconds_per_epoch", float("nan"))):
            row["metrics.seconds_per_epoch"] = seconds_per_epoch(client, row["run_id"])
        record = {"run_id": row["run_id"], "experiment": row["experiment"],
                  "status": row["status"], "start": int(row["start"]),
                  "duration": float(row["duration"]), "tags": row_part(row, "tags"),
                  "params": row_part(row, "params"),
                  "metrics": {name: round(float(value), 6) for name, value
                              in row_part(row, "metrics", RECORD_METRICS).items()}}
        experiment = re.sub(r"[^\w.-]+", "_", str(row["experiment"]))
        path = Path(folder) / experiment / f"run-{row['run_id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        files.append(path)
    return files


def group_keys(group_by: list[str]) -> list[str]:
    """The tags to group by: ``group_by`` and always the split paradigm."""
    return [*group_by, *(["split"] if "split" not in group_by else [])]


def command_of(overrides: str) -> str:
    """The command line of a run from its ``overrides`` tag, less seed, fold and display."""
    kept = [word for word in str(overrides).split()
            if word.partition("=")[0].lstrip("+~") not in NOT_IN_COMMAND]
    return " ".join(["python -m ecg_lightning.run", *kept])


def summarize(runs: pd.DataFrame, group_by: list[str], metrics: list[str], latest: bool = False
              ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The comparison table (FINISHED training runs), the other runs counted per group, and
    the ids of the runs the table counts (what ``export`` writes)."""
    keys = group_keys(group_by)
    # Plain tag names as columns; a tag a run lacks reads "-" (groupby would drop NaN keys).
    frame = pd.DataFrame({"run_id": runs["run_id"], "start": runs["start"],
                          "duration": runs["duration"]})
    for key in [k for k in keys if k != "command"] + ["seed", "fold", "recipe"]:
        column = f"tags.{key}"
        frame[key] = runs[column].fillna(MISSING) if column in runs else MISSING
    frame["command"] = [command_of(o) if isinstance(o, str) else MISSING
                        for o in runs.get("tags.overrides", [MISSING] * len(runs))]
    for metric in metrics:
        frame[metric] = runs[f"metrics.{metric}"]
    frame["reason"] = runs["status"]  # why a run is not counted; FINISHED: it is
    if f"tags.{EVALUATION_TAG}" in runs:
        frame.loc[runs[f"tags.{EVALUATION_TAG}"].notna(), "reason"] = "evaluate re-test"
    if metrics:  # e.g. trainer.fast_dev_run: Lightning logs no test metric, nothing to average
        silent = frame[metrics].isna().all(axis=1) & (frame["reason"] == "FINISHED")
        frame.loc[silent, "reason"] = "no test metrics"
    if latest:  # the newest FINISHED run of a group, seed and fold replaces the older ones
        finished = frame[frame["reason"] == "FINISHED"].sort_values("start", ascending=False)
        older = finished.duplicated([*keys, "seed", "fold"], keep="first")
        frame.loc[older[older].index, "reason"] = "superseded by a newer run"
        # ... and a row holds one recipe: that of its newest run (runs of the same command
        # under an older preset version are listed, not averaged with the newer ones)
        finished = frame[frame["reason"] == "FINISHED"].sort_values("start", ascending=False)
        newest = finished.groupby(keys, sort=False)["recipe"].transform("first")
        stale = finished.index[finished["recipe"] != newest]
        frame.loc[stale, "reason"] = "older recipe (the preset changed since)"
    finished = frame[frame["reason"] == "FINISHED"]

    rows = []
    for values, group in finished.groupby(keys, sort=True):
        row = dict(zip(keys, values))
        row["n"] = len(group)
        row["seeds"] = distinct(group["seed"])
        row["folds"] = distinct(group["fold"])
        row["duration"] = group["duration"].mean()
        for metric in metrics:
            column = group[metric].dropna()
            row[f"{metric} mean"] = column.mean()
            row[f"{metric} std"] = column.std(ddof=1)  # NaN for a single run
            row[f"{metric} count"] = len(column)  # < n when some runs did not log it
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*keys, "n", "seeds", "folds", "duration",
                                        *(f"{m} {s}" for m in metrics
                                          for s in ("mean", "std", "count"))])

    others = frame[frame["reason"] != "FINISHED"]
    not_counted = (others.groupby([*keys, "reason"], sort=True)["run_id"]
                   .agg(runs="count", run_ids=lambda ids: " ".join(sorted(ids)))
                   .reset_index())
    return table, not_counted, finished["run_id"].tolist()


def references(presets: pd.Series, overrides: list[str], protocols=None) -> list[str]:
    """The ``reference`` (published figure) of each group's preset config, ``-`` if none, and
    none for a group whose ``protocol`` is not the preset's (``tracking.preset_tags``)."""
    found = {}
    for preset in set(presets) - {MISSING, "none"}:
        try:
            found[preset] = compose_config([*overrides, f"experiment={preset}"]).get("reference")
        except ConfigCompositionException:  # a preset renamed or removed since the run
            found[preset] = None
    protocols = [MISSING] * len(presets) if protocols is None else list(protocols)
    return [found.get(preset) or MISSING if protocol in ("preset", "no preset", MISSING)
            else f"{MISSING} (not the preset's protocol)"
            for preset, protocol in zip(presets, protocols)]


def duration_text(seconds: float) -> str:
    """``4 min 37 s`` (``-`` when unknown)."""
    if pd.isna(seconds):
        return MISSING
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def distinct(column: pd.Series) -> str:
    """``1, 2, 10``: the distinct values of a tag in natural order (numbers as numbers)."""
    def natural(value: str) -> list:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", value)]
    return ", ".join(sorted(set(column) - {MISSING}, key=natural)) or MISSING


def markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def mean_std(mean: float, std: float, count: int, n: int) -> str:
    """``0.6155 ± 0.0123``; the value alone for one run; ``(count/n)`` when runs lack it."""
    if count == 0:
        return MISSING
    text = f"{mean:.4f}" if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"
    return text if count == n else f"{text} ({count}/{n})"


def render(experiment: str, tracking_uri: str, runs: pd.DataFrame, table: pd.DataFrame,
           not_counted: pd.DataFrame, keys: list[str], metrics: list[str]) -> str:
    """The markdown report: a header saying what the cells are, then the two tables."""
    shown = table[[*keys, "n", "seeds", "folds"]].copy()
    if "reference" in table:
        shown["reference"] = table["reference"]
    for metric in metrics:
        shown[metric] = [mean_std(*values) for values in zip(
            table[f"{metric} mean"], table[f"{metric} std"], table[f"{metric} count"], table["n"])]
    shown["duration"] = [duration_text(seconds) for seconds in table["duration"]]
    if "command" in shown:  # the longest cell: last, in code font
        shown["command"] = [f"`{command}`" for command in shown.pop("command")]
    states = runs["status"].value_counts()
    counts = ", ".join(f"{state} {count}" for state, count in states.items())
    lines = [f"# Runs of MLflow experiment `{experiment}`", "",
             f"Tracking URI `{tracking_uri}`: {len(runs)} runs ({counts}).",
             f"Grouped by {', '.join(keys)}. Each cell: mean ± sample standard deviation "
             "(ddof=1) over the group's FINISHED training runs (seeds x folds); a group of one "
             "run shows its value alone; `(k/n)`: only k of the n runs logged that metric. "
             "duration: mean MLflow run time (training and testing, not the start-up). "
             "reference: the published figure the preset names (the authors' own split and "
             "budget, not ours).", ""]
    lines.append(markdown_table(shown) if len(shown) else "No FINISHED training runs.")
    if len(not_counted):
        lines += ["", "## Runs not counted", "", "Runs that did not finish, re-tests of a "
                  "checkpoint by `ecg_lightning.evaluate` (they would count a model twice), runs "
                  "without test metrics (fast_dev_run) and, with `latest=true`, runs replaced by "
                  "a newer run of the same setting.", "", markdown_table(not_counted)]
    return "\n".join(lines) + "\n"


def make_report(argv: list[str]) -> Report:
    """Read the runs, build the tables, write the markdown and CSV files; see the module doc."""
    options, overrides = parse_args(argv)
    try:
        cfg = compose_config(overrides)
    except ConfigCompositionException as error:  # e.g. a misspelt key: say which are ours
        raise ReportError(f"{error} (this command's own keys: {', '.join(OWN_KEYS)}; "
                          "other words are overrides of the run config)") from error
    if "mlflow" not in (cfg.get("logger") or {}):
        raise ReportError("the report reads MLflow runs: leave logger=mlflow in the overrides")
    tracking_uri = str(cfg.logger.mlflow.tracking_uri)
    experiments = comma_list(options.get("experiments")) or [str(cfg.experiment_name)]
    experiment = ", ".join(experiments)
    client = None
    if options.get("records"):  # committed run records instead of a store
        if options.get("filter"):
            raise ReportError("filter= is an MLflow search filter: it reads a store, not "
                              "records=; group or pick the rows by group_by instead")
        runs = load_records(Path(options["records"]))
        tracking_uri = f"records in {options['records']}"
        experiment = "records" if "experiments" not in options else experiment
        if "experiments" in options and experiments != ["all"]:
            runs = runs[runs["experiment"].isin(experiments)]
    else:
        client = open_store(tracking_uri)
        runs = load_runs(client, experiments, options.get("filter", ""))
    runs = with_preset_tags(runs) if "tags.preset" in runs else runs

    tags = sorted(c.removeprefix("tags.") for c in runs.columns
                  if c.startswith("tags.") and not c.startswith("tags.mlflow."))
    logged = sorted(c.removeprefix("metrics.") for c in runs.columns if c.startswith("metrics."))
    # export: one group per exact setting, so that latest=true never drops another setting's run
    group_by = comma_list(options.get("group_by")) or list(
        EXPORT_GROUP_BY if options.get("export") else DEFAULT_GROUP_BY)
    unknown = [key for key in group_by if key not in tags and key != "command"]
    if unknown:
        raise ReportError(f"group_by: no run has the tag(s) {', '.join(unknown)}; "
                          f"tags: {', '.join(tags)}")
    if "metrics" in options:
        metrics = comma_list(options["metrics"])
        unknown = [m for m in metrics if m not in logged]
        if unknown:
            raise ReportError(f"metrics: no run logged {', '.join(unknown)}; test metrics "
                              f"logged: {', '.join(m for m in logged if m.startswith('test/'))}")
    else:
        metrics = [m for m in HEADLINE_METRICS if m in logged]

    latest = options.get("latest", "false").lower()
    if latest not in ("true", "false"):
        raise ReportError(f"latest={options['latest']!r}: expected true or false")
    table, not_counted, counted = summarize(runs, group_by, metrics, latest=latest == "true")
    if "preset" in table:
        table["reference"] = references(table["preset"], overrides,
                                        table["protocol"] if "protocol" in table else None)
    markdown = render(experiment, tracking_uri, runs, table, not_counted,
                      group_keys(group_by), metrics)

    out = Path(options.get("out") or Path(cfg.paths.outputs_dir) / "reports")
    out.mkdir(parents=True, exist_ok=True)
    # the files' name: name=, else the experiment(s), which may hold '/' or spaces
    stem = re.sub(r"[^\w.-]+", "_", options.get("name") or experiment)[:100]
    files = [out / f"{stem}.md", out / f"{stem}.csv", out / f"{stem}_not_counted.csv"]
    files[0].write_text(markdown)
    table.to_csv(files[1], index=False)
    not_counted.to_csv(files[2], index=False)  # always written: never a stale one left behind
    if options.get("export"):
        if client is None:
            raise ReportError("export= writes records of the runs in an MLflow store; it "
                              "cannot be combined with records=")
        files += export_records(runs, counted, Path(options["export"]), client)
    return Report(table, not_counted, markdown, files)


def main(argv: list[str] | None = None) -> None:
    try:
        report = make_report(sys.argv[1:] if argv is None else argv)
    except ReportError as error:
        sys.exit(f"report: {error}")
    print(report.markdown)
    print("written: " + ", ".join(map(str, report.files)))


if __name__ == "__main__":
    main()
