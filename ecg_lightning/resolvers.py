"""OmegaConf resolvers the configs use; registered when the package is imported.

``${local_artifacts:<tracking uri>,<folder>}``: the artifact folder of a new MLflow experiment.
A local store (``sqlite:``) keeps its artifacts in ``<folder>`` (else MLflow would write a
``mlruns`` folder wherever the command runs); a tracking server (``http(s):``, ``databricks``)
keeps them where the server says, so the value is null.
"""

from __future__ import annotations

from omegaconf import OmegaConf

LOCAL_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql", "file:")


def local_artifacts(tracking_uri: str, folder: str) -> str | None:
    return folder if str(tracking_uri).startswith(LOCAL_SCHEMES) else None


def register() -> None:
    OmegaConf.register_new_resolver("local_artifacts", local_artifacts, replace=True)
