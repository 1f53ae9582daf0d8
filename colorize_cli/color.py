"""Colour-space conversions in torch, batched (N,C,H,W), both ways, and the luminance merge.

Lab follows the sRGB / D65 definitions exactly so the merge keeps the input's luminance; L is 0..100, ab roughly -128..127.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_WHITE = (0.95047, 1.0, 1.08883)  # D65
_EPS = 216 / 24389
_KAPPA = 24389 / 27
_RGB2XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_XYZ2RGB = torch.linalg.inv(_RGB2XYZ)
_RGB2YUV = torch.tensor([[0.299, 0.587, 0.114],
                         [-0.14713, -0.28886, 0.436],
                         [0.615, -0.51499, -0.10001]])
_YUV2RGB = torch.linalg.inv(_RGB2YUV)


def _mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix to the channel axis of (N,3,H,W)."""
    return torch.einsum("ij,njhw->nihw", m.to(x.device, x.dtype), x)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    return torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB 0..1 -> Lab (L 0..100)."""
    xyz = _mix(_RGB2XYZ, srgb_to_linear(rgb))
    white = torch.tensor(_WHITE, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    t = xyz / white
    f = torch.where(t > _EPS, t.clamp(min=_EPS) ** (1 / 3), (_KAPPA * t + 16) / 116)
    return torch.cat([116 * f[:, 1:2] - 16, 500 * (f[:, 0:1] - f[:, 1:2]), 200 * (f[:, 1:2] - f[:, 2:3])], 1)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab -> sRGB; out-of-gamut colours are clipped unless clip=False (used to test gamut)."""
    fy = (lab[:, 0:1] + 16) / 116
    f = torch.cat([fy + lab[:, 1:2] / 500, fy, fy - lab[:, 2:3] / 200], 1)
    t = torch.where(f ** 3 > _EPS, f ** 3, (116 * f - 16) / _KAPPA)
    # Y uses L directly below the knee so dark grays round-trip exactly.
    t[:, 1:2] = torch.where(lab[:, 0:1] > _KAPPA * _EPS, fy ** 3, lab[:, 0:1] / _KAPPA)
    white = torch.tensor(_WHITE, device=lab.device, dtype=lab.dtype).view(1, 3, 1, 1)
    rgb = linear_to_srgb(_mix(_XYZ2RGB, t * white))
    return rgb.clamp(0, 1) if clip else rgb


def rgb_to_luminance(rgb: torch.Tensor) -> torch.Tensor:
    """The model input: Lab L scaled to 0..1, (N,1,H,W)."""
    return rgb_to_lab(rgb)[:, :1] / 100


def rgb_to_yuv(rgb: torch.Tensor) -> torch.Tensor:
    return _mix(_RGB2YUV, rgb)


def yuv_to_rgb(yuv: torch.Tensor) -> torch.Tensor:
    return _mix(_YUV2RGB, yuv).clamp(0, 1)


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Smooth (bilinear) resize of chroma; identity when already at size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def upsample_rows(ab: torch.Tensor, height: int, y0: int, y1: int) -> torch.Tensor:
    """Rows y0..y1 of the bilinear upsampling of ab (C,h,W) to height, without building the other rows: the same
    source positions and weights as F.interpolate(align_corners=False), so strips join into the whole image."""
    h = ab.shape[-2]
    if h == height:
        return ab[:, y0:y1]
    src = ((torch.arange(y0, y1, device=ab.device, dtype=torch.float32) + 0.5) * (h / height) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=h - 1)
    i1 = (i0 + 1).clamp(max=h - 1)
    frac = (src - i0).to(ab.dtype)[:, None]
    return ab[:, i0] * (1 - frac) + ab[:, i1] * frac


def merge_luminance(lum: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Full-resolution L (N,1,H,W, 0..1) + chroma ab at any size -> sRGB at L's size.

    The chroma is the only thing predicted; every detail comes from the input's own luminance.
    """
    ab = upsample(ab.to(lum.dtype), tuple(lum.shape[-2:]))
    return lab_to_rgb(torch.cat([lum * 100, ab], 1))
