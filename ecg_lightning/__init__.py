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

from ecg_lightning import resolvers  # noqa: E402  (after the environment above)

resolvers.register()
