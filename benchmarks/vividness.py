"""What --vividness does to the colour: PSNR, CIEDE2000 and colourfulness (against the truth's) at each setting,
and the README's strip of one photo at 0.5 / 1 / 1.5.

    python benchmarks/vividness.py [--model unet-lab] [--images 40] [--data ../shared/data/val]
                                   [--strip examples/vividness_strip.jpg]

Held-out training photos by default (the 2% hash split `colorize train` never trains on), as for every choice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from _common import header, quality_photos

from colorize_cli.evaluate import Scores, is_gray
from colorize_cli.imaging import encode_image, read_image, write_atomic
from colorize_cli.metrics import colorfulness
from colorize_cli.pipeline import Engine, render_small, srgb_luminance
from colorize_cli.registry import DEFAULT_MODEL
from colorize_cli.zoo import load_model

SETTINGS = (0.0, 0.5, 1.0, 1.5, 2.0)
STRIP = (0.5, 1.0, 1.5)
ROOT = Path(__file__).resolve().parent.parent


def colorize(model: torch.nn.Module, rgb: np.ndarray, vividness: float, size: int) -> np.ndarray:
    model.set_vividness(vividness)
    colorizer = Engine(model, torch.device("cpu"))
    lum = srgb_luminance(rgb)
    ab = colorizer.chroma([torch.from_numpy(render_small(lum, size))])[0]
    return colorizer.merge(torch.from_numpy(lum), ab)[0]


def strip(model: torch.nn.Module, photo: Path, dest: Path, size: int, height: int = 220) -> None:
    """The photo at each STRIP vividness side by side, labelled, as a small JPEG."""
    rgb = read_image(photo).rgb
    tiles = []
    for v in STRIP:
        out = colorize(model, rgb, v, size)
        tile = cv2.resize(out, (round(out.shape[1] * height / out.shape[0]), height), interpolation=cv2.INTER_AREA)
        tile = np.round(np.clip(tile, 0, 1) * 255).astype(np.uint8)
        cv2.putText(
            tile,
            f"--vividness {v:g}",
            (8, height - 10),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.55,
            (255, 255, 255),
            2,
            cv2.LINE_AA,
        )
        tiles.append(tile)
    write_atomic(dest, encode_image(np.concatenate(tiles, 1), None, ".jpg", 8, 85))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--images", type=int, default=40, help="0: only the strip.")
    ap.add_argument("--render-size", type=int, default=192)
    ap.add_argument("--data", type=Path, default=None, help="A folder of colour PNGs instead of the held-out photos.")
    ap.add_argument("--strip", type=Path, default=None, help="Also write the README strip here.")
    ap.add_argument("--strip-photo", type=Path, default=ROOT / "examples" / "originals" / "1880Paris.jpg")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    scores = {v: Scores() for v in SETTINGS}
    truth_cf = []
    for path in quality_photos(args.data, args.images) if args.images else []:
        rgb = read_image(path).rgb
        if is_gray(rgb):
            continue
        truth_cf.append(colorfulness(rgb))
        for v, s in scores.items():
            s.add(colorize(model, rgb, v, args.render_size), rgb)
    if args.strip:
        strip(model, args.strip_photo, args.strip, args.render_size)
    if not truth_cf:
        return
    cf = float(np.mean(truth_cf))
    print(header(2))
    print(f"{len(truth_cf)} photos from {args.data or 'the held-out training split'}, model {args.model}")
    print("| --vividness | PSNR dB | CIEDE2000 | colourfulness ratio |")
    print("|---|---|---|---|")
    for v, s in scores.items():
        r = s.summary(cf)
        print(f"| {v:g} | {r['psnr']:.2f} | {r['ciede2000']:.2f} | {r['colorfulness_ratio']:.2f} |")


if __name__ == "__main__":
    main()
