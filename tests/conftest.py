"""Shared fixtures: small real images picked from ../shared/data, copied so the originals are never touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from colorize_cli import pipeline

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
VAL = DATA / "val"
HISTORICAL = DATA / "historical"
TRAIN = DATA / "train"


class SpyColorizer(pipeline.Engine):
    """The real Engine around no network: records the render shapes of every model call and the luminance the
    network would see, and returns a constant chroma."""

    def __init__(self):
        super().__init__(torch.nn.Identity(), torch.device("cpu"))
        self.calls: list[set[tuple[int, int]]] = []
        self.seen: list[np.ndarray] = []

    def chroma(self, smalls):
        self.calls.append({tuple(s.shape) for s in smalls})
        self.seen += [s.numpy().copy() for s in smalls]
        return [torch.full((2, *s.shape), 5.0) for s in smalls]


@pytest.fixture(scope="module")
def one_thread():
    """For tests on tiny tensors: extra threads only fight other work on the machine (10x slower under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pick(folder: Path, n: int, pattern: str = "*") -> list[Path]:
    files = sorted(folder.glob(pattern))
    if len(files) < n:
        pytest.skip(f"{folder} is not available")
    return files[:: max(1, len(files) // n)][:n]


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder of genuine inputs in the formats users have: old JPEG scans, a colour PNG, a 16-bit gray PNG,
    an RGBA PNG and a sepia-toned JPEG."""
    d = tmp_path / "in"
    d.mkdir()
    for src in pick(HISTORICAL, 2, "*.jpg"):
        shutil.copy(src, d / src.name)
    val = pick(VAL, 1, "*.png")[0]
    shutil.copy(val, d / "colour.png")
    bgr = cv2.imread(str(val))
    gray16 = (cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)[:120, :150]
    cv2.imwrite(str(d / "deep16.png"), gray16)
    bgra = cv2.cvtColor(bgr[:100, :140], cv2.COLOR_BGR2BGRA)
    bgra[..., 3] = np.linspace(0, 255, 140, dtype=np.uint8)[None, :]
    cv2.imwrite(str(d / "alpha.png"), bgra)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    sepia = np.stack([gray * 0.8, gray * 0.95, np.minimum(gray * 1.1, 255)], -1).astype(np.uint8)
    cv2.imwrite(str(d / "sepia.jpg"), sepia)
    return d
