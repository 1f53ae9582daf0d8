"""Film speed against the floor no colorizer can go under, side by side in one run: on each DAVIS clip of
../shared/data/video, decode + x264 encode alone (the same ffmpeg pipes, preset and CRF as `colorize video`'s
defaults, no colour) beside `colorize video` (in process, at its defaults unless told), as a ratio; and the quality
of each mode (PSNR, CDC against the clips' original colour, from gray-ified clips, as benchmarks/video.py computes
them), so a faster default is seen not to cost accuracy or steadiness.

    python benchmarks/film_limit.py [-m unet-lab-trio] [-m unet-lab] [--clips davis-cows] [--key-every 1 3] [--before]
        [--threads 0] [--no-quality]

-m repeats: each model's rows beside the others' (default: the default model, which `colorize video` runs).

--key-every lists the key-frame intervals to time beside the defaults (`colorize video --key-every K`); --before adds
the previous defaults (Farneback flow; Farneback and every frame).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import video as film_quality  # benchmarks/video.py: to_gray, evaluate, mean_ab_change

from colorize_cli import video
from colorize_cli.pipeline import Engine, set_threads
from colorize_cli.registry import DEFAULT_MODEL
from colorize_cli.video.ffmpeg import Encoder, probe, read_frames
from colorize_cli.zoo import load_model, pick_device

VIDEO = film_quality.VIDEO


def io_only_fps(src: Path, opts: video.VideoOptions) -> float:
    """Decode + encode, nothing between: the rate `colorize video` would reach with a free colorizer."""
    info = probe(src)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        enc = Encoder(Path(tmp) / "out.mp4", info.width, info.height, info.fps, "libx264", opts.crf, opts.preset)
        for frame in read_frames(info):
            enc.write(frame)
        enc.close()
        return enc.frames / (time.perf_counter() - t0)


def colorize_fps(src: Path, colorizer: Engine, opts: video.VideoOptions) -> float:
    """The whole `colorize video` run (probe, decode, colorize, encode, mux, count check, rename)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = video.run(src, Path(tmp) / "out.mp4", colorizer, opts)
        return result.frames / (time.perf_counter() - t0)


def quality(src: Path, colorizer: Engine, opts: video.VideoOptions) -> dict[str, float]:
    truth = [np.array(f) for f in video.decode(src)]
    gray = [film_quality.to_gray(f) for f in truth]
    stab = video.ChromaStabilizer(opts.strength, key_every=opts.key_every, flow=opts.flow)
    out = list(video.colorize_frames(gray, colorizer, stab, opts.render_size, opts.batch_size))
    return film_quality.evaluate(truth, out, film_quality.mean_ab_change(truth))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", action="append", default=None, help=f"Repeat; default {DEFAULT_MODEL}.")
    ap.add_argument("--clips", nargs="*", default=None)
    ap.add_argument("--key-every", type=int, nargs="*", default=[], help="Key-frame intervals to add as modes.")
    ap.add_argument("--threads", type=int, default=0, help="As colorize --threads (0: every core).")
    ap.add_argument(
        "--before",
        action="store_true",
        help="Add the previous defaults as modes: Farneback flow, and Farneback with key every 1.",
    )
    ap.add_argument("--no-quality", action="store_true", help="Skip PSNR/CDC (timing only).")
    args = ap.parse_args()
    set_threads(args.threads)
    device = pick_device("auto")
    engines = {name: Engine(load_model(name, device), device) for name in args.model or [DEFAULT_MODEL]}
    base = video.VideoOptions()
    modes = {
        f"defaults (key every {base.key_every})": base,
        **{f"key every {k}": video.VideoOptions(key_every=k) for k in args.key_every if k != base.key_every},
    }
    if args.before:
        modes[f"key every {base.key_every}, Farneback flow"] = video.VideoOptions(flow=video.Flow.FARNEBACK)
        modes["before: key every 1, Farneback"] = video.VideoOptions(key_every=1, flow=video.Flow.FARNEBACK)
    names = args.clips or sorted(p.stem for p in VIDEO.glob("davis-*.mp4"))
    for colorizer in engines.values():  # warm-up: lazy initialisation untimed
        colorize_fps(VIDEO / f"{names[0]}.mp4", colorizer, video.VideoOptions(end=0.5))
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {device}, threads {args.threads}, "
        f"x264 preset {base.preset or 'medium'} CRF {base.crf}"
    )
    print("| clip | model | mode | decode+encode fps | colorize fps | ratio | PSNR | CDC |")
    print("|---|---|---|---|---|---|---|---|")
    ratios: dict[tuple[str, str], list[tuple[float, float, float, float, float]]] = {}
    for name in names:
        src = VIDEO / f"{name}.mp4"
        for model, colorizer in engines.items():
            for mode, opts in modes.items():
                ref, got = io_only_fps(src, opts), colorize_fps(src, colorizer, opts)  # side by side, per mode
                q = {"psnr": float("nan"), "cdc": float("nan")} if args.no_quality else quality(src, colorizer, opts)
                ratios.setdefault((model, mode), []).append((ref, got, got / ref, q["psnr"], q["cdc"]))
                print(
                    f"| {name} | {model} | {mode} | {ref:.1f} | {got:.1f} | {got / ref:.2f} | {q['psnr']:.2f} | "
                    f"{q['cdc']:.4f} |",
                    flush=True,
                )
    for (model, mode), rows in ratios.items():
        m = np.mean(np.array(rows), 0)
        print(f"| **mean** | {model} | {mode} | {m[0]:.1f} | {m[1]:.1f} | {m[2]:.2f} | {m[3]:.2f} | {m[4]:.4f} |")


if __name__ == "__main__":
    main()
