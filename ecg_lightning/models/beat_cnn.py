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

Inputs, loss, selection and what it reaches on DS2 (2026-12-01, seeds 1-3: accuracy 90.6 %,
macro-F1 over N, S, V, F 0.608, S Se / +P 62.9 / 39.1 %, V Se / +P 96.0 / 73.0 %) are in the
README ("What the default run gives", "Inter-patient beat classification"). It does not beat de
Chazal et al. 2004's LDA on S sensitivity (75.9 %) and V +P (81.9 %). What we found: the best
validation epoch comes early (the 1st to the 15th over the ablation's 15 runs, 7 of them within
the first 5; the second in the default run): the net fits DS1's 19 training patients in a few
epochs, so a longer budget is not what is missing;
its false S calls are normal beats of atrial-fibrillation records (irregular RR), and it
finds 68 % of record 232's S beats, which are 75 % of DS2's.
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
