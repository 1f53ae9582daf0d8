"""Colour on faded prints: does stretching a faded tonal range before the network (engine.stretch_tones) recover
the colour it gives on the unfaded photo?

    python benchmarks/faded.py [--model unet-lab] [--images 100] [--data ../shared/data/val]

Each photo's luminance is faded as old prints fade (blacks lifted to 0.15, whites dulled to 0.80 of the L range) or
underexposed (L ** 1.6), then colorized with the tone stretch on and off. The chroma is merged onto the photo's
original luminance, so the figures compare only the colour predicted (a user's output keeps the faded luminance).
Held-out training photos by default (the 2% hash split `colorize train` never trains on), as for every choice.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from _common import header, quality_photos

from colorize_cli.evaluate import Scores, is_gray
from colorize_cli.imaging import read_image
from colorize_cli.metrics import colorfulness
from colorize_cli.pipeline import Engine, render_small, srgb_luminance
from colorize_cli.zoo import load_model

DAMAGE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda lum: lum,
    "faded (L 0.15..0.80)": lambda lum: (0.15 + 0.65 * lum).astype(np.float32),
    "underexposed (L ** 1.6)": lambda lum: (lum**1.6).astype(np.float32),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="unet-lab")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--render-size", type=int, default=192)
    ap.add_argument("--data", type=Path, default=None, help="A folder of colour PNGs instead of the held-out photos.")
    args = ap.parse_args()
    torch.set_num_threads(2)
    colorizer = Engine(load_model(args.model), torch.device("cpu"))
    scores = {(d, t): Scores() for d in DAMAGE for t in (False, True)}
    truth_cf = []
    for path in quality_photos(args.data, args.images):
        rgb = read_image(path).rgb
        if is_gray(rgb):
            continue
        truth_cf.append(colorfulness(rgb))
        lum = srgb_luminance(rgb)
        for (damage, tones), s in scores.items():
            small = render_small(DAMAGE[damage](lum), args.render_size, tones=tones)
            ab = colorizer.chroma([torch.from_numpy(small)])[0]
            s.add(colorizer.merge(torch.from_numpy(lum), ab)[0], rgb)
    cf = float(np.mean(truth_cf))
    print(header(2))
    print(
        f"{len(truth_cf)} photos from {args.data or 'the held-out training split'}, model {args.model}, "
        f"render size {args.render_size}"
    )
    print("| network input | tone stretch | PSNR dB | CIEDE2000 | colourfulness ratio |")
    print("|---|---|---|---|---|")
    for (damage, tones), s in scores.items():
        r = s.summary(cf)
        print(
            f"| {damage} | {'on' if tones else 'off'} | {r['psnr']:.2f} | {r['ciede2000']:.3f} "
            f"| {r['colorfulness_ratio']:.3f} |"
        )


if __name__ == "__main__":
    main()
