"""A compact 1-D CNN for beat windows: the project's inter-patient default (``model=beat_cnn``).

Not a paper's model. It is what the default run (mitdb, de Chazal's DS1 -> DS2) trains,
chosen for the inter-patient setting, where a net must classify the beats of patients it never
saw and most beat classifiers learn the training patients' morphology instead:

* four convolution blocks (Conv1d, BatchNorm, ReLU; max-pooling after the first three) over the
  window's leads, widths ``width, width, 2 width, 2 width``, kernels 7-7-5-5 (about 20 ms each
  at 360 Hz, growing to ~150 ms of receptive field: a QRS complex and its neighbourhood);
* global average pooling, then dropout: the features say *what* the beat looks like, not
  *where* in the window, which keeps the parameter count small (39,013 at width 32 on one lead) and the
  net from memorising positions of one patient's waves;
* a linear classifier (``head``), where the RR features join through the shared fusion
  (``models/fusion.py``): across patients, supraventricular beats differ from normal ones in
  timing more than in shape (de Chazal et al. 2004, IEEE TBME 51(7)).

Inputs, loss, selection and what it reaches on DS2 are in the README ("What the default run
gives", "Inter-patient beat classification"). 2026-12-02, seeds 1-3, with the five RR features
of ``data=mitdb_interpatient`` (the rhythm's irregularity added, chosen by record
cross-validation inside DS1): accuracy 92.2 %, macro-F1 over N, S, V, F 0.621, S Se / +P
64.7 / 41.8 %, V Se / +P 87.0 / 87.4 %. Seeds 1 and 3 beat de Chazal et al. 2004's LDA on
every figure; seed 2 (S Se 37 %) and seed 42 (74.5 %) fall short on S sensitivity alone.
What we found: the best validation epoch comes early (the 5th to the 14th over seeds 1-3, the
4th in the default command): the net fits DS1's 19 training patients in a few epochs, so a longer budget
is not what is missing. Without the irregularity feature its false S calls were normal beats
of atrial-fibrillation records (early, irregular beats); with it, DS2's S sensitivity hangs on
record 232 (75 % of DS2's S beats, found at 84 / 33 / 83 % by seeds 1-3), a record whose
beats are mostly S, so that its own median beat and mean RR, the references the inputs are
normalised by, are an S beat's.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int, kernel_size: int, pool: bool) -> nn.Sequential:
    layers = [nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
              nn.BatchNorm1d(out_channels), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool1d(2))
    return nn.Sequential(*layers)


class BeatCNN(nn.Module):
    """``[batch, leads, samples]`` -> class logits ``[batch, num_classes]``."""

    head_path = "head"  # its classifier, where auxiliary inputs join (models/fusion.py)

    def __init__(self, num_classes: int, in_channels: int, width: int = 32,
                 dropout: float = 0.3) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"model.net.width={width} must be a positive integer")
        self.features = nn.Sequential(
            conv_block(in_channels, width, 7, pool=True),
            conv_block(width, width, 7, pool=True),
            conv_block(width, 2 * width, 5, pool=True),
            conv_block(2 * width, 2 * width, 5, pool=False),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(dropout))
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
