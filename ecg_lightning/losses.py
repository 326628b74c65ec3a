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
