"""unet-rgb: the U-Net autoencoder report (160x160 input, RGB out, MAE, Adam 1e-3).

Five stride-2 3x3 convs (128, 128, 256, 512, 512; batch norm on the 3rd-5th), five stride-2 transposed convs each
concatenated with its encoder twin, the last with the input, a final 2x2 conv to RGB; LeakyReLU throughout.
Choices where the report is vague: transposed convs 3x3 with output padding (exact doubling), decoder widths 512, 256,
128, 128, 64 (9.7M parameters), sigmoid on the output, dropout 0.1 after the first two up-convs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colorize_cli.models.base import ColorModel, pad_to
from colorize_cli.registry import register_model

ENC = (128, 128, 256, 512, 512)
DEC = (512, 256, 128, 128, 64)


def down(cin: int, cout: int, bn: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, stride=2, padding=1)] + ([nn.BatchNorm2d(cout)] if bn else [])
    return nn.Sequential(*layers, nn.LeakyReLU(0.2, inplace=True))


def up(cin: int, cout: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Dropout2d(dropout),
    )


class UNetRGB(ColorModel):
    color_space = "rgb"

    def __init__(self, pretrained_backbone: bool = False, dropout: float = 0.1):
        super().__init__()
        chans = (1,) + ENC
        self.downs = nn.ModuleList(down(chans[i], chans[i + 1], bn=i >= 2) for i in range(5))
        skips = tuple(reversed(ENC[:-1])) + (1,)  # 512, 256, 128, 128, then the input
        cin, ups = ENC[-1], []
        for i, cout in enumerate(DEC):
            ups.append(up(cin, cout, dropout if i < 2 else 0.0))
            cin = cout + skips[i]
        self.ups = nn.ModuleList(ups)
        self.out = nn.Conv2d(cin, 3, 2)

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        h, w = lum.shape[-2:]
        x = pad_to(lum, 32)
        feats = [x]
        for d in self.downs:
            feats.append(d(feats[-1]))
        y = feats.pop()
        for u in self.ups:
            y = torch.cat([u(y), feats.pop()], 1)
        y = F.pad(y, (0, 1, 0, 1), mode="replicate")  # a 2x2 conv shrinks by one
        return torch.sigmoid(self.out(y))[..., :h, :w]


@register_model(
    "unet-rgb",
    color_space="rgb",
    loss="mae",
    lr=1e-3,
    train_size=160,
    description="U-Net autoencoder report: 5 stride-2 convs, LeakyReLU, RGB, MAE",
)
def unet_rgb(pretrained_backbone: bool = False, **kw) -> UNetRGB:
    return UNetRGB(**kw)
