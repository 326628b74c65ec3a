"""Recurrent beat classifier of Satheeswaran et al. 2024.

V. Satheeswaran, G. Naga Chandrika, A. Mitra, R. Chowdhury, P. Kumar, E. Glory,
"Deep Learning Based Classification of ECG Signals Using RNN and LSTM Mechanism",
Journal of Electronics, Electromedical Engineering, and Medical Informatics (JEEEMI) 6(2), 2024.

What the paper reports (abstract, MIT-BIH Arrhythmia, beat-level random split, i.e.
intra-patient): accuracy 98.9 %, precision 0.993, recall 0.992, F1 0.99, for an LSTM whose
hidden states are pooled by an attention mechanism that weights the time steps.

What we changed and why: the paper does not publish layer sizes, window length or training
schedule, so ``conf/model/lstm.yaml`` uses two LSTM layers of 64 units, dropout 0.2 and
additive attention pooling, which fit a 10-minute CPU budget. ``cell="gru"`` gives the GRU
twin (``model=gru``) with everything else equal, for a like-for-like comparison.
"""

from __future__ import annotations

import torch
from torch import nn


class AttentionPooling(nn.Module):
    """Additive attention over time: a learned score per step, softmax, weighted sum."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(features, features), nn.Tanh(),
                                   nn.Linear(features, 1, bias=False))

    def forward(self, states: torch.Tensor) -> torch.Tensor:  # [B, T, F] -> [B, F]
        weights = torch.softmax(self.score(states), dim=1)
        return (weights * states).sum(dim=1)


class RecurrentClassifier(nn.Module):
    """LSTM (or GRU) over the samples of a beat window, attention pooling, linear head.

    Input ``[batch, channels, time]``; output class logits ``[batch, num_classes]``.
    """

    def __init__(self, num_classes: int, in_channels: int, hidden_size: int = 64,
                 num_layers: int = 2, dropout: float = 0.2, bidirectional: bool = False,
                 cell: str = "lstm", attention: bool = True) -> None:
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}.get(cell)
        if rnn is None:
            raise ValueError(f"model.net.cell={cell!r} is unknown; valid: lstm, gru")
        self.rnn = rnn(in_channels, hidden_size, num_layers=num_layers, batch_first=True,
                       dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional)
        features = hidden_size * (2 if bidirectional else 1)
        # Without attention the last time step summarises the window, the classic RNN readout.
        self.pool = AttentionPooling(features) if attention else None
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(x.transpose(1, 2))  # the time axis becomes the sequence axis
        summary = self.pool(states) if self.pool is not None else states[:, -1]
        return self.head(summary)
