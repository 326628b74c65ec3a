"""OmegaConf resolvers the configs use; registered when the package is imported.

``${local_artifacts:<tracking uri>,<folder>}``: the artifact folder of a new MLflow experiment.
A local store (``sqlite:``) keeps its artifacts in ``<folder>`` (else MLflow would write a
``mlruns`` folder wherever the command runs); a tracking server (``http(s):``, ``databricks``)
keeps them where the server says, so the value is null.

``${scored:<label scheme>,<metric>}``: ``val/f1_macro`` -> ``val/nsvf/f1_macro`` where the label
scheme scores some classes apart (AAMI's N, S, V, F; ecg_lightning/data/labels.py), else the
metric as given: ``monitor=nsvf_f1_macro`` then still names a logged metric after
``data.label_scheme=binary``.
"""

from __future__ import annotations

from omegaconf import OmegaConf

LOCAL_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql", "file:")


def local_artifacts(tracking_uri: str, folder: str) -> str | None:
    return folder if str(tracking_uri).startswith(LOCAL_SCHEMES) else None


def scored(label_scheme: str, metric: str) -> str:
    from ecg_lightning.data.labels import scored_classes  # light, but not needed at import
    from ecg_lightning.metrics import SCORED_PREFIX  # imports torch: only when resolved
    if not scored_classes(label_scheme):
        return metric
    stage, name = metric.split("/", 1)
    return f"{stage}/{SCORED_PREFIX}/{name}"


def register() -> None:
    OmegaConf.register_new_resolver("local_artifacts", local_artifacts, replace=True)
    OmegaConf.register_new_resolver("scored", scored, replace=True)
