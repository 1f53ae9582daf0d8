"""Training losses by name; a model's spec names one. Each takes (model, raw prediction, native target)."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from colorize_cli.models.base import ColorModel

# The VAE's loss reads its `kl`, the classification losses its bins (`soft_encode`, `class_weights`, `readout`):
# parts of one family, not of the ColorModel contract, so those take the model untyped.
FamilyModel = Any


READOUT_L1_WEIGHT = 2.0
COLOUR_FLOOR = 0.85  # share of the truth's colourfulness the shown colour must keep (per crop or batch)
COLOUR_WEIGHT = 3.0
_TAU = 2 * math.pi


def _resized(raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return target if raw.shape[-2:] == target.shape[-2:] else F.interpolate(target, size=raw.shape[-2:], mode="area")


def l1(model: ColorModel, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(raw.float(), _resized(raw, target))


def mse(model: ColorModel, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(raw.float(), _resized(raw, target))


def mse_kl(model: FamilyModel, raw: torch.Tensor, target: torch.Tensor, beta: float = 1e-3) -> torch.Tensor:
    """VAE: reconstruction MSE plus the KL term the model computed in its forward pass (weighted so colour wins)."""
    return mse(model, raw, target) + beta * model.kl


def ab_classification(model: FamilyModel, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rebalanced cross-entropy against Gaussian soft-encoded ab (Zhang et al. 2016, eq. 2-4)."""
    soft = model.soft_encode(target)
    weight = model.class_weights[soft.argmax(1)]  # (N,h,w): rarer colours count more
    ce = -(soft * F.log_softmax(raw.float(), 1)).sum(1)
    return (weight * ce).mean()


def ab_classification_readout(
    model: FamilyModel, raw: torch.Tensor, target: torch.Tensor, weight: float = READOUT_L1_WEIGHT
) -> torch.Tensor:
    """The rebalanced cross-entropy plus L1 between the colour the readout will show (annealed mean at the model's
    own temperature and prior correction) and the truth: the distribution keeps colours vivid, the L1 term makes what
    is actually shown right (train what is tested). ab units / 10, so both terms are of the same order."""
    return _with_shown_error(model, raw, target, model.readout(raw), weight)


def _with_shown_error(
    model: ColorModel,
    raw: torch.Tensor,
    target: torch.Tensor,
    shown: torch.Tensor,
    weight: float = READOUT_L1_WEIGHT,
    ciede: bool = False,
) -> torch.Tensor:
    error = ciede2000_ab(target, shown).mean() if ciede else F.l1_loss(shown, target)
    return ab_classification(model, raw, target) + weight * error / 10


def ciede2000_ab(ab1: torch.Tensor, ab2: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """CIEDE2000 between two ab planes (N,2,...) of equal lightness, differentiable: (N,...). With equal L the
    lightness term vanishes and L enters nowhere else. metrics.ciede2000 is the numpy reference the tests hold this
    to; here eps keeps every sqrt and atan2 off zero so a gray truth gives no NaN gradient."""
    a1, b1, a2, b2 = ab1[:, 0], ab1[:, 1], ab2[:, 0], ab2[:, 1]
    c_bar7 = (((a1**2 + b1**2 + eps).sqrt() + (a2**2 + b2**2 + eps).sqrt()) / 2) ** 7
    g = 1.5 - 0.5 * (c_bar7 / (c_bar7 + 25.0**7)).sqrt()  # 1 + G: stretches a* near neutral
    a1, a2 = g * a1, g * a2
    c1, c2 = (a1**2 + b1**2 + eps).sqrt(), (a2**2 + b2**2 + eps).sqrt()
    h1, h2 = torch.atan2(b1, a1 + eps) % _TAU, torch.atan2(b2, a2 + eps) % _TAU
    dh = (h2 - h1 + torch.pi) % _TAU - torch.pi  # the short way round
    d_hue = 2 * (c1 * c2 + 1e-4).sqrt() * torch.sin(dh / 2)  # 1e-4: a finite slope at zero chroma
    h_bar = torch.where(
        (h1 - h2).abs() <= torch.pi,
        (h1 + h2) / 2,
        torch.where(h1 + h2 < _TAU, (h1 + h2) / 2 + torch.pi, (h1 + h2) / 2 - torch.pi),
    )
    t = (
        1
        - 0.17 * torch.cos(h_bar - math.radians(30))
        + 0.24 * torch.cos(2 * h_bar)
        + 0.32 * torch.cos(3 * h_bar + math.radians(6))
        - 0.20 * torch.cos(4 * h_bar - math.radians(63))
    )
    cp_bar = (c1 + c2) / 2
    r_c = 2 * (cp_bar**7 / (cp_bar**7 + 25.0**7)).sqrt()
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_bar) - 275) / 25) ** 2))
    tc, th = (c2 - c1) / (1 + 0.045 * cp_bar), d_hue / (1 + 0.015 * cp_bar * t)
    return (tc**2 + th**2 - torch.sin(2 * d_theta) * r_c * tc * th + eps).sqrt()


