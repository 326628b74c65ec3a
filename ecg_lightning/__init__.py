"""ecg-lightning: reproducible deep learning on electrocardiograms.

Data flows one way: database files -> datamodule (cached arrays) -> batches -> net ->
task module (loss, metrics) -> MLflow. See README.md for the commands.
"""

__version__ = "0.1.0"

import os

# Two torch processes sharing a few cores (a parallel sweep, a benchmark beside a run) slow
# each other 10-30x when OpenMP threads spin while waiting; passive waiting costs nothing
# measurable alone. Must be set before torch is imported; the user's setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Folders named by the environment, made absolute once, at import. They are read later and
# lazily (a datamodule's ``root``, the configs' ``${oc.env:...}``), after tests and tools may
# have changed directory (``monkeypatch.chdir``, a subprocess's ``cwd``): a relative value such
# as ``ECG_DATA_DIR=../shared/data`` would then point elsewhere. Rewritten in ``os.environ``, so
# every later read and every subprocess sees the folder the user meant.
PATH_VARIABLES = ("ECG_DATA_DIR", "ECG_CACHE_DIR", "ECG_PROJECT_ROOT")


def absolute_path_variables(names=PATH_VARIABLES) -> None:
    """Rewrite each relative (or ``~``) value of ``names`` in ``os.environ`` as absolute."""
    for name in names:
        value = os.environ.get(name)
        if value and not os.path.isabs(value):
            os.environ[name] = os.path.abspath(os.path.expanduser(value))


absolute_path_variables()

from ecg_lightning import resolvers  # noqa: E402  (after the environment above)

resolvers.register()
