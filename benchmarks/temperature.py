"""Annealed-mean temperature sweep for a classification model, on photos held out from training (the 2% hash
split of ../shared/data/train that `colorize train` never trains on), not on val/, so the choice generalises.

    python benchmarks/temperature.py [--model unet-lab] [--images 400] [--temps 0.2 0.3 0.38 0.5 0.7 1.0]
        [--corrections 0.6] [--render-sizes 256] [--data ../shared/data/val]

Lower T moves the readout from the mean towards the mode: more vivid, at some cost in PSNR. The render size is the
short side, in pixels, at which the network sees a whole scene (the photos are resized to it, up or down), so the
sweep over it asks which scene scale suits the model without looking at val/.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from _common import quality_photos

from colorize_cli.evaluate import evaluate
from colorize_cli.pipeline import Options
from colorize_cli.zoo import load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="unet-lab")
    ap.add_argument("--images", type=int, default=400)  # 400: all 347 held-out photos
    ap.add_argument("--temps", type=float, nargs="+", default=[0.2, 0.3, 0.38, 0.5, 0.7, 1.0])
    ap.add_argument(
        "--corrections",
        type=float,
        nargs="+",
        default=[0.0],
        help="prior_correction values: 0 = Zhang's readout, 1 = divide the rebalancing weights back out",
    )
    ap.add_argument("--render-sizes", type=int, nargs="+", default=[256])
    ap.add_argument(
        "--data",
        type=Path,
        default=None,
        help="Measure on this folder instead (e.g. val/, once a readout is chosen on the held-out photos).",
    )
    args = ap.parse_args()
    files = quality_photos(args.data, args.images)
    base = load_model(args.model)
    models = {}
    for g in args.corrections:
        for t in args.temps:
            m = copy.deepcopy(base)
            m.temperature.fill_(t)
            m.prior_correction.fill_(g)
            models[f"correction={g} T={t}"] = m
    print(f"{len(files)} photos from {args.data or 'the held-out training split'}")
    print("| render size | readout | PSNR dB | SSIM | CIEDE2000 | colourfulness ratio |")
    print("|---|---|---|---|---|---|")
    for size in args.render_sizes:
        report = evaluate(files, models, Options(render_size=size, workers=1))
        for name, r in report["results"].items():
            print(
                f"| {size} | {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['ciede2000']:.2f} "
                f"| {r['colorfulness_ratio']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
