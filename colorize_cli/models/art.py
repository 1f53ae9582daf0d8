"""The art-colorization report's three RGB models, all trained with MSE: a plain CNN, a conv autoencoder and a VAE.

Choices where the report is vague: widths 64-256; the autoencoder downsamples 4 times with stride-2 convs among its 8;
the VAE works at a fixed 128x128 (its linear layers need one size; the pipeline upsamples its chroma), latent 256.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colorize_cli.models.base import ColorModel, pad_to
from colorize_cli.registry import register_model


def conv(cin: int, cout: int, stride: int = 1, bn: bool = False, act: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1)]
    return layers + ([nn.BatchNorm2d(cout)] if bn else []) + ([nn.ReLU(inplace=True)] if act else [])


def tconv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True)]


class CNNRGB(ColorModel):
    """6 convs, batch norm after the 2nd, 4th and 5th, ReLU except after the last (linear RGB out)."""

    color_space = "rgb"

    def __init__(self, **_):
        super().__init__()
        self.net = nn.Sequential(
            *conv(1, 64),
            *conv(64, 64, bn=True),
            *conv(64, 128),
            *conv(128, 128, bn=True),
            *conv(128, 64, bn=True),
            *conv(64, 3, act=False),
        )

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        return self.net(lum)


class AERGB(ColorModel):
    """8-conv encoder (4 of them stride 2), decoder of 4 transposed convs and 1 conv, ReLU, sigmoid out."""

    color_space = "rgb"

    def __init__(self, **_):
        super().__init__()
        self.enc = nn.Sequential(
            *conv(1, 64, 2),
            *conv(64, 64),
            *conv(64, 128, 2),
            *conv(128, 128),
            *conv(128, 256, 2),
            *conv(256, 256),
            *conv(256, 256, 2),
            *conv(256, 256),
        )
        self.dec = nn.Sequential(
            *tconv(256, 256),
            *tconv(256, 128),
            *tconv(128, 64),
            *tconv(64, 32),
            nn.Conv2d(32, 3, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        h, w = lum.shape[-2:]
        return self.dec(self.enc(pad_to(lum, 16)))[..., :h, :w]


class VAERGB(ColorModel):
    """5 stride-2 convs, flatten, linear mean and log-variance, a sampled latent, linear, 5 transposed convs."""

    color_space = "rgb"
    size = 128

    def __init__(self, latent: int = 256, **_):
        super().__init__()
        chans = (1, 32, 64, 128, 256, 256)
        self.enc = nn.Sequential(*[m for i in range(5) for m in conv(chans[i], chans[i + 1], 2)])
        flat = 256 * (self.size // 32) ** 2
        self.mu, self.logvar = nn.Linear(flat, latent), nn.Linear(flat, latent)
        self.expand = nn.Linear(latent, flat)
        self.dec = nn.Sequential(
            *[m for i in range(4) for m in tconv(chans[5 - i], chans[4 - i])],
            nn.ConvTranspose2d(32, 3, 3, stride=2, padding=1, output_padding=1),
            nn.Sigmoid(),
        )
        self.kl = torch.zeros(())

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(lum, size=(self.size, self.size), mode="bilinear", align_corners=False)
        h = self.enc(x).flatten(1)
        mu, logvar = self.mu(h), self.logvar(h).clamp(-10, 10)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu  # the mean at inference
        self.kl = -0.5 * torch.mean(1 + logvar - mu**2 - logvar.exp())  # read by the mse-kl loss
        y = self.expand(z).view(-1, 256, self.size // 32, self.size // 32)
        return self.dec(y)


@register_model("cnn-rgb", color_space="rgb", loss="mse", description="art report: plain 6-layer CNN, RGB, MSE")
def cnn_rgb(pretrained_backbone: bool = False, **kw) -> CNNRGB:
    return CNNRGB(**kw)


@register_model("ae-rgb", color_space="rgb", loss="mse", description="art report: conv autoencoder, RGB, MSE")
def ae_rgb(pretrained_backbone: bool = False, **kw) -> AERGB:
    return AERGB(**kw)


@register_model("vae-rgb", color_space="rgb", loss="mse-kl", description="art report: VAE, RGB, MSE + KL")
def vae_rgb(pretrained_backbone: bool = False, **kw) -> VAERGB:
    return VAERGB(**kw)
