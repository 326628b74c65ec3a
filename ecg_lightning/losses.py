"""Losses built from the ``loss`` config group.

run.py passes every loss the training split's ``class_counts`` (and ``num_items``); a loss
turns them into class weights when its ``weighting`` asks for it. Inverse-frequency weights
explode for near-empty classes (MIT-BIH Q has 8 beats in DS1), so they are capped at
``max_weight``; the weights used are logged with the run (param ``loss/class_weights``).
"""

from __future__ import annotations

import torch
from torch import nn

WEIGHTINGS = ("none", "inverse", "inverse_sqrt")


def class_weights(class_counts: list[int], weighting: str, max_weight: float) -> torch.Tensor | None:
    """Per-class weights from training counts; ``None`` for ``weighting="none"``.

    ``inverse``: scikit-learn's "balanced" weights, n_items / (n_classes * n_c), so a class of
    average size weighs 1; ``inverse_sqrt``: their square root (a milder correction). Both are
    capped at ``max_weight``. Classes absent from training get weight 0: they cannot be
    learned, and their loss term never occurs.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"loss.weighting={weighting!r} is unknown; valid: {', '.join(WEIGHTINGS)}")
    if weighting == "none":
        return None
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    if weighting == "inverse_sqrt":
        weights = weights.sqrt()
    return weights.clamp(max=max_weight).float()


class CrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy with optional class weights and label smoothing (``loss=ce``)."""

    def __init__(self, class_counts: list[int], weighting: str = "none", max_weight: float = 10.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight=class_weights(class_counts, weighting, max_weight),
                         label_smoothing=label_smoothing)


class FocalLoss(nn.Module):
    """Multiclass focal loss with optional class weights and label smoothing (``loss=focal``).

    Lin, Goyal, Girshick, He & Dollar 2017, "Focal Loss for Dense Object Detection" (ICCV):
    the cross-entropy term of every class is scaled by ``(1 - p)^gamma``, so confidently right
    items weigh little and training dwells on the hard ones. With label smoothing the target
    is ``q = (1 - e) onehot(y) + e / K`` and every class's term is modulated by its own
    probability; weights follow ``class_weights`` (``weighting=inverse``: inverse frequency,
    "class-balanced"). For a batch::

        loss = sum_i sum_k q_ik w_k (1 - p_ik)^gamma (-log p_ik) / sum_i w_{y_i}

    the weighted mean torch's ``CrossEntropyLoss`` takes, so ``gamma=0`` is exactly ``loss=ce``
    with the same weights and smoothing. Single-label targets only; multilabel data takes
    ``loss=bce``.
    """

    def __init__(self, class_counts: list[int], gamma: float = 2.0, weighting: str = "inverse",
                 max_weight: float = 10.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"loss.gamma={gamma!r} must be >= 0 (0 is cross-entropy)")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"loss.label_smoothing={label_smoothing!r} must be in [0, 1)")
        self.gamma, self.label_smoothing = float(gamma), float(label_smoothing)
        self.register_buffer("weight", class_weights(class_counts, weighting, max_weight))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dim() != 1:
            raise ValueError("loss=focal takes one class index per item; these targets have "
                             f"shape {tuple(target.shape)} (multilabel?): use loss=bce")
        log_p = logits.log_softmax(dim=-1)
        num_classes = logits.shape[-1]
        q = nn.functional.one_hot(target, num_classes).float() * (1.0 - self.label_smoothing)
        q = q + self.label_smoothing / num_classes
        weight = self.weight if self.weight is not None else log_p.new_ones(num_classes)
        terms = q * weight * (1.0 - log_p.exp()).pow(self.gamma) * -log_p
        return terms.sum() / weight[target].sum()


class BinaryCrossEntropy(nn.BCEWithLogitsLoss):
    """Binary cross-entropy over one logit per class (``loss=bce``).

    Multilabel targets are used as they are; class indices (binary or multiclass data) become
    one-hot targets, so every class is a one-vs-rest decision. ``weighting`` sets the
    positive-class weight of each class to (negatives / positives), capped at ``max_weight``.
    """

    def __init__(self, class_counts: list[int], weighting: str = "none",
                 max_weight: float = 10.0, num_items: int | None = None) -> None:
        pos_weight = None
        if weighting != "none":
            if weighting not in WEIGHTINGS:
                raise ValueError(f"loss.weighting={weighting!r} is unknown; valid: {', '.join(WEIGHTINGS)}")
            positives = torch.as_tensor(class_counts, dtype=torch.float32).clamp(min=1)
            # Multiclass counts add up to the item count; multilabel data passes it.
            negatives = (num_items if num_items is not None else positives.sum()) - positives
            ratio = negatives / positives
            pos_weight = (ratio if weighting == "inverse" else ratio.sqrt()).clamp(max=max_weight)
        super().__init__(pos_weight=pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dim() == 1:  # class indices -> one-hot
            target = nn.functional.one_hot(target, logits.shape[-1])
        return super().forward(logits, target.to(logits.dtype))
