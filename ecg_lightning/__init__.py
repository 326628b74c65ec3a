"""ecg-lightning: reproducible deep learning on electrocardiograms.

Data flows one way: database files -> datamodule (cached arrays) -> batches -> net ->
task module (loss, metrics) -> MLflow. See README.md for the commands.
"""

__version__ = "0.1.0"
