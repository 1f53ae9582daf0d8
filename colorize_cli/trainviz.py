"""What a training run shows a person: validation grids and a loss curve (PNG, via cv2); its progress goes through
colorize_cli/progress.py."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N,C,H,W) 0..1 -> a row of N images, HxNWx3 RGB uint8."""
    x = x.expand(-1, 3, -1, -1).clamp(0, 1).mul(255).round().byte()
    return np.concatenate(list(x.permute(0, 2, 3, 1).numpy()), axis=1)


def save_grid(path: Path, gray: torch.Tensor, pred: torch.Tensor, truth: torch.Tensor) -> None:
    """Rows: gray input | prediction | ground truth."""
    grid = np.concatenate([_to_uint8(gray), _to_uint8(pred), _to_uint8(truth)], axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def save_loss_curve(path: Path, history: list[dict], size: tuple[int, int] = (640, 360)) -> None:
    """Training loss (blue) and validation loss (orange) against step, with min/max labels."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    series = [(k, c) for k, c in (("loss", (200, 90, 30)), ("val_loss", (30, 140, 240)))]
    pts = {k: [(r["step"], r[k]) for r in history if r.get(k) is not None] for k, _ in series}
    values = [v for p in pts.values() for _, v in p]
    steps = [s for p in pts.values() for s, _ in p]
    if not values:
        return
    lo, hi = min(values), max(values) + 1e-9
    s0, s1 = min(steps), max(steps) + 1e-9
    for k, col in series:
        xy = np.array(
            [[40 + (s - s0) / (s1 - s0) * (w - 60), h - 30 - (v - lo) / (hi - lo) * (h - 60)] for s, v in pts[k]],
            np.int32,
        )
        if len(xy):
            cv2.polylines(img, [xy], False, col, 2)
        cv2.putText(img, k, (w - 120, 20 + 18 * (k == "val_loss")), cv2.FONT_HERSHEY_SIMPLEX, 0.5, col, 1)
    cv2.putText(img, f"{hi:.4g}", (2, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(img, f"{lo:.4g}", (2, h - 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(img, f"step {int(s1)}", (w - 110, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)
