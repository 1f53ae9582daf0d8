"""The adapted U-Net report: three down blocks, a bottleneck, three up blocks with skip concatenation, tanh out;
"simple" downsamples with max-pool and upsamples by interpolation, "complex" with stride-2 convs and transposed convs.
RGB variants predict 3 channels; YUV variants predict U and V (the luminance comes from the input). All MSE.
Choices: widths 32-64-128, bottleneck 256; tanh mapped to [0,1] for RGB and scaled by 0.62 (the V range) for UV.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colorize_cli.models.base import ColorModel, pad_to
from colorize_cli.registry import register_model

WIDTHS = (32, 64, 128)
UV_RANGE = 0.62


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AdaptedUNet(ColorModel):
    def __init__(self, space: str, complex_: bool, **_):
        super().__init__()
        self.color_space, self.complex = space, complex_
        cin, self.downs, self.pools = 1, nn.ModuleList(), nn.ModuleList()
        for w in WIDTHS:
            self.downs.append(block(cin, w))
            self.pools.append(nn.Conv2d(w, w, 3, stride=2, padding=1) if complex_ else nn.MaxPool2d(2))
            cin = w
        self.bottleneck = block(cin, 256)
        cin, self.ups, self.upconvs = 256, nn.ModuleList(), nn.ModuleList()
        for w in reversed(WIDTHS):
            self.upconvs.append(nn.ConvTranspose2d(cin, w, 2, stride=2) if complex_ else nn.Conv2d(cin, w, 1))
            self.ups.append(block(2 * w, w))
            cin = w
        self.out = nn.Conv2d(cin, 3 if space == "rgb" else 2, 1)

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        h, w = lum.shape[-2:]
        x, skips = pad_to(lum, 8), []
        for down, pool in zip(self.downs, self.pools):
            x = down(x)
            skips.append(x)
            x = pool(x)
        x = self.bottleneck(x)
        for upconv, up in zip(self.upconvs, self.ups):
            x = upconv(x) if self.complex else upconv(F.interpolate(x, scale_factor=2, mode="bilinear"))
            x = up(torch.cat([x, skips.pop()], 1))
        t = torch.tanh(self.out(x))[..., :h, :w]
        return (t + 1) / 2 if self.color_space == "rgb" else t * UV_RANGE


for _kind in ("simple", "complex"):
    for _space in ("rgb", "yuv"):
        register_model(
            f"unet-{_kind}-{_space}",
            color_space=_space,
            loss="mse",
            description=f"adapted U-Net report, {_kind} ({'max-pool' if _kind == 'simple' else 'strided'}), "
            f"{_space.upper()}, MSE",
            kwargs={"space": _space, "complex_": _kind == "complex"},
        )(lambda pretrained_backbone=False, **kw: AdaptedUNet(**kw))
