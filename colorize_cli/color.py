"""The colour maths, one set of constants: sRGB <-> linear, CIE Y, Lab (sRGB / D65) and YUV, in torch (batched
N,C,H,W, for the models and the GPU merge) and in numpy / OpenCV (HxWx3 or HxW, for the workers, the CPU merge,
the metrics and the film tables) side by side. tests/test_color.py holds the two sides to each other.

Lab follows the sRGB / D65 definitions exactly so the merge keeps the input's luminance; L is 0..100, ab roughly
-128..127. OpenCV's own Lab is used only where a test measures it equal: the CPU merge (test_pipeline) and train's
chroma level (test_color).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------- constants (IEC 61966-2-1, CIE 15)
SRGB_KNEE, LINEAR_KNEE = 0.04045, 0.0031308  # where the sRGB curve turns linear, encoded / linear side
SRGB_SLOPE, SRGB_OFFSET, SRGB_SCALE, SRGB_GAMMA = 12.92, 0.055, 1.055, 2.4
D65_WHITE = (0.95047, 1.0, 1.08883)
CIE_EPS = 216 / 24389
CIE_KAPPA = 24389 / 27
RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
Y_OF_LINEAR_RGB = RGB_TO_XYZ[1].astype(np.float32)  # linear sRGB (D65) -> CIE Y
RGB_TO_YUV = np.array([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])
STRIP_PIXELS = 1 << 21  # pixels per strip of full-resolution float work: memory bounded for any size

_RGB2XYZ = torch.tensor(RGB_TO_XYZ, dtype=torch.float32)
_XYZ2RGB = torch.linalg.inv(_RGB2XYZ)
_RGB2YUV = torch.tensor(RGB_TO_YUV, dtype=torch.float32)
_YUV2RGB = torch.linalg.inv(_RGB2YUV)

# ---------------------------------------------------------------- torch


def _mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix to the channel axis of (N,3,H,W)."""
    return torch.einsum("ij,njhw->nihw", m.to(x.device, x.dtype), x)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(
        rgb <= SRGB_KNEE, rgb / SRGB_SLOPE, ((rgb.clamp(min=0) + SRGB_OFFSET) / SRGB_SCALE) ** SRGB_GAMMA
    )


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    return torch.where(
        lin <= LINEAR_KNEE, lin * SRGB_SLOPE, SRGB_SCALE * lin.clamp(min=LINEAR_KNEE) ** (1 / SRGB_GAMMA) - SRGB_OFFSET
    )


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB 0..1 -> Lab (L 0..100)."""
    xyz = _mix(_RGB2XYZ, srgb_to_linear(rgb))
    white = torch.tensor(D65_WHITE, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    t = xyz / white
    f = torch.where(t > CIE_EPS, t.clamp(min=CIE_EPS) ** (1 / 3), (CIE_KAPPA * t + 16) / 116)
    return torch.cat([116 * f[:, 1:2] - 16, 500 * (f[:, 0:1] - f[:, 1:2]), 200 * (f[:, 1:2] - f[:, 2:3])], 1)


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab -> sRGB; out-of-gamut colours are clipped unless clip=False (used to test gamut)."""
    fy = (lab[:, 0:1] + 16) / 116
    f = torch.cat([fy + lab[:, 1:2] / 500, fy, fy - lab[:, 2:3] / 200], 1)
    t = torch.where(f**3 > CIE_EPS, f**3, (116 * f - 16) / CIE_KAPPA)
    # Y uses L directly below the knee so dark grays round-trip exactly.
    t[:, 1:2] = torch.where(lab[:, 0:1] > CIE_KAPPA * CIE_EPS, fy**3, lab[:, 0:1] / CIE_KAPPA)
    white = torch.tensor(D65_WHITE, device=lab.device, dtype=lab.dtype).view(1, 3, 1, 1)
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


def median3(x: torch.Tensor) -> torch.Tensor:
    """3x3 median of each channel (N,C,h,w), edges replicated: removes a lone cell whose value jumped far from all
    its neighbours and keeps straight edges, which a mean would blur."""
    n, c, h, w = x.shape
    cells = F.unfold(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3).view(n, c, 9, h * w)
    return cells.median(2).values.view(n, c, h, w)


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
    ab = upsample(ab.to(lum.dtype), (lum.shape[-2], lum.shape[-1]))
    return lab_to_rgb(torch.cat([lum * 100, ab], 1))


