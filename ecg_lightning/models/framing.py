"""Shared input shaping for recurrent nets: a window read as a sequence of short frames."""

from __future__ import annotations

import torch


def to_frames(x: torch.Tensor, frame_length: int) -> torch.Tensor:
    """``[B, C, T]`` -> ``[B, T // frame_length, C * frame_length]``, time kept in order.

    Each recurrent step then reads ``frame_length`` consecutive samples of every channel
    (trailing samples that do not fill a frame are dropped). Sample by sample (length 1),
    LSTMs over raw beat windows learned far more slowly in our trials (see the models).
    """
    batch, channels, time = x.shape
    steps = time // frame_length
    x = x[:, :, :steps * frame_length].reshape(batch, channels, steps, frame_length)
    return x.permute(0, 2, 1, 3).reshape(batch, steps, channels * frame_length)
