"""The in-memory engine every front shares (the photo stream, film, eval, the Python API): a decoded image's
luminance and render-size copy (prepare), the model run on batches at a chosen precision (Engine.chroma), and the
merge of its chroma with the full-resolution luminance (Engine.merge). No paths, no files: stream.py and
pipeline.py stream folders through it, colorizer.py is its public face.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from colorize_cli import color
from colorize_cli.color import gray_luminance, srgb_luminance
from colorize_cli.imaging import DEFAULT_MAX_PIXELS, Decoded
from colorize_cli.models.fuse import fused
from colorize_cli.registry import DEFAULT_RENDER_SIZE

MAX_ASPECT = 4  # the long side of the render is capped at this many times the render size
CPU_CHUNK_PIXELS = 1 << 18  # most render-size pixels per model call on a CPU (two 256x455 film frames; cpu_chunks)
MERGE_PIXELS = color.STRIP_PIXELS  # pixels per strip of the full-resolution merge: memory bounded for any size
# Prints fade: blacks lift and whites dull. About four in five training photos reach these at their 0.5th / 99.5th
# luminance percentiles (medians 0.03 / 0.96), so a narrower range is stretched out to them before the network looks
# (gain at most TONE_GAIN, so a dark frame's noise is not blown up); the output keeps the original luminance.
TONE_BLACK, TONE_WHITE, TONE_GAIN = 0.08, 0.85, 2.0


class Precision(str, Enum):
    """--precision: a str Enum, so the CLI's plain words parse and compare (see Engine)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"

    def __str__(self) -> str:
        return self.value

    def autocast(self, device: torch.device) -> torch.dtype | None:
        """The network's autocast dtype on `device`, None for plain fp32."""
        if self is Precision.AUTO:
            return torch.float16 if device.type == "cuda" else None
        return {Precision.FP32: None, Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}[self]


@dataclass
class Options:
    render_size: int = DEFAULT_RENDER_SIZE
    batch_size: int = 8
    workers: int = 2
    device: str = "auto"
    precision: Precision = Precision.AUTO  # see Engine; a plain "fp16" works as well
    compile: bool = False  # torch.compile the network (pays off on long CUDA runs)
    max_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_quality: int = 95
    keep_input: bool = False  # eval needs the original colours back
    stretch_tones: bool = True  # stretch a faded tonal range for the network (stretch_tones); outputs keep it
    overwrite: bool = False  # redo outputs that exist
    claim: bool = True  # lock each output while it is made (overlapping cron runs)
    threads: int = 0  # torch (and main-process OpenCV) threads; 0: every core (see split_threads)


def render_small(lum: np.ndarray, size: int, tones: bool = True) -> np.ndarray:
    """Full-resolution luminance (HxW) -> the model's input at render size (area down, linear up), a faded tonal
    range stretched out unless `tones` is False."""
    h, w = lum.shape
    rh, rw = render_shape(h, w, size)
    if (rh, rw) != (h, w):
        lum = cv2.resize(lum, (rw, rh), interpolation=cv2.INTER_AREA if rh < h else cv2.INTER_LINEAR)
    return stretch_tones(lum) if tones else lum


def stretch_tones(lum: np.ndarray) -> np.ndarray:
    """Map the 0.5th / 99.5th percentiles of a faded luminance out to TONE_BLACK / TONE_WHITE; a full-range image
    passes unchanged. Continuous in the percentiles: photos just either side of the thresholds are treated alike."""
    lo, hi = (float(v) for v in np.percentile(lum, [0.5, 99.5]))
    lo_to, hi_to = min(lo, TONE_BLACK), max(hi, TONE_WHITE)
    if (lo_to, hi_to) == (lo, hi):
        return lum
    gain = min((hi_to - lo_to) / max(hi - lo, 1e-6), TONE_GAIN)
    return np.clip(lo_to + (lum - lo) * gain, 0, 1).astype(np.float32)


def prepare(img: Decoded, opts: Options) -> tuple[np.ndarray, np.ndarray]:
    """A decoded image -> its full-resolution luminance and the network's render-size copy: the one step every front
    (folders, the Python API) takes before the model. A gray source goes through a lookup table on its stored
    samples: the same L as srgb_luminance of its float RGB, without building that RGB (12 MB at 1 MP)."""
    gray = img.gray
    lum = gray_luminance(gray) if gray is not None and gray.dtype != np.float32 else srgb_luminance(img.rgb)
    return lum, render_small(lum, opts.render_size, opts.stretch_tones)


