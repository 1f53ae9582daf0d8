"""Reference-guided film against ground truth: every DAVIS clip in ../shared/data/video (davis-*.mp4) is turned gray
(benchmarks/video.py's to_gray) and colorized three ways, all with the default stabilisation:

    automatic      no reference (what `colorize video` does without --reference)
    ref first      the true colour of the clip's first frame as the only reference (carried forward)
    ref middle     the true colour of the middle frame as the only reference (carried both ways); its PSNR is also
                   split into the frames before and after the reference, beside the automatic mode on the same
                   frames, to show the colour spreading both ways

    PSNR   mean over frames of the RGB PSNR (dB) against the original colour frames (the reference frame included)
    CDC    colour distribution consistency, as in benchmarks/video.py (lower is steadier)
    ms/fr  wall time per frame of model + stabiliser + guide + merge on decoded frames (decoding excluded; the guide's
           own second read of the frames for a backward carry comes from memory here)

    python benchmarks/reference.py [--clips davis-cows] [--max-frames 0] [--render-size 256] [--threads 2]
                                   [--strip examples/reference_strip.jpg] [--overhead-only]

The guide's own cost is also timed without the model (whose time swamps it on a CPU and varies with the machine's
load): the stabiliser alone on every frame against the stabiliser plus a guide from the first frame, ms per frame.
--overhead-only prints just that.

--strip writes a small JPEG of the first clip: rows gray / automatic / guided / truth at a few frames, the reference
(the middle frame's true colour) marked. Prints a Markdown table; paste it with the date into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import video as bench  # benchmarks/video.py: to_gray, psnr, histograms, cdc
from _common import film_args

from colorize_cli import video
from colorize_cli.pipeline import Engine, render_small
from colorize_cli.reference import Reference, ReferenceGuide, reference_chroma
from colorize_cli.zoo import load_model, pick_device

VIDEO = bench.VIDEO


def run(
    gray: list[np.ndarray], truth: list[np.ndarray], colorizer: Engine, args: argparse.Namespace, ref_frame: int | None
) -> tuple[list[np.ndarray], float]:
    """Colorized frames and seconds per frame, guided by the true colour of ref_frame (None: automatic)."""
    guide = None
    t0 = time.perf_counter()
    if ref_frame is not None:
        smalls = [render_small(video.frame_luminance(g), args.render_size, tones=False) for g in gray]
        ab = reference_chroma(truth[ref_frame].astype(np.float32) / 255, gray[0].shape[:2], args.render_size)
        guide = ReferenceGuide(
            [Reference(ref_frame, ab, "truth")],
            lambda first, n: iter(smalls[first : first + n]),
            chroma=None if args.no_grade else video.model_chroma(colorizer),
        )
    stab = video.ChromaStabilizer(args.strength)
    out = list(video.colorize_frames(gray, colorizer, stab, args.render_size, args.batch_size, guide=guide))
    return out, (time.perf_counter() - t0) / len(out)


def overhead(gray: list[np.ndarray], truth: list[np.ndarray], render_size: int) -> tuple[float, float]:
    """ms per frame of the stabiliser alone, and of stabiliser + guide with its grade (reference: the first frame), no
    model."""
    smalls = [render_small(video.frame_luminance(g), render_size, tones=False) for g in gray]
    ab = reference_chroma(truth[0].astype(np.float32) / 255, gray[0].shape[:2], render_size)
    pred = np.zeros((2, *smalls[0].shape), np.float32)
    times = []
    for guided in (False, True):
        stab = video.ChromaStabilizer()
        guide = ReferenceGuide(
            [Reference(0, ab)], lambda first, n: iter(smalls[first : first + n]), chroma=lambda lum: pred
        )  # the grade's one model call, without a model
        t0 = time.perf_counter()
        for i, small in enumerate(smalls):
            out = stab.step(small, guide.correct(i, small, pred) if guided else pred)
            if guided:
                guide.apply(i, small, out)
        times.append(1000 * (time.perf_counter() - t0) / len(smalls))
    return times[0], times[1]


def mean_psnr(out: list[np.ndarray], truth: list[np.ndarray], lo: int = 0, hi: int | None = None) -> float:
    return float(np.mean([bench.psnr(o, t) for o, t in list(zip(out, truth))[lo:hi]]))


def strip(path: Path, gray, auto, guided, truth, ref: int, width: int = 200) -> None:
    """Rows gray / automatic / guided / truth at 4 frames spread over the clip; the reference frame outlined."""
    n = len(truth)
    picks = sorted({0, ref, n // 4, n - 1})
    h = round(truth[0].shape[0] * width / truth[0].shape[1])
    rows = []
    for frames in (gray, auto, guided, truth):
        tiles = []
        for i in picks:
            t = cv2.resize(frames[i], (width, h), interpolation=cv2.INTER_AREA)
            if frames is truth and i == ref:
                cv2.rectangle(t, (1, 1), (width - 2, h - 2), (255, 220, 0), 3)
            tiles.append(t)
        rows.append(np.concatenate(tiles, 1))
    img = np.concatenate(rows, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    print(f"\nstrip: {path} (rows: gray, automatic, guided by the outlined frame, truth; frames {picks})")


def main() -> None:
    ap = argparse.ArgumentParser()
    film_args(ap, video.DEFAULT_STRENGTH)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--strip", type=Path, default=None, help="Write a before/after/reference strip JPEG here.")
    ap.add_argument("--no-grade", action="store_true", help="Carry the reference only, without grading the model.")
    ap.add_argument("--overhead-only", action="store_true", help="Only time the guide without the model.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    colorizer = Engine(load_model(args.model, device), device)
    names = args.clips or sorted(p.stem for p in VIDEO.glob("davis-*.mp4"))
    print(
        f"{time.strftime('%Y-%m-%d')}, {device}, {torch.get_num_threads()} torch threads, model {args.model}, "
        f"render size {args.render_size}, strength {args.strength:g}"
        + (f", first {args.max_frames} frames" if args.max_frames else "")
    )
    if args.overhead_only:
        for name in names:
            truth = [np.array(f) for f in video.decode(VIDEO / f"{name}.mp4", args.max_frames or None)]
            alone, guided = overhead([bench.to_gray(f) for f in truth], truth, args.render_size)
            print(f"{name}: stabiliser {alone:.1f} ms/frame, stabiliser + guide {guided:.1f} ms/frame")
        return
    print("| clip | mode | PSNR | CDC | ms/frame | PSNR before ref (auto) | PSNR after ref (auto) |")
    print("|---|---|---|---|---|---|---|")
    sums: dict[str, list[tuple[float, float, float]]] = {}
    for ci, name in enumerate(names):
        truth = [np.array(f) for f in video.decode(VIDEO / f"{name}.mp4", args.max_frames or None)]
        gray = [bench.to_gray(f) for f in truth]
        mid = len(truth) // 2
        outs = {}
        for mode, ref in (("automatic", None), ("ref first", 0), ("ref middle", mid)):
            out, spf = run(gray, truth, colorizer, args, ref)
            outs[mode] = out
            row = (mean_psnr(out, truth), bench.cdc([bench.histograms(f) for f in out]), 1000 * spf)
            sums.setdefault(mode, []).append(row)
            split = ""
            if ref == mid:
                auto = outs["automatic"]
                split = (
                    f"{mean_psnr(out, truth, 0, mid):.2f} ({mean_psnr(auto, truth, 0, mid):.2f}) | "
                    f"{mean_psnr(out, truth, mid + 1):.2f} ({mean_psnr(auto, truth, mid + 1):.2f})"
                )
            print(
                f"| {name} ({len(truth)} frames) | {mode} | {row[0]:.2f} | {row[1]:.4f} | {row[2]:.0f} | "
                f"{split or ' | '} |",
                flush=True,
            )
        if ci == 0 and args.strip:
            strip(args.strip, gray, outs["automatic"], outs["ref middle"], truth, mid)
    for mode, rows in sums.items():
        m = np.mean(rows, 0)
        print(f"| **mean** | {mode} | {m[0]:.2f} | {m[1]:.4f} | {m[2]:.0f} | |")


if __name__ == "__main__":
    main()
