"""CPU time per stage of the photo path, one thread, one stage at a time, for the lever-by-lever record of issue 21:
decode (+ luminance, render copy), model, merge (uint8 out), encode, on 1 MP gray JPEGs (or PNGs) at the default render
size.
process_time, not wall time, so other work on a shared host moves the figures less. Run it against an older
colorize_cli (`git archive COMMIT colorize_cli weights | tar -x -C DIR`) with PYTHONPATH=DIR to compare.

    python benchmarks/stages.py [--images 16] [--threads 1] [--format jpg|png]
    python benchmarks/stages.py --threading     # the model's 8 calls (batch 4, 192x288) at 1 thread, in 2 lanes of
                                                # 1 thread, at 2 OpenMP threads; and 1024^2 matmuls, 1 thread vs 2 lanes
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from _common import gray_photos, megapixels

from colorize_cli.imaging import encode_image
from colorize_cli.pipeline import Engine, Options, ReadSet
from colorize_cli.zoo import load_model


def threading_check() -> None:
    """Wall and CPU seconds of the same work three ways: does this process get both cores right now?"""
    import threading

    model = load_model("unet-lab").eval().to(memory_format=torch.channels_last)
    x = torch.rand(4, 1, 192, 288).contiguous(memory_format=torch.channels_last)
    a = torch.rand(1024, 1024)
    for name, call, calls in (("model", lambda: model(x), 8), ("matmul", lambda: a @ a, 32)):

        def work(n: int) -> None:
            with torch.inference_mode():
                for _ in range(n):
                    call()

        for way, threads, lanes in (("1 thread", 1, 1), ("2 lanes of 1 thread", 1, 2), ("2 OpenMP threads", 2, 1)):
            torch.set_num_threads(threads)
            work(1)
            t0, c0 = time.perf_counter(), time.process_time()
            workers = [threading.Thread(target=work, args=(calls // lanes,)) for _ in range(lanes)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            print(
                f"| {name} x{calls} | {way} | {time.perf_counter() - t0:.2f} s wall | "
                f"{time.process_time() - c0:.2f} s CPU |",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--threading", action="store_true", help="only the threads / lanes check")
    ap.add_argument("--format", default="jpg", choices=("jpg", "png"), help="the gray photos' format, in and out")
    args = ap.parse_args()
    if args.threading:
        return threading_check()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    cpu = dict.fromkeys(("decode", "model", "merge", "encode"), 0.0)

    def timed(stage: str, fn: Callable[[], list]) -> list:
        t0 = time.process_time()
        out = fn()
        cpu[stage] += time.process_time() - t0
        return out

    with tempfile.TemporaryDirectory() as tmp:
        paths = gray_photos(args.images, Path(tmp), megapixels(1.0), ext=f".{args.format}")
        reader = ReadSet(paths, Options(workers=0, device="cpu"))
        engine = Engine(load_model("unet-lab"), torch.device("cpu"))
        engine.chroma([reader[0].small])  # warm-up
        for start in range(0, len(paths), 8):
            items = timed("decode", lambda: [reader[i] for i in range(start, min(start + 8, len(paths)))])
            abs_ = timed("model", lambda: engine.chroma([it.small for it in items]))
            rgbs = timed("merge", lambda: [engine.merge(it.lum, ab, np.uint8)[0] for it, ab in zip(items, abs_)])
            timed("encode", lambda: [encode_image(rgb, None, f".{args.format}", 8, 95) for rgb in rgbs])
    print("| " + " | ".join(f"{k} CPU ms/img" for k in cpu) + " | total |")
    print("|---" * (len(cpu) + 1) + "|")
    print(
        "| "
        + " | ".join(f"{1000 * v / args.images:.1f}" for v in cpu.values())
        + f" | {1000 * sum(cpu.values()) / args.images:.1f} |"
    )


if __name__ == "__main__":
    main()
