"""Is `colorize dir` bound by the model or by image I/O? Times the pipeline over a folder of ~1 MP gray JPEGs (real
photos from val/, scaled up like typical scans) with the shipped default model and with an identity model that
returns zero chroma (so only decode, merge and encode+write remain), same options; then splits the work into its
stages, each timed in isolation on the same images (the pipeline overlaps them: decode in workers, writes on a thread).

    python benchmarks/io_limit.py [--images 300] [--workers 2] [--batch-size 8] [--threads 2] [--megapixels 1.0]

Prints one Markdown table; paste it with the date and machine into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _common import gray_photos, header, megapixels
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


def images_per_s(colorizer: Engine, paths: list[Path], opts: Options, out: Path) -> float:
    """Whole-pipeline throughput, as `colorize dir` runs it (workers, batches, writer thread)."""
    colorize_files([(p, out / "warm" / p.name) for p in paths[:opts.batch_size]], colorizer, opts, lambda r: None)
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
        abs_ = colorizer.chroma([it["small"] for it in items])
        t2 = time.perf_counter()
        rgbs = [colorizer.merge(it["lum"], ab)[0] for it, ab in zip(items, abs_)]
        t3 = time.perf_counter()
        for it, rgb in zip(items, rgbs):
            write_atomic(out / paths[it["i"]].name, encode_image(rgb, it["alpha"], it["ext"], it["bit_depth"],
                                                                 opts.jpeg_quality))
        t4 = time.perf_counter()
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            spent[stage] += dt
    return spent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--megapixels", type=float, default=1.0, help="size of each test photo")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    opts = Options(render_size=256, batch_size=args.batch_size, workers=args.workers, device="cpu")

    with tempfile.TemporaryDirectory() as tmp:
        paths = gray_photos(args.images, Path(tmp), megapixels(args.megapixels), ext=".jpg")
        runs = {}
        for name, model in (("unet-lab", load_model("unet-lab")), (IDENTITY, IdentityModel())):
            colorizer = Engine(model, torch.device("cpu"))
            out = Path(tmp) / f"out-{len(runs)}"
            runs[name] = (images_per_s(colorizer, paths, opts, out),
                          stage_seconds(colorizer, paths, opts, out / "stages"))

    io_rate = runs[IDENTITY][0]
    print(header(torch.get_num_threads()))
    print(f"| pipeline ({args.images} gray JPEGs of {args.megapixels:g} MP, workers {args.workers}, batch "
          f"{args.batch_size}) | images/s | share of the I/O-only rate | "
          + " | ".join(f"{s} ms/img (share)" for s in STAGES) + " |")
    print("|---|---|---|" + "---|" * len(STAGES))
    for name, (rate, spent) in runs.items():
        total = sum(spent.values())
        cells = " | ".join(f"{1000 * spent[s] / args.images:.1f} ({100 * spent[s] / total:.0f}%)" for s in STAGES)
        print(f"| {name} | {rate:.2f} | {rate / io_rate:.2f} | {cells} |")


if __name__ == "__main__":
    main()
