"""One fusion for every beat classifier: the auxiliary inputs join the net's head.

A batch carries named inputs (``signal`` and, when configured, ``rr`` RR-interval features or
PTB-XL's ``tabular`` values; ``data/base.py``). Rather than a new model file per paper for
"the same net, plus RR features", :func:`with_auxiliary_inputs` wraps any net whose last layer
is a linear classifier:

* the auxiliary inputs are concatenated and embedded by a small MLP (``Linear -> ReLU ->
  Linear -> ReLU``, ``embedding_size`` units; the inputs are already standardised by their
  fitted transform);
* the net's classifier ``Linear(features, classes)`` is replaced by
  ``Linear(features + embedding_size, classes)`` over ``[features, embedding]``: the backbone's
  pooled features and the rhythm meet before the decision (feature-level fusion, as de Chazal
  et al. 2004's linear discriminant sees morphology and RR features side by side).

A net declares its classifier with a class (or instance) attribute ``head_path``, the dotted
path of that ``nn.Linear`` inside it (``"head"``, ``"head.1"``, ``"classifier.7"``...). A head
applied at every time step (Kim & Pyun's per-step classifier, ``[B, T, features]``) gets the
embedding at every step. A net without ``head_path`` (the autoencoders) cannot take auxiliary
inputs and says so.

The wrapped net declares what it consumes, ``input_names = ("signal", "rr", ...)``; the task
passes those inputs of the batch in that order (``tasks/classification.py``).
"""

from __future__ import annotations

import torch
from torch import nn

SIGNAL = "signal"


def input_names(net: nn.Module) -> tuple[str, ...]:
    """The named inputs a net consumes, in the order its ``forward`` takes them."""
    return tuple(getattr(net, "input_names", (SIGNAL,)))


class FusedHead(nn.Module):
    """``Linear(features + context)`` over the backbone's features and the auxiliary embedding.

    The embedding of the current batch is handed over in ``context`` by
    :class:`AuxiliaryFusion` just before the backbone runs (the backbone's own ``forward``
    knows nothing of it) and cleared right after.
    """

    def __init__(self, features: int, context: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features + context, num_classes)
        self.context: torch.Tensor | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.context is None:
            raise RuntimeError("FusedHead called outside AuxiliaryFusion.forward")
        context = self.context
        while context.dim() < features.dim():  # per-step heads: [B, E] -> [B, 1, E]
            context = context.unsqueeze(1)
        context = context.expand(*features.shape[:-1], context.shape[-1])
        return self.linear(torch.cat([features, context.to(features.dtype)], dim=-1))


class AuxiliaryFusion(nn.Module):
    """A classifier ``backbone`` whose head also sees the embedded auxiliary inputs."""

    def __init__(self, backbone: nn.Module, auxiliary_inputs: dict[str, int],
                 embedding_size: int = 32) -> None:
        super().__init__()
        head_path = getattr(backbone, "head_path", None)
        names = sorted(auxiliary_inputs)
        if head_path is None:
            raise ValueError(f"{type(backbone).__name__} cannot use the auxiliary inputs {names} "
                             "(data.rr_features, data.tabular): it has no classifier head for "
                             "them to join (no head_path); set those options to null")
        head = backbone.get_submodule(head_path)
        if not isinstance(head, nn.Linear):
            raise TypeError(f"{type(backbone).__name__}.head_path={head_path!r} names a "
                            f"{type(head).__name__}, not the nn.Linear classifier")
        if embedding_size < 1:
            raise ValueError(f"model.fusion.embedding_size={embedding_size} must be positive")
        self.auxiliary_names = tuple(names)
        self.input_names = (SIGNAL, *names)
        width = sum(auxiliary_inputs[name] for name in names)
        self.embedding = nn.Sequential(nn.Linear(width, embedding_size), nn.ReLU(),
                                       nn.Linear(embedding_size, embedding_size), nn.ReLU())
        self.head = FusedHead(head.in_features, embedding_size, head.out_features)
        parent_path, _, attribute = head_path.rpartition(".")
        parent = backbone.get_submodule(parent_path) if parent_path else backbone
        setattr(parent, attribute, self.head)
        self.backbone = backbone

    def forward(self, signal: torch.Tensor, *auxiliary: torch.Tensor) -> torch.Tensor:
        flat = [values.reshape(len(values), -1) for values in auxiliary]
        self.head.context = self.embedding(torch.cat(flat, dim=1))
        try:
            return self.backbone(signal)
        finally:
            self.head.context = None


def with_auxiliary_inputs(net: nn.Module, auxiliary_inputs: dict[str, int] | None,
                          embedding_size: int = 32) -> nn.Module:
    """``net`` itself without auxiliary inputs, else wrapped in :class:`AuxiliaryFusion`."""
    if not auxiliary_inputs:
        if getattr(net, "needs_auxiliary_inputs", False):
            raise ValueError(f"{type(net).__name__} classifies from the auxiliary inputs alone, "
                             "and this data has no auxiliary input: set data.rr_features "
                             "(e.g. [pre_norm, post_norm])")
        return net
    return AuxiliaryFusion(net, dict(auxiliary_inputs), embedding_size)


class WindowIgnored(nn.Module):
    """The "auxiliary inputs only" ablation (``model=rr_only``): a backbone whose only feature
    is a constant, so through :class:`AuxiliaryFusion` the decision rests on the RR features
    (or tabular values) alone, by the same embedding and head as every fused model."""

    head_path = "head"
    needs_auxiliary_inputs = True  # without them it has nothing to classify from

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(1, num_classes)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return self.head(signal.new_ones(len(signal), 1))
