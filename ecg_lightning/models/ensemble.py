"""A deep ensemble: several independently initialised copies of a net in one model.

B. Lakshminarayanan, A. Pritzel, C. Blundell, "Simple and Scalable Predictive Uncertainty
Estimation using Deep Ensembles", NeurIPS 2017: copies of one architecture, each from its own
random initialisation and trained on its own loss, decide by the mean of their predicted
probabilities. Where single runs land on either side of a target by the luck of their
initialisation (the inter-patient default's seeds), the mean of K members is steadier than any
one of them.

``model.members=K`` (any classification model config; 1, where a config sets none, is the plain
net; ``conf/model/beat_cnn.yaml``, the default run's, sets 3):
``run.model_from_facts`` builds the net K times, each with its own auxiliary-input fusion, and
wraps them here. The members train side by side in the one training loop, on the same batches:
the loss is the mean of the members' own losses, so no member's gradient depends on another's
(training the averaged prediction instead lets members lean on each other: Jeffares et al.,
"Joint Training of Deep Ensembles Fails Due to Learner Collusion", NeurIPS 2023). Everything
downstream (metrics, thresholds, checkpoints, the EMA of the weights, ``predict``) sees one
model whose logits are :func:`combined_logits`. A step costs about K times one net's
(``beat_cnn``, batch 256, 2 CPU cores: 58 ms for one net, 117 ms for two; a grouped-convolution
layout of the same two nets, timed in a separate run, 111 ms: nothing is lost by keeping the
members apart).

Measured on the inter-patient default (DS1 3-fold record cross-validation, seeds 42, 2, 3;
``outputs/reproductions/interpatient/ds1_cv_selection.md``): two members (2026-12-03, 12-06)
cut a run's spread but lowered the mean S +P, at twice the step; three members (2026-12-07)
halved the spread over seeds of one fold's figures (macro-F1 0.012 -> 0.006, S +P 0.028 ->
0.017) with every mean as high or higher (macro-F1 0.553 -> 0.559, S +P 0.280 -> 0.290), and
are the default run's model since (``members: 3`` in conf/model/beat_cnn.yaml).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ecg_lightning.models.fusion import input_names


class DeepEnsemble(nn.Module):
    """``members`` nets side by side: ``forward`` returns their logits ``[batch, K, classes]``."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"model.members={len(members)}: an ensemble needs 2 or more "
                             "members (1 is the plain net)")
        self.members = nn.ModuleList(members)
        self.input_names = input_names(members[0])

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(*inputs) for member in self.members], dim=1)


def combined_logits(member_logits: torch.Tensor, task: str) -> torch.Tensor:
    """Logits of the members' mean probability, from their logits ``[batch, K, classes]``:
    softmax (multiclass) or sigmoid (multilabel) of the result is that mean."""
    if task == "multiclass":
        members = member_logits.shape[1]
        return torch.logsumexp(torch.log_softmax(member_logits, dim=-1), dim=1) - math.log(members)
    return torch.logit(torch.sigmoid(member_logits).mean(dim=1), eps=1e-7)
