"""Model-level facts that configs cannot show: shapes, and that time stays time."""

from __future__ import annotations

import torch

from ecg_lightning.models.framing import to_frames
from ecg_lightning.models.satheeswaran2024 import RecurrentClassifier


def test_frames_keep_time_order_and_channels_together():
    x = torch.arange(2 * 10, dtype=torch.float32).reshape(1, 2, 10)  # 2 channels, 10 samples
    frames = to_frames(x, 4)
    assert frames.shape == (1, 2, 8)  # 2 full frames; the last 2 samples are dropped
    assert frames[0, 0].tolist() == [0, 1, 2, 3, 10, 11, 12, 13]  # samples 0-3 of both leads
    assert frames[0, 1].tolist() == [4, 5, 6, 7, 14, 15, 16, 17]


def test_recurrent_classifier_variants_give_logits():
    x = torch.randn(4, 1, 252)
    for kwargs in ({"cell": "lstm"}, {"cell": "gru", "bidirectional": True},
                   {"attention": False, "frame_length": 9}, {"num_layers": 1}):
        assert RecurrentClassifier(num_classes=5, in_channels=1, **kwargs)(x).shape == (4, 5)
