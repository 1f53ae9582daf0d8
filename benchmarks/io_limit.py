"""Is `colorize dir` bound by the model or by image I/O? Times the pipeline over a folder of ~1 MP gray JPEGs (real
photos from val/, scaled up like typical scans) with the shipped default model and with an identity model that
returns zero chroma (so only decode, merge and encode+write remain), same options; then splits the work into its
stages, each timed in isolation on the same images (the pipeline overlaps them: decode in workers, writes on a thread).
First, the reference every row is measured against: a one-core loop that only decodes each file, makes colour with
zero chroma (OpenCV, 8-bit Lab) and encodes a JPEG q95, beside `colorize dir` itself at its defaults (a subprocess,
timed as marginal seconds per image: a run on all files minus a run on a quarter, so start-up and model loading
drop out) on the same files in the same run.

    python benchmarks/io_limit.py [--images 60] [--workers 2] [--batch-size 8] [--threads 0] [--megapixels 1.0]
        [--photos DIR] [--no-stages] [--device cpu] [--variants "--threads 2" "--workers 1 --threads 1" ...]
        [--baseline DIR]

Prints one Markdown table; paste it with the date and machine into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from _common import VAL, gray_photos, header, megapixels

from colorize_cli.imaging import encode_image, write_atomic
from colorize_cli.models.base import ColorModel
from colorize_cli.pipeline import Engine, Options, ReadSet, colorize_files
from colorize_cli.zoo import load_model

STAGES = ("decode", "model", "merge", "encode+write")
IDENTITY = "identity (zero chroma: I/O only)"


class IdentityModel(ColorModel):
    """Zero chroma: the output is the gray input, and the pipeline's cost is everything but the network."""

    def forward(self, lum: torch.Tensor) -> torch.Tensor:
        return lum.new_zeros(lum.shape[0], 2, *lum.shape[-2:])