def colourfulness_ab(ab: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk's colourfulness, spread + 0.3 x mean offset, taken in the ab plane: (N,2,h,w) -> (N,)."""
    flat = ab.flatten(2)
    spread = (flat.var(2, unbiased=False).sum(1) + 1e-6).sqrt()
    return spread + 0.3 * flat.mean(2).norm(dim=1)


def ab_classification_vivid(
    model: ColorModel,
    raw: torch.Tensor,
    target: torch.Tensor,
    floor: float = COLOUR_FLOOR,
    weight: float = COLOUR_WEIGHT,
) -> torch.Tensor:
    """The readout loss plus a hinge on each crop's shown colourfulness below `floor` x the truth's. L1 alone pulls
    the shown colour towards gray; a global readout knob then adds colour back everywhere alike. The hinge lets the
    network add it where it costs least accuracy, which is where it is surest."""
    return _with_colour_floor(model, raw, target, floor, weight, per_crop=True)


def ab_classification_vivid_batch(
    model: ColorModel,
    raw: torch.Tensor,
    target: torch.Tensor,
    floor: float = COLOUR_FLOOR,
    weight: float = COLOUR_WEIGHT,
) -> torch.Tensor:
    """As ab-classification-vivid, but the floor holds for the batch's mean colourfulness, as the colourfulness ratio
    is measured (a ratio of means): the network may leave a crop it cannot read muted and colour the ones it can.
    On the widened data it bought held-out PSNR at equal colour, not `val/` CIEDE2000 (i24b, benchmarks/RESULTS.md)."""
    return _with_colour_floor(model, raw, target, floor, weight, per_crop=False)


def ab_classification_vivid_ciede(
    model: ColorModel,
    raw: torch.Tensor,
    target: torch.Tensor,
    floor: float = COLOUR_FLOOR,
    weight: float = COLOUR_WEIGHT,
) -> torch.Tensor:
    """As ab-classification-vivid, but the shown colour's error is CIEDE2000 (the metric users' eyes and `colorize
    eval` use) instead of L1 in ab: it forgives chroma errors on vivid colours and weighs hue by how visible it is,
    where L1 counts every ab unit alike. Measured worse: it restrains the rebalanced cross-entropy less, so the
    network grew too colourful for its readout (benchmarks/RESULTS.md)."""
    return _with_colour_floor(model, raw, target, floor, weight, per_crop=True, ciede=True)


def _with_colour_floor(
    model: FamilyModel,
    raw: torch.Tensor,
    target: torch.Tensor,
    floor: float,
    weight: float,
    per_crop: bool,
    ciede: bool = False,
) -> torch.Tensor:
    shown = model.readout(raw)
    want, got = floor * colourfulness_ab(target), colourfulness_ab(shown)
    if not per_crop:
        want, got = want.mean(), got.mean()
    return _with_shown_error(model, raw, target, shown, ciede=ciede) + weight * F.relu(want - got).mean() / 10


def distillation(student: torch.Tensor, teacher: torch.Tensor, classes: bool) -> torch.Tensor:
    """What keeps a fine-tune near its teacher's outputs (Li & Hoiem 2016, "Learning without Forgetting"): per pixel,
    KL(teacher || student) over the colour bins of a classification model, MSE of the raw output otherwise."""
    student, teacher = student.float(), teacher.float()
    if not classes:
        return F.mse_loss(student, teacher)
    p = F.softmax(teacher, 1)
    return (p * (F.log_softmax(teacher, 1) - F.log_softmax(student, 1))).sum(1).mean()


LOSSES: dict[str, Callable[[ColorModel, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": l1,
    "mae": l1,
    "mse": mse,
    "mse-kl": mse_kl,
    "ab-classification": ab_classification,
    "ab-classification-readout": ab_classification_readout,
    "ab-classification-vivid": ab_classification_vivid,
    "ab-classification-vivid-batch": ab_classification_vivid_batch,
    "ab-classification-vivid-ciede": ab_classification_vivid_ciede,
}
NEEDS_READOUT = (
    ab_classification_readout,
    ab_classification_vivid,
    ab_classification_vivid_batch,
    ab_classification_vivid_ciede,
)
