"""Time per 256x256 image for every shipped model, on the CPU (default) or a CUDA GPU: the network alone (batch 1,
median of N calls) and the whole `colorize` pipeline's marginal time per image (decode, model, merge, encode, write)
over a folder of 256x256 photos, beside a peer: the ConvNeXt-Tiny encoder that is DDColor-tiny's backbone (random
weights, network alone). Each network alone is timed at 1 thread and at --threads and its faster figure kept (on a
busy 2-core host extra threads can cost several times); the pipeline runs at `colorize dir`'s defaults (--threads 0).

    python benchmarks/speed.py [--runs 20] [--images 40] [--threads 2] [--repeats 3] [--models unet-lab ...]
    python benchmarks/speed.py --device cuda --images 400 --batch-size 32 --workers 8
    python benchmarks/speed.py --models unet-lab --pipeline-threads 0 1 --one-lane   # lanes against one call

Prints one Markdown table; paste it with the date and machine into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from _common import gray_photos, header, median_ms, square
from torch import nn

from colorize_cli.engine import CPU_CHUNK_PIXELS, cpu_chunks
from colorize_cli.evaluate import network_ms
from colorize_cli.pipeline import Engine, Options, colorize_files
from colorize_cli.weights import shipped_path
from colorize_cli.zoo import available_models, load_model


# ConvNeXt-Tiny as timm's convnext_tiny builds it (timm itself cannot be installed beside the CPU torch build: it needs
# torchvision). Only the encoder: DDColor keeps the four stages and drops the classifier head.
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N,C,H,W) map, as timm's LayerNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv -> LayerNorm -> Linear 4x -> GELU -> Linear -> layer scale, plus the residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.conv_dw(x).permute(0, 2, 3, 1))) * self.gamma  # channels-last, as timm
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtTinyEncoder(nn.Module):
    def __init__(self, depths: tuple[int, ...] = (3, 3, 9, 3), dims: tuple[int, ...] = (96, 192, 384, 768)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=1e-6))
        stages = []
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            down = [] if i == 0 else [LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, stride=2)]
            stages.append(nn.Sequential(*down, *(ConvNeXtBlock(dim) for _ in range(depth))))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four feature maps (strides 4, 8, 16, 32) a decoder such as DDColor's reads."""
        feats, x = [], self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def at_threads(n: int, fn: Callable[[], float]) -> float:
    """fn() with n torch threads, the count set before put back."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def params_m(model: nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


class OneLane(Engine):
    """The Engine as it ran before lanes: each CPU chunk in turn, one network call over all torch threads."""

    def chroma(self, smalls: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.device.type != "cpu":
            return super().chroma(smalls)
        return [ab for chunk in cpu_chunks(smalls, CPU_CHUNK_PIXELS) for ab in self._chroma(chunk)]


def pipeline_ms(
    model: torch.nn.Module,
    paths: list[Path],
    out: Path,
    device: torch.device,
    batch: int,
    workers: int,
    threads: int,
    engine: type[Engine] = Engine,
) -> float:
    """Marginal ms per image: (time for all - time for a quarter) / (the other three quarters)."""
    colorizer = engine(model, device)
    opts = Options(batch_size=batch, workers=workers, threads=threads)  # the default render size, as `colorize dir`

    def run(subset: list[Path], tag: str) -> float:
        t0 = time.perf_counter()
        colorize_files([(p, out / tag / p.name) for p in subset], colorizer, opts, lambda r: None)
        return time.perf_counter() - t0

    run(paths[:batch], "warm")  # one-time costs (CUDA context, cuDNN handles) would fall on the first run only
    k = len(paths) // 4
    small, full = run(paths[:k], "a"), run(paths, "b")
    return 1000 * (full - small) / (len(paths) - k)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=None, help="Only these models (default: every shipped one).")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the network alone runs fp32 there too).")
    ap.add_argument("--batch-size", type=int, default=8, help="Pipeline batch (colorize dir's --batch-size).")
    ap.add_argument("--workers", type=int, default=1, help="Pipeline decoding processes.")
    ap.add_argument("--repeats", type=int, default=3, help="Interleaved peer / pipeline timings per model.")
    ap.add_argument(
        "--pipeline-threads",
        type=int,
        nargs="*",
        default=[None],
        help="The pipeline's --threads, one row each (default: one row at colorize dir's default).",
    )
    ap.add_argument(
        "--one-lane",
        action="store_true",
        help="Also a row per --pipeline-threads with the network as one call over all threads (no lanes).",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    peer = ConvNeXtTinyEncoder().eval().to(device)
    x = torch.rand(1, 3, 256, 256, device=device)

    def peer_call() -> None:
        peer(x)
        if device.type == "cuda":  # kernels run asynchronously: time them, not their launch
            torch.cuda.synchronize()

    def peer_ms() -> float:
        """The peer at its best thread count: 1, or all of --threads (extra threads can cost several times on a busy
        host)."""
        with torch.inference_mode():
            return min(at_threads(n, lambda: median_ms(peer_call, args.runs)) for n in {1, args.threads})

    print(
        header(torch.get_num_threads())
        + (f", {torch.cuda.get_device_name()}" if device.type == "cuda" else "")
        + f", pipeline batch {args.batch_size}, {args.workers} decoding workers, medians of {args.repeats} "
        "interleaved repeats"
    )
    print(
        "| model | params | network ms/img (256x256, batch 1; as trained, unfused, in brackets) "
        f"| pipeline ms/img (marginal, render size {Options().render_size}) "
        "| peer encoder ms/img, timed beside it | speed-up vs ConvNeXt-Tiny encoder |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| ConvNeXt-Tiny encoder (DDColor-tiny backbone, peer) | {params_m(peer):.2f}M | - | - | - | 1.0x |",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = gray_photos(args.images, Path(tmp), square(256))
        for name in args.models or available_models():  # registered names and weights exported into weights/
            if not shipped_path(name).is_file():
                continue
            model = load_model(name, device)
            net = min(at_threads(n, lambda: network_ms(model, args.runs)) for n in {1, args.threads})
            unfused = min(at_threads(n, lambda: network_ms(model, args.runs, fuse=False)) for n in {1, args.threads})
            rows = [(t, Engine) for t in args.pipeline_threads]
            rows += [(t, OneLane) for t in args.pipeline_threads] if args.one_lane else []
            for threads, engine in rows:
                n = Options().threads if threads is None else threads
                label = name if threads is None else f"{name}, --threads {n}"
                label += ", one lane" if engine is OneLane else ""
                # The peer and our pipeline one after the other, repeated, so a change in the host's load hits both:
                # the speed-up is the median of the pairs' ratios (our whole pipeline against the peer's network).
                pairs = [
                    (
                        peer_ms(),
                        pipeline_ms(
                            model,
                            paths,
                            Path(tmp) / f"{name}-{n}-{engine.__name__}-{r}",
                            device,
                            args.batch_size,
                            args.workers,
                            n,
                            engine,
                        ),
                    )
                    for r in range(args.repeats)
                ]
                peer_med = statistics.median(p for p, _ in pairs)
                ms = statistics.median(m for _, m in pairs)
                ratio = statistics.median(p / m for p, m in pairs)
                print(
                    f"| {label} | {params_m(model):.1f}M | {net:.1f} ({unfused:.1f}) | {ms:.1f} | {peer_med:.1f} "
                    f"| {ratio:.1f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
