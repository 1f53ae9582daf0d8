"""The Python API: arrays in, arrays out, and files through the very path the CLI takes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from colorize_cli import ColorizeError, Colorizer, list_models
from colorize_cli.cli import app
from colorize_cli.imaging import ImageError

ORIGINALS = Path(__file__).resolve().parent.parent / "examples" / "originals"


@pytest.fixture(scope="module")
def colorizer(one_thread) -> Colorizer:
    return Colorizer.from_pretrained(device="cpu", render_size=64)  # the default, as the CLI runs it


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    img = cv2.imread(str(sorted(ORIGINALS.glob("*.jpg"))[0]), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(img, (120, 90), interpolation=cv2.INTER_AREA)


def lightness(rgb: np.ndarray) -> np.ndarray:
    """Lab L (0..100) of an 8-bit RGB image."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[..., 0].astype(float) * 100 / 255


def test_gray_uint8_gives_colour_of_the_same_size_and_lightness(colorizer: Colorizer, gray: np.ndarray):
    out = colorizer.colorize(gray)
    assert out.shape == (*gray.shape, 3) and out.dtype == np.uint8
    assert np.abs(lightness(out) - lightness(np.dstack([gray] * 3))).mean() < 1.0
    assert np.abs(out.astype(int) - out[..., :1]).mean() > 1, "no colour at all"


def test_depth_channels_and_alpha_are_kept(colorizer: Colorizer, gray: np.ndarray):
    deep = colorizer.colorize(gray.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and deep.shape == (*gray.shape, 3)
    assert np.abs(deep.astype(int) // 257 - colorizer.colorize(gray)).max() <= 1
    rgba = np.dstack([gray] * 3 + [np.full_like(gray, 77)])
    out = colorizer.colorize(rgba)
    assert out.shape == (*gray.shape, 4) and (out[..., 3] == 77).all()
    flt = colorizer.colorize(gray.astype(np.float32) / 255)
    assert flt.dtype == np.float32 and 0 <= flt.min() and flt.max() <= 1


def test_a_batch_matches_one_at_a_time(colorizer: Colorizer, gray: np.ndarray):
    images = [gray, gray[:, ::-1].copy(), gray[:60, :100].copy()]
    batch = colorizer.colorize_batch(images)
    for img, got in zip(images, batch):
        assert np.abs(got.astype(int) - colorizer.colorize(img)).max() <= 1


def test_colorize_file_writes_what_the_cli_writes(colorizer: Colorizer, gray: np.ndarray, tmp_path: Path):
    src = tmp_path / "scan.png"
    cv2.imwrite(str(src), gray)
    colorizer.colorize_file(src, tmp_path / "api" / "scan.png")
    res = CliRunner().invoke(
        app,
        ["image", str(src), "-o", str(tmp_path / "cli"), "--render-size", "64", "--workers", "0", "--device", "cpu"],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "api" / "scan.png").read_bytes() == (tmp_path / "cli" / "scan.png").read_bytes()


def test_files_that_fail_are_errors_not_crashes(colorizer: Colorizer, tmp_path: Path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ColorizeError, match="bad.jpg"):
        colorizer.colorize_file(bad, tmp_path / "out.jpg")
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((20, 30), 128, np.uint8))
    with pytest.raises(ColorizeError, match="would overwrite the input"):
        colorizer.colorize_file(good, good)
    results = colorizer.colorize_files([(bad, tmp_path / "o1.png"), (good, tmp_path / "o2.png")])
    assert [str(r.status) for r in results] == ["failed", "ok"]


def test_bad_arrays_are_one_line_errors(colorizer: Colorizer):
    with pytest.raises(ImageError, match="shape"):
        colorizer.colorize(np.zeros((2, 3, 4, 5), np.uint8))
    with pytest.raises(ImageError, match="sample type"):
        colorizer.colorize(np.zeros((8, 8), np.int64))


def test_models_are_listed():
    assert "unet-lab" in list_models()
