"""Reduced precision and torch.compile against fp32: how much faster, and how much do the colours move?

Every val/ photo (gray luminance, render size 192) goes through `Engine` at each setting; the merged full-size
outputs are compared with the fp32 ones by CIEDE2000 per pixel (mean over pixels and images, and the largest single
pixel). Time is the model call per image (batch 1, median) on the same images.

    python benchmarks/precision.py [--device auto] [--images 20] [--photos DIR] [--compile] [--threads 2]

On a CPU the settings are fp32 and bf16 (fp16 autocast on a CPU is slower than fp32); on CUDA fp32, fp16 and bf16.
--compile adds each setting again under torch.compile. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from _common import VAL, header

from colorize_cli import metrics
from colorize_cli.pipeline import Engine, render_small, srgb_luminance
from colorize_cli.registry import DEFAULT_RENDER_SIZE
from colorize_cli.zoo import load_model, pick_device


def luminances(n: int, folder: Path = VAL) -> list[np.ndarray]:
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".png", ".jpg"))[:n]
    return [srgb_luminance(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255) for f in files]


def run(colorizer: Engine, lums: list[np.ndarray], size: int) -> tuple[list[np.ndarray], float]:
    """Merged uint8-range float outputs and the median ms of the model call per image."""
    outs, times = [], []
    for lum in lums:
        small = torch.from_numpy(render_small(lum, size))
        colorizer.chroma([small])  # warm (and, compiled, specialise) on this shape
        if colorizer.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        ab = colorizer.chroma([small])[0]
        if colorizer.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        outs.append(colorizer.merge(torch.from_numpy(lum), ab)[0])
    return outs, 1000 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="unet-lab")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--photos", type=Path, default=VAL, help="Folder of the photos (default: ../shared/data/val).")
    ap.add_argument("--render-size", type=int, default=DEFAULT_RENDER_SIZE)
    ap.add_argument("--compile", action="store_true", help="Also time each setting under torch.compile.")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    model = load_model(args.model, device)
    lums = luminances(args.images, args.photos)
    settings = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    runs = [(p, False) for p in settings] + ([(p, True) for p in settings] if args.compile else [])
    ref = None
    print(
        header(torch.get_num_threads()) + f", {device}, model {args.model}, render size {args.render_size}, "
        f"{len(lums)} val photos"
    )
    print("| precision | compiled | model ms/img | speed-up | mean CIEDE2000 vs fp32 | max CIEDE2000 vs fp32 |")
    print("|---|---|---|---|---|---|")
    for precision, compiled in runs:
        outs, ms = run(Engine(model, device, precision, compiled), lums, args.render_size)
        if ref is None:
            ref = (outs, ms)
        diffs = [metrics.ciede2000(metrics.rgb_to_lab(o), metrics.rgb_to_lab(r)) for o, r in zip(outs, ref[0])]
        print(
            f"| {precision} | {'yes' if compiled else 'no'} | {ms:.1f} | {ref[1] / ms:.2f}x "
            f"| {np.mean([d.mean() for d in diffs]):.3f} | {max(d.max() for d in diffs):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
