"""Helpers shared by the benchmark scripts (each script runs as `python benchmarks/NAME.py`, which puts this folder
on sys.path, so they simply `from _common import ...`)."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
VAL = DATA / "val"


def header(threads: int) -> str:
    """The one line before every table: date, CPU, torch threads and version, so results can be compared later."""
    import torch

    return (
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()} ({os.cpu_count()} cores), "
        f"{threads} torch threads, torch {torch.__version__}"
    )


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 3) -> float:
    """Median wall time of fn() in ms; the warm-up calls pay one-time costs (allocator, lazy init) out of the figure."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def square(side: int) -> Callable[[np.ndarray], np.ndarray]:
    """Centre square crop resized to side x side (the speed benchmark's 256x256 photos)."""

    def fit(img: np.ndarray) -> np.ndarray:
        h, w = img.shape
        s = min(h, w)
        return cv2.resize(img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s], (side, side))

    return fit


def megapixels(mp: float) -> Callable[[np.ndarray], np.ndarray]:
    """Resize, aspect kept, to about mp megapixels (481x321 val photos become 1224x816 at 1 MP), like a typical scan."""

    def fit(img: np.ndarray) -> np.ndarray:
        h, w = img.shape
        s = (mp * 1e6 / (h * w)) ** 0.5
        return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)

    return fit


def gray_photos(
    n: int, dest: Path, fit: Callable[[np.ndarray], np.ndarray], ext: str = ".png", source: Path = VAL
) -> list[Path]:
    """n real photos (val/, or the PNGs and JPEGs of source, cycled, turned gray, resized by fit) written to dest, so
    the pipeline does real decoding. Each source is read and resized once; the files are distinct copies."""
    srcs = sorted(f for f in source.glob("*") if f.suffix.lower() in (".png", ".jpg"))
    if not srcs:
        raise SystemExit(f"no photos in {source}")
    ready: dict[Path, np.ndarray] = {}
    paths = []
    for i in range(n):
        src = srcs[i % len(srcs)]
        if src not in ready:
            ready[src] = fit(cv2.imread(str(src), cv2.IMREAD_GRAYSCALE))
        paths.append(dest / f"{i:05d}{ext}")
        cv2.imwrite(str(paths[-1]), ready[src])
    return paths


def quality_photos(data: Path | None, n: int) -> list[Path]:
    """The PNGs of `data`, or else n photos spread over the 2% hash split of ../shared/data/train that `colorize train`
    never trains on: choices are made on those, so they are not fitted to val/."""
    if data is not None:
        found = sorted(data.glob("*.png"))
        if not found:
            raise SystemExit(f"no PNG photos in {data}")
        return found
    from colorize_cli.train_data import split_files

    _, held_out = split_files(DATA / "train", 2.0)
    return held_out[:: max(1, len(held_out) // n)][:n]


def film_args(ap: argparse.ArgumentParser, strength: float) -> None:
    """The options every film benchmark takes: model, which DAVIS clips, how much of each, render size, batching; the
    model and render size default to what `colorize video` runs."""
    from colorize_cli.registry import DEFAULT_MODEL, DEFAULT_RENDER_SIZE

    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--clips", nargs="*", default=None, help="Clip names (default: every davis-*.mp4).")
    ap.add_argument("--max-frames", type=int, default=0, help="Use at most this many frames of each clip (0: all).")
    ap.add_argument("--render-size", type=int, default=DEFAULT_RENDER_SIZE)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--strength", type=float, default=strength)


def pan_clip(photo: Path, dest: Path, frames: int, size: tuple[int, int] = (854, 480), fps: int = 24) -> Path:
    """A gray film of `frames` frames (size W x H, x264 CRF 18) panning slowly across a photo: a clip for machines
    without ../shared/data/video (a lent GPU reaches nothing else)."""
    import imageio_ffmpeg

    w, h = size
    gray = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    scale = max((w + frames) / gray.shape[1], h / gray.shape[0])
    big = cv2.resize(gray, (round(gray.shape[1] * scale) + 1, round(gray.shape[0] * scale) + 1))
    writer = imageio_ffmpeg.write_frames(
        str(dest), (w, h), pix_fmt_in="gray", fps=fps, codec="libx264", output_params=["-crf", "18"], macro_block_size=1
    )
    writer.send(None)
    for t in range(frames):
        writer.send(np.ascontiguousarray(big[:h, t : t + w]))
    writer.close()
    return dest