# ---------------------------------------------------------------- numpy / OpenCV


def srgb_to_linear_np(rgb: np.ndarray) -> np.ndarray:
    """The numpy twin of srgb_to_linear (negative values treated as 0 above the knee, as there)."""
    return np.where(rgb <= SRGB_KNEE, rgb / SRGB_SLOPE, ((np.maximum(rgb, 0) + SRGB_OFFSET) / SRGB_SCALE) ** SRGB_GAMMA)


def luminance_from_y(y: np.ndarray) -> np.ndarray:
    """CIE relative luminance Y (0..1) -> Lab L / 100 (float32)."""
    lum = np.where(y > CIE_EPS, 116 * np.cbrt(np.maximum(y, CIE_EPS)) - 16, CIE_KAPPA * y)
    return (lum / 100).astype(np.float32)


def srgb_luminance(rgb: np.ndarray) -> np.ndarray:
    """Lab L / 100 of an sRGB image (HxWx3, 0..1), as rgb_to_luminance computes it, in numpy for the workers.
    In strips of rows: the float temporaries of a whole 50-megapixel scan would take gigabytes."""
    h, w = rgb.shape[:2]
    out = np.empty((h, w), np.float32)
    rows = max(1, STRIP_PIXELS // max(1, w))
    for y0 in range(0, h, rows):
        out[y0 : y0 + rows] = luminance_from_y(srgb_to_linear_np(rgb[y0 : y0 + rows]) @ Y_OF_LINEAR_RGB)
    return out


_GRAY_TABLES: dict[int, np.ndarray] = {}


def gray_table(levels: int) -> np.ndarray:
    """srgb_luminance of every gray level of an integer type (256 or 65536), computed by that very function, once."""
    table = _GRAY_TABLES.get(levels)
    if table is None:
        ramp = np.arange(levels, dtype=np.float32) * np.float32(1 / (levels - 1))
        table = _GRAY_TABLES[levels] = srgb_luminance(np.repeat(ramp[:, None], 3, 1)[None])[0]
    return table


def gray_luminance(gray: np.ndarray) -> np.ndarray:
    """Lab L / 100 of a uint8 or uint16 gray plane (HxW), by lookup (OpenCV's SIMD LUT for 8-bit)."""
    if gray.dtype == np.uint8:
        return cv2.LUT(gray, gray_table(256))
    return gray_table(65536)[gray]


def rgb_to_lab_np(rgb: np.ndarray) -> np.ndarray:
    """sRGB (0..1, float64) -> Lab (L 0..100), float64: the metrics' reference, the same formula as rgb_to_lab."""
    xyz = srgb_to_linear_np(rgb) @ RGB_TO_XYZ.T / np.array(D65_WHITE)
    # Linear segment near black avoids the infinite slope of the cube root.
    f = np.where(xyz > CIE_EPS, np.cbrt(xyz), (CIE_KAPPA * xyz + 16.0) / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def upsample_ab_cv(ab: torch.Tensor, h: int, w: int) -> np.ndarray:
    """Chroma (2,h',w', on the CPU) -> an HxWx3 float32 Lab image whose L (channel 0) merge_luminance_cv fills in:
    bilinear with half-pixel centres like F.interpolate(align_corners=False), three channels (OpenCV's fastest
    resize path)."""
    small = cv2.merge([np.zeros(ab.shape[1:], np.float32), ab[0].numpy(), ab[1].numpy()])
    return small if small.shape[:2] == (h, w) else cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def merge_luminance_cv(lum: np.ndarray, lab: np.ndarray, dtype: type) -> np.ndarray:
    """The CPU merge_luminance: L / 100 (HxW) into channel 0 of a Lab image (HxWx3, its ab already at full size)
    -> sRGB HxWx3 in dtype, rounded and clipped as the torch path's rounding does."""
    # numpy, not cv2.multiply(lum, 100.0): OpenCV 5.1 reads a 1x1 array beside a Python scalar as a 4x1 Scalar.
    lab = cv2.insertChannel(lum * np.float32(100.0), lab, 0)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    np.maximum(rgb, 0.0, out=rgb)
    if dtype == np.uint8:  # saturate_cast rounds half to even, as torch.round
        return cv2.convertScaleAbs(rgb, alpha=255.0)
    np.minimum(rgb, 1.0, out=rgb)
    if dtype == np.float32:
        return rgb
    return np.rint(rgb * np.float32(np.iinfo(dtype).max)).astype(dtype)