def render_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """Scale so the short side is `size`, long side capped (extreme panoramas); at least 1 pixel each way."""
    s = size / min(h, w)
    s = min(s, size * MAX_ASPECT / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def split_threads(threads: int) -> int:
    """Threads for torch and the main process's OpenCV: as asked, or (0) every core. Leaving the decode workers their
    own cores (1 thread on 2 cores) won only under heavy load from other jobs; under lighter load all cores gave 1.2
    to 2.8x the rate on the 2-core host (benchmarks/RESULTS.md)."""
    return threads if threads > 0 else available_cores()


def set_threads(threads: int) -> tuple[int, int]:
    """Apply split_threads to torch and OpenCV in this process; the (torch, OpenCV) counts there were before."""
    before = torch.get_num_threads(), cv2.getNumThreads()
    n = split_threads(threads)
    if before[0] != n:
        torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return before


# glibc's mallopt parameters, and the values keep_freed_memory sets: its largest mmap threshold, and a trim threshold
# above the few tens of MB the pipeline frees and takes again for each batch.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 << 20, 64 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks of up to 32 MB for reuse (once per process; False where it is not glibc).
    Its default hands large blocks back to the kernel, and the pipeline's arrays (made on one thread, freed on
    another) came back as fresh pages: 1,200-1,800 page faults and 5-7 ms of kernel time per 256x256 photo against
    about 200 and 4-5 ms (benchmarks/RESULTS.md). The heap then stays near its peak, which a batch bounds."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mmap = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    return bool(mmap) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


@functools.cache
def _lane_pool(lanes: int) -> ThreadPoolExecutor:
    """The threads Engine._in_lanes runs chunks on, one pool per lane count for the process: every Engine shares them
    (made on first use; idle threads cost nothing and end with the process)."""
    return ThreadPoolExecutor(lanes, thread_name_prefix="colorize-lane")


def _pad_stack(smalls: list[torch.Tensor]) -> torch.Tensor:
    """Batch images of different render sizes by edge-padding to the largest; each is cropped back after."""
    h = max(s.shape[0] for s in smalls)
    w = max(s.shape[1] for s in smalls)
    if all(s.shape == (h, w) for s in smalls):  # the photo stream batches one render shape: nothing to pad
        return torch.stack(smalls)[:, None]
    return torch.stack(
        [F.pad(s[None, None], (0, w - s.shape[1], 0, h - s.shape[0]), mode="replicate")[0] for s in smalls]
    )


def cpu_chunks(smalls: list[torch.Tensor], limit: int, lanes: int = 1) -> list[list[torch.Tensor]]:
    """The batch in order, in as few chunks of at most `limit` pixels as it needs (a larger image alone), a multiple
    of `lanes` where the batch has the images (no lane idles while another runs a second chunk), of about equal size:
    eight 192x192 photos go as 4 + 4, not 7 + 1 (a lone image costs the network far more per pixel)."""
    sizes = [s.numel() for s in smalls]
    least = max(1, math.ceil(sum(sizes) / limit))
    least = min(max(len(smalls), 1), math.ceil(least / lanes) * lanes)
    for n in range(least, max(least, len(smalls)) + 1):
        chunks = _split(smalls, sizes, sum(sizes) / n)
        if all(len(c) == 1 or sum(s.numel() for s in c) <= limit for c in chunks):
            return chunks
    return [[s] for s in smalls]


