"""CPU time per 256x256 image for every shipped model: the network alone (batch 1, median of N calls) and the whole
`colorize` pipeline's marginal time per image (decode, model, merge, encode, write) over a folder of 256x256 photos.

    python benchmarks/speed.py [--runs 20] [--images 40] [--threads 2]

Prints one Markdown table; paste it with the date and machine into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import torch

from colorize_cli.pipeline import Colorizer, Options, colorize_files
from colorize_cli.registry import list_models
from colorize_cli.weights import shipped_path
from colorize_cli.zoo import load_model

VAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "val"


def network_ms(model: torch.nn.Module, runs: int) -> float:
    x = torch.rand(1, 1, 256, 256)
    with torch.inference_mode():
        for _ in range(3):
            model.chroma(x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model.chroma(x)
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def make_folder(n: int, dest: Path) -> list[Path]:
    """n real 256x256 photos (centre crops of val/, gray) so the pipeline does real decoding."""
    srcs = sorted(VAL.glob("*.png"))
    paths = []
    for i in range(n):
        img = cv2.imread(str(srcs[i % len(srcs)]), cv2.IMREAD_GRAYSCALE)
        h, w = img.shape
        s = min(h, w)
        crop = cv2.resize(img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s], (256, 256))
        paths.append(dest / f"{i:04d}.png")
        cv2.imwrite(str(paths[-1]), crop)
    return paths


def pipeline_ms(model: torch.nn.Module, paths: list[Path], out: Path) -> float:
    """Marginal ms per image: (time for all - time for a quarter) / (the other three quarters)."""
    colorizer = Colorizer(model, torch.device("cpu"))
    opts = Options(render_size=256, batch_size=8, workers=1)

    def run(subset: list[Path], tag: str) -> float:
        t0 = time.perf_counter()
        colorize_files([(p, out / tag / p.name) for p in subset], colorizer, opts, lambda r: None)
        return time.perf_counter() - t0
    k = len(paths) // 4
    small, full = run(paths[:k], "a"), run(paths, "b")
    return 1000 * (full - small) / (len(paths) - k)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print("| model | params | network ms/img (256x256, batch 1) | pipeline ms/img (marginal) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(args.images, Path(tmp))
        for name in list_models():
            if not shipped_path(name).is_file():
                continue
            model = load_model(name)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            print(f"| {name} | {params:.1f}M | {network_ms(model, args.runs):.1f} | "
                  f"{pipeline_ms(model, paths, Path(tmp) / name):.1f} |", flush=True)


if __name__ == "__main__":
    main()
