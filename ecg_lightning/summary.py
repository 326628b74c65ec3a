"""Print a datamodule's dataset card without training.

    python -m ecg_lightning.summary data=mitdb [data.split=intra_patient] [--json]

Arguments other than ``--json`` are Hydra overrides of the same config ``run`` composes.
The card lists records and subjects per split, items per class per split, sampling rate,
window, leads, label scheme and the cache location.
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


def dataset_card(overrides: list[str]) -> dict:
    cfg = compose_config(overrides)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule.describe()


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
    as_json = "--json" in argv
    card = dataset_card([a for a in argv if a != "--json"])
    print(json.dumps(card, indent=1) if as_json else format_card(card))


if __name__ == "__main__":
    main()
