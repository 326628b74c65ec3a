"""Biometric figures of an identification run: k-beat identification and verification rates.

Identification (the label scheme ``identification``: one class per person) answers "who is
this?"; an authentication system asks "is this the person they claim to be?". Both come
from the same test-split class probabilities, for decisions over ``k`` beats:

* **Decision blocks**: the test beats of every record, in time order, are cut into
  non-overlapping blocks of ``k`` consecutive beats; the last ``k - 1`` or fewer beats of a
  record join its last block, so every test beat is in exactly one decision. A record with
  fewer than ``k`` test beats gives one shorter block, counted as
  ``test/identification/k<k>/short_blocks`` (the documented fallback: nothing is dropped).
  A block's probabilities are the mean of its beats'; ``k=1`` is the single-beat decision.
* **Identification** over blocks: ``test/identification/k<k>/accuracy`` (argmax).
* **Verification** over blocks: every block claims every enrolled person (every class the
  model was trained on, persons without test beats included): the claim of its own person is
  a genuine trial, every other claim an impostor trial, and the score of a claim is the
  block's probability of the claimed person. From the ROC curve of genuine against impostor
  scores (torchmetrics ``binary_roc``): the equal error rate ``.../eer`` (where the false
  accept rate equals the false reject rate, linearly interpolated between curve points) and
  the true accept rate at a false accept rate of at most 1 % and 0.1 %
  (``.../tar_at_far_1pct``, ``.../tar_at_far_0.1pct``).
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import binary_roc

FAR_POINTS = {"1pct": 0.01, "0.1pct": 0.001}
PREFIX = "test/identification"
VERIFICATION_PREFIX = "test/verification"


def check_beats_per_decision(values) -> list[int]:
    """``identification_beats``: positive integers (``[1, 5, 10]``), each once."""
    values = list(values or [])
    if not values or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1
                             for k in values):
        raise ValueError(f"identification_beats={values!r} must list positive integers, "
                         "e.g. [1, 5, 10] (beats per identification decision)")
    return sorted(set(values))


def decision_blocks(records: torch.Tensor, k: int) -> tuple[torch.Tensor, int]:
    """``(block id per item, number of short blocks)`` for items in time order.

    ``records`` holds every test item's record code, items already in time order (a record's
    items are consecutive). See the module docstring for the rule.
    """
    starts = torch.ones(len(records), dtype=torch.bool)
    starts[1:] = records[1:] != records[:-1]
    run_start = torch.nonzero(starts).flatten()
    run_length = torch.diff(torch.cat([run_start, torch.tensor([len(records)])]))
    run_of_item = torch.cumsum(starts.long(), 0) - 1
    position = torch.arange(len(records)) - run_start[run_of_item]
    blocks_in_run = torch.clamp(run_length // k, min=1)
    block_in_run = torch.minimum(position // k, blocks_in_run[run_of_item] - 1)
    first_block = torch.cumsum(blocks_in_run, 0) - blocks_in_run
    return first_block[run_of_item] + block_in_run, int((run_length < k).sum())


def block_means(probs: torch.Tensor, targets: torch.Tensor, blocks: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean probabilities and the (shared) target of every block."""
    count = int(blocks.max()) + 1
    sums = torch.zeros(count, probs.shape[1], dtype=probs.dtype).index_add_(0, blocks, probs)
    sizes = torch.bincount(blocks, minlength=count).unsqueeze(1)
    block_target = torch.zeros(count, dtype=targets.dtype).scatter_(0, blocks, targets)
    return sums / sizes, block_target


def verification_curve(probs: torch.Tensor, targets: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(false accept rate, true accept rate)`` along the genuine-vs-impostor ROC curve."""
    genuine = torch.nn.functional.one_hot(targets, probs.shape[1]).flatten()
    far, tar, _ = binary_roc(probs.flatten(), genuine)
    return far, tar


def equal_error_rate(far: torch.Tensor, tar: torch.Tensor) -> float:
    """Where the false accept rate meets the false reject rate (1 - TAR), interpolated."""
    gap = far - (1.0 - tar)  # rises from -1 (accept nobody) to +1 (accept everybody)
    after = int(torch.nonzero(gap >= 0).flatten()[0])
    if after == 0:
        return float(far[0])
    before = after - 1
    share = float(gap[before] / (gap[before] - gap[after]))
    return float(far[before] + share * (far[after] - far[before]))


def tar_at_far(far: torch.Tensor, tar: torch.Tensor, limit: float) -> float:
    """The highest true accept rate whose false accept rate is at most ``limit``."""
    return float(tar[far <= limit].max())


def biometric_report(probs: torch.Tensor, targets: torch.Tensor, records: torch.Tensor,
                     beats_per_decision: list[int]) -> tuple[dict[str, float], dict]:
    """Flat metrics (module docstring) and, per ``k``, the curve for the DET plot."""
    flat, curves = {}, {}
    for k in beats_per_decision:
        blocks, short = decision_blocks(records, k)
        block_probs, block_targets = block_means(probs, targets, blocks)
        far, tar = verification_curve(block_probs, block_targets)
        name = f"k{k}"
        flat[f"{PREFIX}/{name}/accuracy"] = float(
            (block_probs.argmax(dim=1) == block_targets).float().mean())
        flat[f"{PREFIX}/{name}/decisions"] = float(len(block_targets))
        flat[f"{PREFIX}/{name}/short_blocks"] = float(short)
        flat[f"{VERIFICATION_PREFIX}/{name}/eer"] = equal_error_rate(far, tar)
        for label, limit in FAR_POINTS.items():
            flat[f"{VERIFICATION_PREFIX}/{name}/tar_at_far_{label}"] = tar_at_far(far, tar, limit)
        curves[k] = {"far": far, "frr": 1.0 - tar}
    return flat, curves