def reference_per_s(paths: list[Path], out: Path) -> float:
    """The one-core I/O floor: decode gray, zero chroma in 8-bit Lab, JPEG q95, write. No colorizer can do less."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    out.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        for p in paths:
            gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            lab = cv2.merge([gray, np.full_like(gray, 128), np.full_like(gray, 128)])
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(lab, cv2.COLOR_LAB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            (out / p.name).write_bytes(buf.tobytes())
        return len(paths) / (time.perf_counter() - t0)
    finally:
        cv2.setNumThreads(before)


def cli_dir_per_s(paths: list[Path], out: Path, extra: list[str], code: Path | None = None) -> float:
    """`colorize dir` at its defaults, as a user runs it, in a fresh process: marginal rate over a quarter's run.
    code: a folder holding another colorize_cli package (an older version, side by side in the same run)."""
    env = dict(os.environ, PYTHONPATH=str(code)) if code else None

    def run(subset: list[Path], tag: str) -> float:
        src = out / f"in-{tag}"
        src.mkdir(parents=True)
        for p in subset:
            os.link(p, src / p.name)
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "colorize_cli.cli",
                "dir",
                str(src),
                "-o",
                str(out / f"out-{tag}"),
                "--quiet",
                *extra,
            ],
            check=True,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        return time.perf_counter() - t0

    k = len(paths) // 4
    small, full = run(paths[:k], "quarter"), run(paths, "all")
    return (len(paths) - k) / (full - small)


def images_per_s(colorizer: Engine, paths: list[Path], opts: Options, out: Path) -> float:
    """Whole-pipeline throughput, as `colorize dir` runs it (workers, batches, writer thread)."""
    colorize_files([(p, out / "warm" / p.name) for p in paths[: opts.batch_size]], colorizer, opts, lambda r: None)
    t0 = time.perf_counter()
    colorize_files([(p, out / "run" / p.name) for p in paths], colorizer, opts, lambda r: None)
    return len(paths) / (time.perf_counter() - t0)


def stage_seconds(colorizer: Engine, paths: list[Path], opts: Options, out: Path) -> dict[str, float]:
    """The same work one stage at a time in this process, batch by batch (holding every decoded 1 MP image at once
    would measure swapping, not the stages)."""
    spent = dict.fromkeys(STAGES, 0.0)
    reader = ReadSet(paths, opts)
    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(paths), opts.batch_size):
        t0 = time.perf_counter()
        items = [reader[i] for i in range(start, min(start + opts.batch_size, len(paths)))]
        t1 = time.perf_counter()
        abs_ = colorizer.chroma([it.small for it in items])
        t2 = time.perf_counter()
        rgbs = [colorizer.merge(it.lum, ab)[0] for it, ab in zip(items, abs_)]
        t3 = time.perf_counter()
        for it, rgb in zip(items, rgbs):
            write_atomic(out / paths[it.i].name, encode_image(rgb, it.alpha, it.ext, it.bit_depth, opts.jpeg_quality))
        t4 = time.perf_counter()
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            spent[stage] += dt
    return spent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch threads in this process (0: the CLI's default)")
    ap.add_argument("--megapixels", type=float, default=1.0, help="size of each test photo")
    ap.add_argument("--photos", type=Path, default=VAL, help="folder of source photos (default: ../shared/data/val)")
    ap.add_argument("--device", default="cpu", help="where `colorize dir` and the in-process rows run")
    ap.add_argument("--no-stages", action="store_true", help="only the reference and `colorize dir` rows")
    ap.add_argument("--variants", nargs="*", default=[], help="more `colorize dir` rows, each with these options")
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="also run `colorize dir` at defaults from this folder's colorize_cli (e.g. `git archive` of "
        "an older commit), in the same run",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    opts = Options(render_size=256, batch_size=args.batch_size, workers=args.workers, device=args.device)

    with tempfile.TemporaryDirectory() as tmp:
        paths = gray_photos(args.images, Path(tmp), megapixels(args.megapixels), ext=".jpg", source=args.photos)
        ref = reference_per_s(paths, Path(tmp) / "ref")
        print(header(torch.get_num_threads()))
        print(f"| {args.images} gray JPEGs of {args.megapixels:g} MP | images/s | share of the one-core I/O loop |")
        print("|---|---|---|")
        print(f"| one-core loop: decode, zero chroma (OpenCV 8-bit Lab), JPEG q95 (reference) | {ref:.1f} | 1.00 |")
        if args.baseline:
            base = cli_dir_per_s(paths, Path(tmp) / "cli-base", ["--device", args.device], args.baseline)
            print(
                f"| `colorize dir` at defaults, baseline {args.baseline} | {base:.1f} | {base / ref:.2f} |", flush=True
            )
        for k, extra in enumerate(["", *args.variants]):
            cli = cli_dir_per_s(paths, Path(tmp) / f"cli-{k}", ["--device", args.device, *extra.split()])
            print(
                f"| `colorize dir` {extra or 'at defaults'} (device {args.device}, marginal) | {cli:.1f} "
                f"| {cli / ref:.2f} |",
                flush=True,
            )
        if args.no_stages:
            return
        runs = {}
        for name, model in (("unet-lab", load_model("unet-lab")), (IDENTITY, IdentityModel())):
            colorizer = Engine(model, torch.device(args.device))
            out = Path(tmp) / f"out-{len(runs)}"
            runs[name] = (
                images_per_s(colorizer, paths, opts, out),
                stage_seconds(colorizer, paths, opts, out / "stages"),
            )

    io_rate = runs[IDENTITY][0]
    print()
    print(
        f"| pipeline ({args.images} gray JPEGs of {args.megapixels:g} MP, workers {args.workers}, batch "
        f"{args.batch_size}) | images/s | share of the I/O-only rate | "
        + " | ".join(f"{s} ms/img (share)" for s in STAGES)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(STAGES))
    for name, (rate, spent) in runs.items():
        total = sum(spent.values())
        cells = " | ".join(f"{1000 * spent[s] / args.images:.1f} ({100 * spent[s] / total:.0f}%)" for s in STAGES)
        print(f"| {name} | {rate:.2f} | {rate / io_rate:.2f} | {cells} |")


if __name__ == "__main__":
    main()
