"""Genuine pre-1927 photographs (no ground truth): colorize them all, report the mean colourfulness of the outputs
(Hasler & Suesstrunk; gray is 0, the val/ ground truth averages ~37), and save a grid of 12 (input | output).

    python benchmarks/historical.py [--model unet-lab] [--grid examples/historical_grid.jpg]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from colorize_cli import metrics
from colorize_cli.folders import iter_images
from colorize_cli.imaging import encode_image, read_image, write_atomic
from colorize_cli.pipeline import Engine, Options, colorize_files
from colorize_cli.registry import DEFAULT_MODEL
from colorize_cli.zoo import load_model

HISTORICAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "historical"


def tile(rgb: np.ndarray, height: int) -> np.ndarray:
    w = round(rgb.shape[1] * height / rgb.shape[0])
    return cv2.resize(rgb, (w, height), interpolation=cv2.INTER_AREA)


def grid(pairs: list[tuple[np.ndarray, np.ndarray]], height: int = 220, per_row: int = 2) -> np.ndarray:
    rows = []
    for i in range(0, len(pairs), per_row):
        cells = [tile(x, height) for pair in pairs[i : i + per_row] for x in pair]
        rows.append(np.concatenate(cells, 1))
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=1) for r in rows], 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--grid", type=Path, default=Path("examples/historical_grid.jpg"))
    ap.add_argument("--count", type=int, default=12)
    args = ap.parse_args()
    files = list(iter_images(HISTORICAL, recursive=False))
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(p, Path(tmp) / (p.stem + ".png")) for p in files]
        colorize_files(jobs, Engine(load_model(args.model), torch.device("cpu")), Options(workers=1), lambda r: None)
        outs = [read_image(d).rgb for _, d in jobs]
    cf_in = [metrics.colorfulness(read_image(p).rgb) for p in files]
    cf_out = [metrics.colorfulness(o) for o in outs]
    print(
        f"{args.model}: {len(files)} historical photos, mean colourfulness input {np.mean(cf_in):.1f} "
        f"-> output {np.mean(cf_out):.1f}"
    )
    pick = np.linspace(0, len(files) - 1, args.count).round().astype(int)
    pairs = [(read_image(files[i]).rgb, outs[i]) for i in pick]
    write_atomic(args.grid, encode_image(grid(pairs), None, args.grid.suffix, jpeg_quality=88))
    print(f"grid of {len(pick)} (input | output) written to {args.grid}: " + ", ".join(files[i].name for i in pick))


if __name__ == "__main__":
    main()
