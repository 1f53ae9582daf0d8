"""colorize_cli.color: the torch and numpy / OpenCV sides held to each other, to independent code and
published values."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from colorize_cli import color, metrics, train_data


def _nchw(hw3: np.ndarray) -> torch.Tensor:
    """HxWx3 numpy -> (1,3,H,W) torch."""
    return torch.from_numpy(np.ascontiguousarray(hw3)).permute(2, 0, 1)[None]


def _hw3(nchw: torch.Tensor) -> np.ndarray:
    return nchw[0].permute(1, 2, 0).numpy()


def _random_rgb(seed: int, h: int = 64, w: int = 48) -> np.ndarray:
    """Uniform colours plus the awkward ones: exact 0 and 1, primaries, values around the sRGB knee (0.04045)."""
    rng = np.random.default_rng(seed)
    rgb = rng.random((h, w, 3))
    rgb[0, :8] = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]]
    rgb[1] = rng.uniform(0.0, 0.08, (w, 3))  # dark: both sides of the sRGB and the Lab knees
    rgb[2, :3] = [[0.04045, 0.04045, 0.04045], [0.04, 0.05, 0.03], [0.5, 0.5, 0.5]]
    return rgb.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rgb_to_lab_matches_independent_numpy(seed):
    rgb = _random_rgb(seed)
    ours = _hw3(color.rgb_to_lab(_nchw(rgb))).astype(np.float64)
    ref = metrics.rgb_to_lab(rgb.astype(np.float64))
    np.testing.assert_allclose(ours, ref, atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    "rgb, lab",
    [
        ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        ((1.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032)),  # sRGB primaries, D65 (Lindbloom)
        ((0.0, 1.0, 0.0), (87.7347, -86.1827, 83.1793)),
        ((0.0, 0.0, 1.0), (32.2970, 79.1875, -107.8602)),
    ],
)
def test_rgb_to_lab_reference_values(rgb, lab):
    out = color.rgb_to_lab(torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1)).flatten()
    assert torch.allclose(out, torch.tensor(lab, dtype=torch.float64), atol=0.01), out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lab_round_trip(dtype):
    rgb = _nchw(_random_rgb(3)).to(dtype)
    back = color.lab_to_rgb(color.rgb_to_lab(rgb))
    assert back.dtype == dtype and back.shape == rgb.shape
    assert (back - rgb).abs().max().item() < 1e-4


def test_lab_round_trip_without_clip_is_also_exact():
    """In-gamut colours must not rely on the clip to come back."""
    rgb = _nchw(_random_rgb(4))
    back = color.lab_to_rgb(color.rgb_to_lab(rgb), clip=False)
    assert (back - rgb).abs().max().item() < 1e-4


def test_yuv_round_trip_and_gray_has_no_chroma():
    rgb = _nchw(_random_rgb(5))
    yuv = color.rgb_to_yuv(rgb)
    assert (color.yuv_to_rgb(yuv) - rgb).abs().max().item() < 1e-5
    gray = torch.linspace(0, 1, 11).view(1, 1, 1, 11).expand(1, 3, 1, 11)
    gyuv = color.rgb_to_yuv(gray)
    assert torch.allclose(gyuv[:, 0], gray[:, 0], atol=1e-6)
    assert gyuv[:, 1:].abs().max().item() < 1e-4  # the published BT.601 U row sums to 1e-5, not 0


def test_yuv_to_rgb_clips():
    yuv = torch.tensor([[1.0, 0.6, 0.6], [0.0, -0.6, -0.6]]).T.reshape(1, 3, 1, 2)
    out = color.yuv_to_rgb(yuv)
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0


def _unclipped_mask(lab: torch.Tensor) -> torch.Tensor:
    raw = color.lab_to_rgb(lab, clip=False)
    return ((raw >= 0) & (raw <= 1)).all(1)


def test_merge_luminance_keeps_l_for_random_l_and_ab():
    g = torch.Generator().manual_seed(0)
    lum = torch.rand(2, 1, 40, 36, generator=g)  # L 0..100
    ab = torch.rand(2, 2, 40, 36, generator=g) * 60 - 30  # a,b in -30..30
    out = color.merge_luminance(lum, ab)
    assert out.shape == (2, 3, 40, 36)
    mask = _unclipped_mask(torch.cat([lum * 100, ab], 1))
    assert mask.float().mean().item() > 0.3  # the check below must cover many pixels
    err = (color.rgb_to_lab(out)[:, 0] - lum[:, 0] * 100).abs()
    assert err[mask].max().item() < 0.05


def test_merge_luminance_of_real_colours_reproduces_them():
    """L and ab from a genuine photo-like colour: in gamut everywhere, so the merge gives that colour back."""
    rgb = _nchw(_random_rgb(6))
    lab = color.rgb_to_lab(rgb)
    out = color.merge_luminance(lab[:, :1] / 100, lab[:, 1:])
    assert (out - rgb).abs().max().item() < 1e-4


def test_merge_luminance_upsamples_quarter_size_chroma():
    g = torch.Generator().manual_seed(1)
    lum = 0.2 + 0.6 * torch.rand(1, 1, 36, 28, generator=g)  # mid L keeps most moderate ab in gamut
    ab = torch.rand(1, 2, 9, 7, generator=g) * 30 - 15
    out = color.merge_luminance(lum, ab)
    assert out.shape == (1, 3, 36, 28)
    full_ab = color.upsample(ab, (36, 28))
    mask = _unclipped_mask(torch.cat([lum * 100, full_ab], 1))
    assert mask.float().mean().item() > 0.5
    err = (color.rgb_to_lab(out)[:, 0] - lum[:, 0] * 100).abs()
    assert err[mask].max().item() < 0.05


def test_merge_luminance_accepts_half_chroma():
    lum = torch.full((1, 1, 8, 8), 0.5)
    ab = torch.full((1, 2, 2, 2), 10.0, dtype=torch.float16)
    out = color.merge_luminance(lum, ab)
    assert out.dtype == torch.float32 and out.shape == (1, 3, 8, 8)
    assert torch.isfinite(out).all()


def test_upsample_identity_at_same_size():
    x = torch.rand(1, 2, 5, 7)
    assert color.upsample(x, (5, 7)) is x
    assert color.upsample(x, (10, 14)).shape == (1, 2, 10, 14)


@pytest.mark.parametrize("seed", [0, 7])
def test_numpy_srgb_luminance_equals_rgb_to_luminance(seed):
    rgb = _random_rgb(seed, 50, 30)
    ours = color.srgb_luminance(rgb)
    ref = color.rgb_to_luminance(_nchw(rgb))[0, 0].numpy()
    assert ours.shape == (50, 30) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    assert ours[0, 0] == 0.0 and abs(ours[0, 1] - 1.0) < 1e-5


def test_rgb_to_lab_gradient_is_finite_at_edges():
    vals = torch.tensor([0.0, 1.0, 0.04045, 1e-8, -0.1, 1.2, 0.0031308, 0.5], dtype=torch.float32)
    rgb = torch.stack(torch.meshgrid(vals, vals, indexing="ij")[:2] + (vals.flip(0)[:, None].expand(8, 8),))[None]
    rgb = rgb.clone().requires_grad_(True)
    color.lab_to_rgb(color.rgb_to_lab(rgb), clip=False).sum().backward()
    assert torch.isfinite(rgb.grad).all()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-0.5, 1.5, allow_nan=False, width=32), min_size=3, max_size=48))
@example([0.0, 0.0, 0.0])
@example([1.0, 1.0, 1.0])
@example([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, -0.5, 1.5, 0.04045])
def test_rgb_to_lab_never_nan(values):
    n = len(values) // 3 * 3
    rgb = torch.tensor(values[:n], dtype=torch.float32).view(-1, 3).T.reshape(1, 3, 1, -1)
    for dtype in (torch.float32, torch.float64):
        lab = color.rgb_to_lab(rgb.to(dtype))
        assert torch.isfinite(lab).all(), (values, lab)
    lum = color.rgb_to_luminance(rgb)
    assert torch.isfinite(lum).all()


_LAB = st.tuples(
    st.floats(-10, 110, allow_nan=False), st.floats(-200, 200, allow_nan=False), st.floats(-200, 200, allow_nan=False)
)


@settings(max_examples=50, deadline=None)
@given(st.lists(_LAB, min_size=1, max_size=16))
@example([(0.0, 0.0, 0.0), (100.0, 0.0, 0.0), (-10.0, -200.0, 200.0), (110.0, 200.0, -200.0), (8.0, 0.0, 0.0)])
def test_lab_to_rgb_always_in_unit_range(labs):
    lab = torch.tensor(labs, dtype=torch.float32).T.reshape(1, 3, 1, -1)
    rgb = color.lab_to_rgb(lab)
    assert torch.isfinite(rgb).all()
    assert rgb.min().item() >= 0.0 and rgb.max().item() <= 1.0
    assert torch.isfinite(color.lab_to_rgb(lab, clip=False)).all()


@pytest.mark.parametrize("h,H", [(9, 36), (7, 50), (48, 1000), (5, 5)])
def test_upsample_rows_strips_join_into_the_whole_upsampling(h, H):
    """Any split of the rows gives exactly the rows of one bilinear upsampling: strips of a huge scan join
    seamlessly."""
    ab = torch.randn(2, h, 13, generator=torch.Generator().manual_seed(h)) * 40
    whole = color.upsample(ab[None], (H, 13))[0]
    cuts = [0, 1, H // 3, H // 3 + 1, H - 1, H]
    strips = torch.cat([color.upsample_rows(ab, H, a, b) for a, b in zip(cuts, cuts[1:]) if b > a], 1)
    assert strips.shape == whole.shape
    assert (strips - whole).abs().max().item() < 1e-3  # ab units: float rounding only


@pytest.mark.parametrize("seed", [0, 3])
def test_numpy_and_torch_sides_agree(seed):
    """One formula, two runtimes: linear light, Lab and luminance from numpy match torch's (whose matrix is
    float32) closely."""
    rgb = _random_rgb(seed)
    np.testing.assert_allclose(color.srgb_to_linear_np(rgb), _hw3(color.srgb_to_linear(_nchw(rgb))), atol=1e-6, rtol=0)
    lab64 = color.rgb_to_lab_np(rgb.astype(np.float64))
    np.testing.assert_allclose(lab64, _hw3(color.rgb_to_lab(_nchw(rgb.astype(np.float64)))), atol=1e-4, rtol=0)
    y = rgb[..., :1].astype(np.float32)
    np.testing.assert_allclose(
        color.luminance_from_y(y[..., 0]),
        color.rgb_to_luminance(_nchw(np.repeat(color.linear_to_srgb(torch.from_numpy(y)).numpy(), 3, 2)))[0, 0].numpy(),
        atol=2e-5,
        rtol=0,
    )


def test_one_set_of_constants():
    """The numpy luma row is the torch matrix's Y row, and the gray tables are srgb_luminance of the gray levels."""
    assert np.array_equal(color.Y_OF_LINEAR_RGB, color._RGB2XYZ[1].numpy())
    ramp = np.repeat((np.arange(256, dtype=np.float32) * np.float32(1 / 255))[:, None], 3, 1)[None]
    np.testing.assert_array_equal(color.gray_table(256), color.srgb_luminance(ramp)[0])
    g16 = np.array([[0, 1, 257, 30000, 65535]], np.uint16)
    np.testing.assert_allclose(
        color.gray_luminance(g16)[0],
        color.srgb_luminance(np.repeat((g16[0].astype(np.float32) / 65535)[:, None], 3, 1)[None])[0],
        atol=1e-6,
        rtol=0,
    )


