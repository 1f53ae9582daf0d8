"""Training losses by name; a model's spec names one. Each takes (model, raw prediction, native target)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from colorize_cli.models.base import ColorModel


READOUT_L1_WEIGHT = 2.0
COLOUR_FLOOR = 0.85     # share of the truth's colourfulness the shown colour must keep (per crop or batch)
COLOUR_WEIGHT = 3.0


def _resized(raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return target if raw.shape[-2:] == target.shape[-2:] else F.interpolate(target, size=raw.shape[-2:], mode="area")


def l1(model: ColorModel, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(raw.float(), _resized(raw, target))


def mse(model: ColorModel, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(raw.float(), _resized(raw, target))


def mse_kl(model: ColorModel, raw: torch.Tensor, target: torch.Tensor, beta: float = 1e-3) -> torch.Tensor:
    """VAE: reconstruction MSE plus the KL term the model computed in its forward pass (weighted so colour wins)."""
    return mse(model, raw, target) + beta * model.kl


def ab_classification(model: ColorModel, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rebalanced cross-entropy against Gaussian soft-encoded ab (Zhang et al. 2016, eq. 2-4)."""
    soft = model.soft_encode(target)
    weight = model.class_weights[soft.argmax(1)]                 # (N,h,w): rarer colours count more
    ce = -(soft * F.log_softmax(raw.float(), 1)).sum(1)
    return (weight * ce).mean()


def ab_classification_readout(model: ColorModel, raw: torch.Tensor, target: torch.Tensor,
                              weight: float = READOUT_L1_WEIGHT) -> torch.Tensor:
    """The rebalanced cross-entropy plus L1 between the colour the readout will show (annealed mean at the model's
    own temperature and prior correction) and the truth: the distribution keeps colours vivid, the L1 term makes what
    is actually shown right (train what is tested). ab units / 10, so both terms are of the same order."""
    return _with_shown_l1(model, raw, target, model.readout(raw), weight)


def _with_shown_l1(model: ColorModel, raw: torch.Tensor, target: torch.Tensor, shown: torch.Tensor,
                   weight: float = READOUT_L1_WEIGHT) -> torch.Tensor:
    return ab_classification(model, raw, target) + weight * F.l1_loss(shown, target) / 10


def colourfulness_ab(ab: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk's colourfulness, spread + 0.3 x mean offset, taken in the ab plane: (N,2,h,w) -> (N,)."""
    flat = ab.flatten(2)
    spread = (flat.var(2, unbiased=False).sum(1) + 1e-6).sqrt()
    return spread + 0.3 * flat.mean(2).norm(dim=1)


def ab_classification_vivid(model: ColorModel, raw: torch.Tensor, target: torch.Tensor,
                            floor: float = COLOUR_FLOOR, weight: float = COLOUR_WEIGHT) -> torch.Tensor:
    """The readout loss plus a hinge on each crop's shown colourfulness below `floor` x the truth's. L1 alone pulls
    the shown colour towards gray; a global readout knob then adds colour back everywhere alike. The hinge lets the
    network add it where it costs least accuracy, which is where it is surest."""
    return _with_colour_floor(model, raw, target, floor, weight, per_crop=True)


def ab_classification_vivid_batch(model: ColorModel, raw: torch.Tensor, target: torch.Tensor,
                                  floor: float = COLOUR_FLOOR, weight: float = COLOUR_WEIGHT) -> torch.Tensor:
    """As ab-classification-vivid, but the floor holds for the batch's mean colourfulness, as the colourfulness ratio
    is measured (a ratio of means): the network may leave a crop it cannot read muted and colour the ones it can."""
    return _with_colour_floor(model, raw, target, floor, weight, per_crop=False)


def _with_colour_floor(model: ColorModel, raw: torch.Tensor, target: torch.Tensor, floor: float, weight: float,
                       per_crop: bool) -> torch.Tensor:
    shown = model.readout(raw)
    want, got = floor * colourfulness_ab(target), colourfulness_ab(shown)
    if not per_crop:
        want, got = want.mean(), got.mean()
    return _with_shown_l1(model, raw, target, shown) + weight * F.relu(want - got).mean() / 10


LOSSES: dict[str, Callable[[ColorModel, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": l1,
    "mae": l1,
    "mse": mse,
    "mse-kl": mse_kl,
    "ab-classification": ab_classification,
    "ab-classification-readout": ab_classification_readout,
    "ab-classification-vivid": ab_classification_vivid,
    "ab-classification-vivid-batch": ab_classification_vivid_batch,
}
NEEDS_READOUT = (ab_classification_readout, ab_classification_vivid, ab_classification_vivid_batch)
