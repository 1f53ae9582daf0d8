"""Video colorization against ground truth: every DAVIS clip in ../shared/data/video (davis-*.mp4) is turned gray
(each pixel becomes the neutral gray of the same Lab lightness), colorized per frame (strength 0) and with temporal
stabilisation (the default strength), and compared with the original colour frames:

    PSNR           mean over frames of the RGB PSNR (dB) against the original frame
    CDC            colour distribution consistency (Liu et al.): Jensen-Shannon divergence (base 2) of the per-channel
                   R, G, B 256-bin histograms of frames t and t+k, averaged over channels, frames and k in {1, 2, 4};
                   lower is steadier. The ground truth's own CDC is printed under the table for reference.
    flicker ratio  mean |Lab ab(t) - ab(t-1)| of the output over the same for the ground truth; 1 moves as much as the
                   real colours do, above 1 flickers
    fps            frames per second of model + stabiliser + merge (decoding and encoding excluded)
    e2e fps        frames per second of the whole `colorize video` run on the clip file: ffmpeg decode, model,
                   stabiliser, merge, x264 encode and mux (what a user waits for)

Modes: per-frame (strength 0), stabilised (the default strength), and stabilised with the model on key frames only
(`--key-every K`, chroma carried along optical flow between them), for each K given.

    python benchmarks/video.py [--model unet-lab] [--max-frames 24] [--clips davis-blackswan] [--render-size 256]
                               [--threads 2] [--key-every 2 3]   # model, render size: colorize video's defaults

Prints one Markdown table with a mean row per mode; paste it with the date and machine into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import film_args

from colorize_cli import color, video
from colorize_cli.pipeline import Engine
from colorize_cli.zoo import load_model, pick_device

VIDEO = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "video"
OFFSETS = (1, 2, 4)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """The neutral sRGB gray with the frame's Lab lightness, as a B&W film would give it (uint8 HxWx3)."""
    lum = torch.from_numpy(video.frame_luminance(frame))[None, None]
    gray = color.lab_to_rgb(torch.cat([lum * 100, torch.zeros_like(lum), torch.zeros_like(lum)], 1))[0, 0]
    return np.repeat(np.rint(gray.numpy() * 255).astype(np.uint8)[..., None], 3, 2)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def histograms(frame: np.ndarray) -> np.ndarray:
    """(3, 256) normalised R, G, B histograms."""
    h = np.stack([np.bincount(frame[..., c].ravel(), minlength=256) for c in range(3)]).astype(np.float64)
    return h / h.sum(1, keepdims=True)


def js(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over channels of the Jensen-Shannon divergence (bits) between rows of p and q."""
    m = (p + q) / 2

    def kl(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, x * np.log2(x / m), 0).sum(1)

    return float(np.mean((kl(p) + kl(q)) / 2))


def cdc(hists: list[np.ndarray]) -> float:
    per_k = [np.mean([js(hists[i], hists[i + k]) for i in range(len(hists) - k)]) for k in OFFSETS if len(hists) > k]
    return float(np.mean(per_k)) if per_k else float("nan")


def ab(frame: np.ndarray) -> np.ndarray:
    return color.rgb_to_lab(torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None].float() / 255)[0, 1:].numpy()


def mean_ab_change(frames: list[np.ndarray]) -> float:
    chroma = [ab(f) for f in frames]
    return float(np.mean([np.abs(a - b).mean() for a, b in zip(chroma[1:], chroma[:-1])]))


def evaluate(truth: list[np.ndarray], out: list[np.ndarray], truth_change: float) -> dict[str, float]:
    return {
        "psnr": float(np.mean([psnr(o, t) for o, t in zip(out, truth)])),
        "cdc": cdc([histograms(f) for f in out]),
        "flicker": mean_ab_change(out) / max(truth_change, 1e-9),
    }


def end_to_end_fps(src: Path, colorizer: Engine, args: argparse.Namespace, strength: float, key_every: int) -> float:
    """Frames per second of the whole `colorize video` run on the clip file (decode, colorize, encode, mux)."""
    opts = video.VideoOptions(
        render_size=args.render_size,
        batch_size=args.batch_size,
        strength=strength,
        key_every=key_every,
        preset=args.preset,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = video.run(src, Path(tmp) / "out.mp4", colorizer, opts)
        return result.frames / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    film_args(ap, video.DEFAULT_STRENGTH)
    ap.add_argument("--key-every", type=int, nargs="*", default=[3], help="Key-frame intervals to add as modes.")
    ap.add_argument("--no-e2e", action="store_true", help="Skip the end-to-end runs on the clip files.")
    ap.add_argument("--preset", default=None, help="x264 preset for the end-to-end runs (default: medium).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    colorizer = Engine(load_model(args.model, device), device)
    names = args.clips or sorted(p.stem for p in VIDEO.glob("davis-*.mp4"))
    modes = {
        "per-frame": (0.0, 1),
        f"stabilised ({args.strength:g})": (args.strength, 1),
        **{f"stabilised, key every {k}": (args.strength, k) for k in args.key_every if k > 1},
    }
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {device}, "
        f"{torch.get_num_threads()} torch threads, model {args.model}, render size {args.render_size}, "
        f"end to end with x264 preset {args.preset or 'medium'}"
        + (f", first {args.max_frames} frames" if args.max_frames else "")
    )
    print("| clip | mode | PSNR | CDC | flicker ratio | fps | e2e fps |")
    print("|---|---|---|---|---|---|---|")
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    truth_cdc = []
    for name in names:
        truth = [np.array(f) for f in video.decode(VIDEO / f"{name}.mp4", args.max_frames or None)]
        gray = [to_gray(f) for f in truth]
        truth_change = mean_ab_change(truth)
        truth_cdc.append(cdc([histograms(f) for f in truth]))
        for mode, (strength, key_every) in modes.items():
            t0 = time.perf_counter()
            stab = video.ChromaStabilizer(strength, key_every=key_every)
            out = list(video.colorize_frames(gray, colorizer, stab, args.render_size, args.batch_size))
            fps = len(out) / (time.perf_counter() - t0)
            e2e = (
                float("nan")
                if args.no_e2e
                else end_to_end_fps(VIDEO / f"{name}.mp4", colorizer, args, strength, key_every)
            )
            r = {**evaluate(truth, out, truth_change), "fps": fps, "e2e": e2e}
            rows[mode].append(r)
            print(
                f"| {name} ({len(out)} frames) | {mode} | {r['psnr']:.2f} | {r['cdc']:.4f} | {r['flicker']:.2f} "
                f"| {r['fps']:.1f} | {r['e2e']:.1f} |",
                flush=True,
            )
    for mode, rs in rows.items():
        m = {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}
        print(
            f"| **mean** | {mode} | {m['psnr']:.2f} | {m['cdc']:.4f} | {m['flicker']:.2f} | {m['fps']:.1f} "
            f"| {m['e2e']:.1f} |"
        )
    print(f"\nGround truth CDC (mean over clips): {np.mean(truth_cdc):.4f}")


if __name__ == "__main__":
    main()
