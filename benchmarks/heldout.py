"""Gray against models on the photos `colorize train` holds out of ../shared/data/train (its 2% hash split, every
group of the folder in it), overall and per file-name prefix, with every `colorize eval` figure.

    python benchmarks/heldout.py [-m unet-lab] [-m runs/x.safetensors] [--corrections 0.95 1.1]
        [--temperatures 0.4 0.6] [--images 0] [--threads 1] [--json heldout.json]

Choices (weights, readout) are made on these photos, never on val/. --corrections re-reads each model at those
prior corrections too, so models can be compared at equal colourfulness; --temperatures re-reads each at every pair
of a temperature and a correction.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from _common import DATA

from colorize_cli.classifier import Classifier
from colorize_cli.evaluate import evaluate, markdown, prefix, save_json
from colorize_cli.pipeline import Options
from colorize_cli.train_data import split_files
from colorize_cli.zoo import load_model


def held_out(n: int) -> list[Path]:
    """The trainer's held-out photos (all, or n spread over them)."""
    _, files = split_files(DATA / "train", 2.0)
    if not files:
        raise SystemExit(f"no photos in {DATA / 'train'}")
    return files[:: max(1, len(files) // n)][:n] if n else files


def models_at(names: list[str], corrections: list[float], temperatures: list[float]) -> dict[str, torch.nn.Module]:
    """Each model at its own readout, then at each asked prior correction (and temperature: each pair of the two)."""
    out = {}
    for name in names:
        base = load_model(name)
        out[name] = base
        for t in temperatures or [None]:
            for c in corrections:
                m = copy.deepcopy(base)
                m.prior_correction.fill_(c)
                if t is not None:
                    m.temperature.fill_(t)
                out[f"{name} @ correction {c}" + (f" temperature {t}" if t is not None else "")] = m
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", action="append", default=None, help="Repeat; default unet-lab.")
    ap.add_argument("--corrections", type=float, nargs="*", default=[])
    ap.add_argument("--temperatures", type=float, nargs="*", default=[], help="with --corrections: every pair")
    ap.add_argument("--images", type=int, default=0, help="0: every held-out photo.")
    ap.add_argument("--render-size", type=int, default=192)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the 2-core machine is shared).")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    files = held_out(args.images)
    report = evaluate(
        files,
        models_at(args.model or ["unet-lab"], args.corrections, args.temperatures),
        Options(render_size=args.render_size, workers=1),
        classifier=Classifier(),
        group_by=prefix,
    )
    print(markdown(report, "python benchmarks/heldout.py " + " ".join(sys.argv[1:])))
    if args.json:
        save_json(args.json, report)


if __name__ == "__main__":
    main()