@pytest.mark.parametrize("h,w,sh,sw", [(40, 56, 10, 14), (1, 1, 1, 1), (1, 5, 1, 2), (4, 1, 2, 1)])
def test_opencv_merge_matches_torch_merge(h: int, w: int, sh: int, sw: int):
    """The CPU merge (OpenCV's Lab -> sRGB) lands on the torch formula's 8-bit value, within one level, down to a
    1x1 image (which OpenCV 5.1 mistakes for a scalar in its arithmetic)."""
    rng = np.random.default_rng(5)
    lum = rng.random((h, w)).astype(np.float32)
    ab = torch.from_numpy(rng.uniform(-60, 60, (2, sh, sw)).astype(np.float32))
    cv = color.merge_luminance_cv(lum, color.upsample_ab_cv(ab, h, w), np.uint8)
    ref = color.merge_luminance(torch.from_numpy(lum)[None, None], ab[None])[0].permute(1, 2, 0)
    ref8 = (ref * 255).round().to(torch.uint8).numpy()
    assert cv.shape == (h, w, 3) and np.abs(cv.astype(int) - ref8.astype(int)).max() <= 1


def test_train_chroma_level_opencv_lab_matches_ours():
    """train_data.chroma_level keeps OpenCV's float Lab: measured here equal to ours (mean |ab| within 0.05)."""
    rng = np.random.default_rng(9)
    for _ in range(4):
        rgb = np.clip(rng.random((80, 80, 3)) * rng.uniform(0.2, 1.0), 0, 1).astype(np.float32)
        small = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA)
        ours = np.abs(color.rgb_to_lab_np(small.astype(np.float64))[..., 1:]).mean()
        assert abs(train_data.chroma_level(rgb) - ours) < 0.05
