"""ae-lab: the Lab autoencoder report: stride-2 conv encoder with ReLU, conv + upsampling decoder, two tanh outputs
scaled by 128 to ab, MSE, 256x256 inputs. Choices: four stride-2 stages (64-256 channels), nearest upsampling."""

from __future__ import annotations

import torch
from torch import nn

from colorize_cli.models.base import ColorModel, pad_to
from colorize_cli.registry import register_model


def stage(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True)]


class AELab(ColorModel):
    color_space = "lab"  # raw output is ab / 128 (the tanh), the base adapter scales it by 128

    def __init__(self, **_):
        super().__init__()
        self.enc = nn.Sequential(
            *stage(1, 64, 2),
            *stage(64, 128, 1),
            *stage(128, 128, 2),
            *stage(128, 256, 1),
            *stage(256, 256, 2),
            *stage(256, 256, 1),
            *stage(256, 256, 2),
        )
        up = [nn.Upsample(scale_factor=2, mode="nearest")]
        self.dec = nn.Sequential(
            *stage(256, 256, 1),
            *up,
            *stage(256, 128, 1),
            *up,
            *stage(128, 64, 1),
            *up,
            *stage(64, 32, 1),
            *up,
            nn.Conv2d(32, 2, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        h, w = lum.shape[-2:]
        return self.dec(self.enc(pad_to(lum, 16)))[..., :h, :w]


@register_model(
    "ae-lab",
    color_space="lab",
    loss="mse",
    train_size=256,
    description="Lab autoencoder report: stride-2 encoder, tanh ab x 128, MSE",
)
def ae_lab(pretrained_backbone: bool = False, **kw) -> AELab:
    return AELab(**kw)
