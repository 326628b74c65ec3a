"""Print a datamodule's dataset card without training.

    python -m ecg_lightning.summary data=mitdb [data.split=intra_patient] [--json] [--plots]

Arguments other than ``--json`` and ``--plots`` are Hydra overrides of the same config ``run``
composes. The card lists records and subjects per split, items per class per split, sampling
rate, window, leads, label scheme and the cache location. ``--plots`` also writes, under
``<outputs>/summary/<database>/``, the pictures to look at before training: the class
distribution per split, a 10 s strip of the first test record and a 1 s strip centred on its
first abnormal beat (beat databases, raw signal read with wfdb, annotations marked), and one
item's input as the model sees it (a spectrogram when the data config computes them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(overrides: list[str]):
    """The run config for these overrides, composed exactly as ``run`` composes it."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def prepared_datamodule(overrides: list[str]):
    cfg = compose_config(overrides)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup()
    return cfg, datamodule


def dataset_card(overrides: list[str]) -> dict:
    return prepared_datamodule(overrides)[1].describe()


def write_plots(datamodule, folder: Path) -> list[Path]:
    """The summary pictures (see the module docstring); returns the files written."""
    from ecg_lightning import plots

    folder.mkdir(parents=True, exist_ok=True)
    card = datamodule.describe()
    files = [plots.plot_class_distribution(card, folder / "class_distribution.png")]
    if hasattr(datamodule, "record_strip"):  # beat databases: raw strips of a test record
        record = str(datamodule.records[datamodule.splits["test"][0]])
        files.append(plots.plot_strip(*datamodule.record_strip(record, seconds=10.0),
                                      folder / "strip_10s.png"))
        abnormal = datamodule.first_abnormal_beat(record)
        if abnormal is not None:
            files.append(plots.plot_strip(*datamodule.record_strip(record, seconds=1.0,
                                                                   centre=abnormal),
                                          folder / "strip_1s_abnormal.png"))
    item = int(datamodule.splits["train"][0])
    files.append(plots.plot_input(datamodule.inputs["signal"][item], datamodule.class_names[
        int(datamodule.targets[item])] if datamodule.task == "multiclass" else "",
        folder / ("spectrogram.png" if datamodule.spectrogram else "input.png")))
    return files


def format_card(card: dict) -> str:
    lines = [f"{card['database']}  ({card['root']})"]
    for key, value in card.items():
        if key not in ("database", "root", "splits", "records_per_split"):
            lines.append(f"  {key}: {value}")
    classes = card["label_classes"]
    width = max(len(c) for c in classes + ["items"]) + 2
    lines.append("")
    lines.append("  split    subjects " + "".join(c.rjust(width) for c in classes + ["items"]))
    for name, split in card["splits"].items():
        counts = [split["per_class"][c] for c in classes] + [split["items"]]
        lines.append(f"  {name:<8} {len(split['subjects']):>8} "
                     + "".join(str(n).rjust(width) for n in counts))
    if "records_per_split" in card:
        lines.append("")
        for name, records in card["records_per_split"].items():
            lines.append(f"  {name} records ({len(records)}): {' '.join(map(str, records))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    flags = {"--json", "--plots"}
    cfg, datamodule = prepared_datamodule([a for a in argv if a not in flags])
    card = datamodule.describe()
    print(json.dumps(card, indent=1) if "--json" in argv else format_card(card))
    if "--plots" in argv:
        folder = Path(cfg.paths.outputs_dir) / "summary" / datamodule.slug
        for path in write_plots(datamodule, folder):
            print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
