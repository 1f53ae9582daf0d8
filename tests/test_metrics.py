"""Tests for colorize_cli.metrics against published data and independent implementations."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from colorize_cli import metrics

# Sharma, Wu & Dalal (2005), Table 1: L1 a1 b1, L2 a2 b2, expected dE00.
SHARMA_PAIRS = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# ---------------------------------------------------------------- CIEDE2000


def test_ciede2000_sharma_table_vectorised():
    data = np.array(SHARMA_PAIRS)
    assert data.shape == (34, 7)
    got = metrics.ciede2000(data[:, 0:3], data[:, 3:6])
    assert got.shape == (34,)
    np.testing.assert_allclose(got, data[:, 6], atol=1e-4, rtol=0)


def test_ciede2000_symmetric_and_zero_on_identity(rng):
    data = np.array(SHARMA_PAIRS)
    # The paper's table is symmetric in the pair order.
    np.testing.assert_allclose(metrics.ciede2000(data[:, 3:6], data[:, 0:3]), data[:, 6], atol=1e-4, rtol=0)
    lab = rng.uniform([0, -100, -100], [100, 100, 100], size=(4, 5, 3))
    assert metrics.ciede2000(lab, lab).shape == (4, 5)
    np.testing.assert_allclose(metrics.ciede2000(lab, lab), 0.0, atol=1e-12)


# ---------------------------------------------------------------- rgb_to_lab


def test_rgb_to_lab_known_values():
    lab = metrics.rgb_to_lab(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    assert lab.dtype == np.float64
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.01)


# OpenCV's float sRGB->Lab path trilinearly interpolates a 33^3 lookup table, so
# between grid nodes it is off by up to ~0.3 (seen with cv2 5.0). Its values are
# accurate only at the nodes (multiples of 1/32), and its linear-RGB path is exact.


def test_rgb_to_lab_matches_opencv_on_lut_grid(rng):
    rgb = (rng.integers(0, 33, size=(16, 16, 3)) / 32.0).astype(np.float32)
    ref = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).astype(np.float64)
    got = metrics.rgb_to_lab(rgb)
    assert got.shape == rgb.shape
    np.testing.assert_allclose(got, ref, atol=0.05, rtol=0)


def test_rgb_to_lab_matches_opencv_linear_path(rng):
    rgb = rng.uniform(0.0, 1.0, size=(32, 32, 3))
    # IEC 61966-2-1 decoding done here so cv2's exact linear-RGB path checks the rest.
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    ref = cv2.cvtColor(lin.astype(np.float32), cv2.COLOR_LRGB2Lab).astype(np.float64)
    np.testing.assert_allclose(metrics.rgb_to_lab(rgb), ref, atol=0.05, rtol=0)


def test_mean_ciede2000_identical_is_zero_and_grows(rng):
    img = rng.uniform(size=(8, 8, 3))
    assert metrics.mean_ciede2000(img, img) == pytest.approx(0.0, abs=1e-9)
    near = np.clip(img + 0.02, 0, 1)
    far = np.clip(img + 0.2, 0, 1)
    assert 0 < metrics.mean_ciede2000(near, img) < metrics.mean_ciede2000(far, img)


# ---------------------------------------------------------------- PSNR


def test_psnr_constant_offset_is_20db():
    truth = np.full((4, 5, 3), 0.3)
    pred = truth + 0.1  # MSE = 0.01 -> 10*log10(100) = 20 dB
    assert metrics.psnr(pred, truth) == pytest.approx(20.0, abs=1e-9)


def test_psnr_hand_formula_and_identical(rng):
    truth = rng.uniform(size=(3, 4, 3))
    pred = rng.uniform(size=(3, 4, 3))
    mse = sum((p - t) ** 2 for p, t in zip(pred.ravel(), truth.ravel())) / pred.size
    assert metrics.psnr(pred, truth) == pytest.approx(10 * math.log10(1 / mse), rel=1e-12)
    assert metrics.psnr(truth, truth) == pytest.approx(100.0)


def test_psnr_shape_mismatch_raises():
    with pytest.raises(ValueError):
        metrics.psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


# ---------------------------------------------------------------- SSIM


def _ssim_loop(x: np.ndarray, y: np.ndarray) -> float:
    """Direct SSIM: explicit weighted sums over every full 11x11 window."""
    r = 5
    g = [math.exp(-(i * i) / (2 * 1.5**2)) for i in range(-r, r + 1)]
    total = sum(g) ** 2
    w = [[gi * gj / total for gj in g] for gi in g]
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    h, wd, ch = x.shape
    vals = []
    for c in range(ch):
        for i in range(r, h - r):
            for j in range(r, wd - r):
                mx = my = sxx = syy = sxy = 0.0
                for di in range(-r, r + 1):
                    for dj in range(-r, r + 1):
                        k = w[di + r][dj + r]
                        a, b = x[i + di, j + dj, c], y[i + di, j + dj, c]
                        mx += k * a
                        my += k * b
                        sxx += k * a * a
                        syy += k * b * b
                        sxy += k * a * b
                vx, vy, cov = sxx - mx * mx, syy - my * my, sxy - mx * my
                vals.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return sum(vals) / len(vals)


def test_ssim_identical_is_one(rng):
    img = rng.uniform(size=(16, 16, 3))
    assert metrics.ssim(img, img) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_loop_reference(rng):
    x = rng.uniform(size=(16, 16, 3))
    y = np.clip(x + rng.normal(0, 0.1, size=x.shape), 0, 1)
    expected = _ssim_loop(x, y)
    assert expected < 0.99  # make sure the comparison is not trivially ~1
    assert metrics.ssim(x, y) == pytest.approx(expected, abs=1e-6)


def test_ssim_decreases_with_noise(rng):
    # Smooth gradient image so structure is present and noise clearly hurts it.
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    img = np.stack([xx, yy, 0.5 * (xx + yy)], axis=-1)
    noise = rng.normal(size=img.shape)
    scores = [metrics.ssim(np.clip(img + s * noise, 0, 1), img) for s in (0.01, 0.05, 0.2)]
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_ssim_too_small_raises():
    with pytest.raises(ValueError):
        metrics.ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


# ---------------------------------------------------------------- colorfulness


def test_colorfulness_gray_is_zero(rng):
    gray = np.repeat(rng.uniform(size=(8, 8, 1)), 3, axis=-1)
    assert metrics.colorfulness(gray) == pytest.approx(0.0, abs=1e-9)


def test_colorfulness_two_pixels_by_hand():
    img = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    # 0..255 scale: rg = [255, 0], yb = [127.5, 0]
    # std_rg = mean_rg = 127.5, std_yb = mean_yb = 63.75
    # M = (1 + 0.3) * sqrt(127.5^2 + 63.75^2) = 1.3 * 63.75 * sqrt(5) = 185.31413...
    assert metrics.colorfulness(img) == pytest.approx(185.3141336, abs=1e-6)


def test_colorfulness_grows_with_saturation(rng):
    base = rng.uniform(size=(16, 16, 3))
    gray = base.mean(axis=-1, keepdims=True)
    low = gray + 0.3 * (base - gray)
    assert metrics.colorfulness(base) > metrics.colorfulness(low) > 0


# ---------------------------------------------------------------- image_metrics


def test_image_metrics_keys_and_values(rng):
    truth = rng.uniform(size=(16, 16, 3))
    pred = np.clip(truth + 0.05, 0, 1)
    out = metrics.image_metrics(pred, truth)
    assert set(out) == {"psnr", "ssim", "ciede2000", "colorfulness"}
    assert all(isinstance(v, float) for v in out.values())
    assert out["psnr"] == pytest.approx(metrics.psnr(pred, truth))
    assert out["ssim"] == pytest.approx(metrics.ssim(pred, truth))
    assert out["ciede2000"] == pytest.approx(metrics.mean_ciede2000(pred, truth))
    assert out["colorfulness"] == pytest.approx(metrics.colorfulness(pred))