def _split(smalls: list[torch.Tensor], sizes: list[int], share: float) -> list[list[torch.Tensor]]:
    """Consecutive chunks of about `share` pixels: each image goes where the middle of its pixels falls."""
    chunks: dict[int, list[torch.Tensor]] = {}
    before = 0
    for s, size in zip(smalls, sizes):
        chunks.setdefault(int((before + size / 2) // share), []).append(s)
        before += size
    return list(chunks.values())


PRECISIONS = tuple(p.value for p in Precision)


def check_precision(precision: str | Precision) -> Precision:
    """The one check of a --precision value (the CLI calls it before loading any model)."""
    try:
        return Precision(precision)
    except ValueError:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}") from None


class Engine:
    """Runs a model on batches of luminance and merges its chroma back at full resolution (the public face around it
    is colorizer.Colorizer).

    precision: "auto" is fp16 autocast on CUDA and fp32 on a CPU; "bf16"/"fp16" autocast the network on any device;
    "fp32" never autocasts. The readout (softmax, annealed mean) always runs in fp32. The network runs fused (a copy
    with its BatchNorms and padding folded into the convolutions: models/fuse.py) and channels_last (tensor-core
    friendly on CUDA, less time on a CPU too); compile wraps it in torch.compile,
    specialised per render shape (photos come in batches of one shape; dynamic shapes fail in torch 2.13's
    inductor), so each new shape compiles once."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        precision: str | Precision = Precision.AUTO,
        compile: bool = False,
    ):
        self.precision = check_precision(precision)
        keep_freed_memory()
        # Any: a ColorModel (to_chroma) in use; tests pass bare modules around a spy's chroma. A copy with its
        # BatchNorms and padding folded into the convolutions (models/fuse.py): the caller's model stays trainable.
        self.model: Any = fused(model).to(device)
        self.device = device
        self.dtype = self.precision.autocast(device)
        self.memory_format = torch.channels_last  # tensor cores on CUDA; 10-15% less CPU time on a CPU too
        self.model.to(memory_format=self.memory_format)  # type: ignore[call-overload]  # the stub omits the keyword
        self.net = torch.compile(self.model, dynamic=False) if compile else self.model

    def chroma(self, smalls: list[torch.Tensor]) -> list[torch.Tensor]:
        """Chroma at render size for each luminance. On a CPU the batch runs in chunks of at most CPU_CHUNK_PIXELS
        (past that, activations fall out of cache and a bigger batch is slower per image), a multiple of the torch
        threads where the batch has the images, and the chunks run side by side in lanes (_in_lanes)."""
        if self.device.type != "cpu":
            return self._chroma(smalls)
        threads = torch.get_num_threads()
        chunks = cpu_chunks(smalls, CPU_CHUNK_PIXELS, lanes=threads)
        lanes = min(threads, len(chunks))
        if lanes < 2:
            return [ab for chunk in chunks for ab in self._chroma(chunk)]
        return [ab for out in self._in_lanes(chunks, lanes, threads) for ab in out]

    def _in_lanes(self, chunks: list[list[torch.Tensor]], lanes: int, threads: int) -> list[list[torch.Tensor]]:
        """The chunks on `lanes` threads at threads // lanes torch threads each. One call over every core waits at
        each layer for its slowest thread, and on a 2-core host the decoder and writer keep taking one away: the
        pipeline ran 19.0 ms a 256x256 photo as one call over two threads, 17.4 as two lanes of one, with about 15%
        less CPU (benchmarks/RESULTS.md). torch's thread count is process-wide: set for the lanes, put back after."""
        torch.set_num_threads(threads // lanes)
        try:
            return list(_lane_pool(lanes).map(self._chroma, chunks))
        finally:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def _chroma(self, smalls: list[torch.Tensor]) -> list[torch.Tensor]:
        lum = _pad_stack(smalls).to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            raw = self.net(lum.contiguous(memory_format=self.memory_format))
        ab = self.model.to_chroma(raw.float(), lum).float()
        return [ab[k, :, : s.shape[0], : s.shape[1]] for k, s in enumerate(smalls)]

    @torch.inference_mode()
    def merge(self, lum: torch.Tensor, ab: torch.Tensor, dtype: type = np.float32) -> tuple[np.ndarray, bool]:
        """Full-res RGB (HxWx3, float32 0..1 or quantised to uint8/uint16) from the input's own luminance and the
        chroma; non-finite chroma -> gray. Done in strips of rows, so a 50-megapixel scan never holds more than a
        few megapixels of float intermediates (the whole-image float32 Lab and RGB would be 600 MB each). On a CPU
        the conversion is OpenCV's float32 Lab -> sRGB (SIMD, 7x less CPU time at 1 MP than the torch formula, and
        within 1 level of it in 8-bit output: tests/test_pipeline.py); the lightness is the input's own either way."""
        finite = bool(np.isfinite(ab.numpy()).all() if ab.device.type == "cpu" else torch.isfinite(ab).all())
        if not finite:
            ab = torch.zeros_like(ab)
        h, w = lum.shape
        rows = max(1, MERGE_PIXELS // w)
        on_cpu = self.device.type == "cpu"
        if rows >= h:  # one strip: the whole-image merge, 30% faster at 1 MP than the row gather below
            if on_cpu:
                return color.merge_luminance_cv(lum.numpy(), color.upsample_ab_cv(ab.float(), h, w), dtype), finite
            rgb = color.merge_luminance(lum.to(self.device)[None, None], ab.float()[None])[0].permute(1, 2, 0)
            return _as_dtype(rgb, dtype), finite
        ab = color.upsample(ab.float()[None], (ab.shape[-2], w))[0]  # columns now, rows strip by strip
        out: np.ndarray = np.empty((h, w, 3), dtype)
        for y0 in range(0, h, rows):
            y1 = min(h, y0 + rows)
            strip_ab = color.upsample_rows(ab, h, y0, y1)[None]
            if on_cpu:
                lab = np.empty((y1 - y0, w, 3), np.float32)
                lab[..., 1:] = strip_ab[0].permute(1, 2, 0).numpy()
                out[y0:y1] = color.merge_luminance_cv(np.ascontiguousarray(lum[y0:y1].numpy()), lab, dtype)
                continue
            strip_lum = lum[y0:y1].to(self.device)[None, None]
            rgb = color.merge_luminance(strip_lum, strip_ab.to(strip_lum.dtype))[0].permute(1, 2, 0)
            out[y0:y1] = _as_dtype(rgb, dtype)
        return out, finite


def _as_dtype(rgb: torch.Tensor, dtype: type) -> np.ndarray:
    """HxWx3 float 0..1 on any device -> numpy float32, or rounded to the integer type as imaging's encoder rounds
    (in torch, on the device: 7 ms a 854x480 frame faster than numpy's clip-scale-round on the CPU)."""
    if dtype == np.float32:
        return rgb.cpu().numpy()
    wide = torch.uint8 if dtype == np.uint8 else torch.int32
    return (rgb.clamp(0, 1) * float(np.iinfo(dtype).max)).round().to(wide).cpu().numpy().astype(dtype, copy=False)
