"""Image-quality metrics for colorization: PSNR, SSIM, CIEDE2000, colorfulness.

All functions take RGB images as HxWx3 arrays, float in 0..1 (integer arrays
are treated as 0..255 and rescaled). numpy, on the Lab of colorize_cli.color
(its numpy side), so a metric and the pipeline share one formula.
"""

from __future__ import annotations

import numpy as np

from colorize_cli import color

# SSIM constants (Wang et al. 2004, data range 1.0).
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
_SSIM_WIN, _SSIM_SIGMA = 11, 1.5


def _as_float(img: np.ndarray) -> np.ndarray:
    """float64 in 0..1; integer inputs are assumed to be 8-bit."""
    arr = np.asarray(img)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64) / 255.0
    return arr.astype(np.float64)


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_float(pred), _as_float(truth)
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch: {p.shape} vs {t.shape}")
    return p, t


def psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for data range 1.0."""
    p, t = _check_pair(pred, truth)
    # Floor the MSE so identical images give a finite 100 dB instead of inf.
    mse = max(float(np.mean((p - t) ** 2)), 1e-10)
    return float(10.0 * np.log10(1.0 / mse))


def _gaussian_kernel(size: int = _SSIM_WIN, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2.0
    k = np.exp(-(x**2) / (2.0 * sigma**2))
    return k / k.sum()


def _filter_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation over the first two axes.

    Only full windows are kept, which equals skimage's convention of
    filtering then cropping (win-1)/2 pixels per border, so padding mode
    never affects the result.
    """
    n = k.size
    rows = np.lib.stride_tricks.sliding_window_view(x, n, axis=0) @ k
    return np.lib.stride_tricks.sliding_window_view(rows, n, axis=1) @ k


def ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean SSIM over channels, Gaussian window, population covariance."""
    p, t = _check_pair(pred, truth)
    if p.ndim == 2:
        p, t = p[..., None], t[..., None]
    if min(p.shape[:2]) < _SSIM_WIN:
        raise ValueError(f"image must be at least {_SSIM_WIN}x{_SSIM_WIN} for SSIM")
    k = _gaussian_kernel()
    mu_p, mu_t = _filter_valid(p, k), _filter_valid(t, k)
    var_p = _filter_valid(p * p, k) - mu_p**2
    var_t = _filter_valid(t * t, k) - mu_t**2
    cov = _filter_valid(p * t, k) - mu_p * mu_t
    c1, c2 = _SSIM_K1**2, _SSIM_K2**2
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    den = (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    # Each channel's map has the same size, so the global mean is the mean of per-channel means.
    return float(np.mean(num / den))


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (gamma-encoded, D65, 0..1) -> CIE L*a*b* (L in 0..100), float64."""
    return color.rgb_to_lab_np(_as_float(rgb))


def _primed(a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray) -> tuple[np.ndarray, ...]:
    """C' and h' of both colours: a* rescaled so near-neutral colours get a more perceptual hue (the G factor)."""
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0
    c_bar7 = c_bar**7
    g = 0.5 * (1.0 - np.sqrt(c_bar7 / (c_bar7 + 25.0**7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0  # atan2(0,0)=0 as the paper requires
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    return c1p, c2p, h1p, h2p


def _mean_hue(h1p: np.ndarray, h2p: np.ndarray, chroma_zero: np.ndarray) -> np.ndarray:
    """Mean hue, which wraps around 360; with a zero chroma the paper uses the plain sum."""
    h_sum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) <= 180.0,
        h_sum / 2.0,
        np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0),
    )
    return np.where(chroma_zero, h_sum, h_bar)


def _weights(L_bar: np.ndarray, cp_bar: np.ndarray, h_bar: np.ndarray) -> tuple[np.ndarray, ...]:
    """The weighting functions S_L, S_C, S_H and the rotation term R_T."""
    hr = np.radians(h_bar)
    t = (
        1.0
        - 0.17 * np.cos(hr - np.radians(30.0))
        + 0.24 * np.cos(2.0 * hr)
        + 0.32 * np.cos(3.0 * hr + np.radians(6.0))
        - 0.20 * np.cos(4.0 * hr - np.radians(63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    cp_bar7 = cp_bar**7
    r_c = 2.0 * np.sqrt(cp_bar7 / (cp_bar7 + 25.0**7))
    l50 = (L_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / np.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    # Rotation term corrects the blue region's chroma/hue interaction.
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c
    return s_l, s_c, s_h, r_t


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 colour difference (Sharma, Wu & Dalal 2005), kL=kC=kH=1."""
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    L1, a1, b1 = np.moveaxis(lab1, -1, 0)
    L2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c1p, c2p, h1p, h2p = _primed(a1, b1, a2, b2)

    # Hue difference takes the short way round; undefined (0) when a chroma is zero.
    chroma_zero = (c1p * c2p) == 0
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(chroma_zero, 0.0, dh)
    dL = L2 - L1
    dC = c2p - c1p
    dH = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)

    s_l, s_c, s_h, r_t = _weights((L1 + L2) / 2.0, (c1p + c2p) / 2.0, _mean_hue(h1p, h2p, chroma_zero))
    tl, tc, th = dL / s_l, dC / s_c, dH / s_h
    return np.sqrt(tl**2 + tc**2 + th**2 + r_t * tc * th)


def mean_ciede2000(pred_rgb: np.ndarray, truth_rgb: np.ndarray) -> float:
    """Mean per-pixel CIEDE2000 between two sRGB images."""
    p, t = _check_pair(pred_rgb, truth_rgb)
    return float(np.mean(ciede2000(rgb_to_lab(p), rgb_to_lab(t))))


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness M on the 0..255 scale."""
    img = _as_float(rgb) * 255.0  # the metric's published ranges assume 8-bit values
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    std = np.hypot(np.std(rg), np.std(yb))
    mean = np.hypot(np.mean(rg), np.mean(yb))
    return float(std + 0.3 * mean)


def image_metrics(pred_rgb: np.ndarray, truth_rgb: np.ndarray) -> dict[str, float]:
    """All metrics for one prediction; colourfulness is of the prediction only."""
    return {
        "psnr": psnr(pred_rgb, truth_rgb),
        "ssim": ssim(pred_rgb, truth_rgb),
        "ciede2000": mean_ciede2000(pred_rgb, truth_rgb),
        "colorfulness": colorfulness(pred_rgb),
    }
