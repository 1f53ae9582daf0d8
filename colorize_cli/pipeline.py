"""The photo stream behind `colorize dir`, `image` and `eval`:

    paths -> [DataLoader workers: decode, luminance, resize to render size]
          -> batches on the device -> model.chroma
          -> [writer thread: upsample + merge with full-res luminance, encode, temp file, atomic rename, record]

(eval and the Python API's arrays merge on the calling thread instead.)

The model is only ever called through `chroma(lum)`, so this file never knows which architecture runs.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from colorize_cli import color
from colorize_cli.claims import Claim, ClaimError, claim, release
from colorize_cli.color import gray_luminance, srgb_luminance
from colorize_cli.imaging import DEFAULT_MAX_PIXELS, Decoded, ImageError, encode_image, read_image, write_atomic
from colorize_cli.progress import IMAGES, Meter, Reporter
from colorize_cli.registry import DEFAULT_RENDER_SIZE

MAX_ASPECT = 4  # the long side of the render is capped at this many times the render size
CPU_CHUNK_PIXELS = 1 << 18  # render-size pixels per model call on a CPU (two 256x455 film frames, seven 192x192 photos)
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
    precision: Precision = Precision.AUTO   # see Engine; a plain "fp16" works as well
    compile: bool = False        # torch.compile the network (pays off on long CUDA runs)
    max_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_quality: int = 95
    keep_input: bool = False     # eval needs the original colours back
    stretch_tones: bool = True   # stretch a faded tonal range for the network (stretch_tones); outputs keep it
    overwrite: bool = False      # redo outputs that exist
    claim: bool = True           # lock each output while it is made (overlapping cron runs)
    threads: int = 0             # torch (and main-process OpenCV) threads; 0: every core (see split_threads)


class Status(str, Enum):
    """What became of one input. A str Enum, so reports and comparisons read the plain word."""
    OK = "ok"
    SKIPPED = "skipped"           # done before (or meanwhile, by another run), or not this shard's
    CLAIMED = "claimed"           # another live run is making this output right now: not known to be done
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass
class Result:
    src: Path
    dst: Path | None
    status: Status
    seconds: float = 0.0
    error: str = ""
    warning: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


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
    except AttributeError:          # not Linux
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


def _worker_init(_: int) -> None:
    """Each decode worker is one lane: OpenCV's own thread pool there would fight the model for the cores."""
    cv2.setNumThreads(1)


class ReadSet(Dataset):
    """Decodes in DataLoader workers; a bad file becomes an error record, never an exception across the pipe."""

    def __init__(self, paths: list[Path], opts: Options):
        self.paths, self.opts = paths, opts

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            img = read_image(self.paths[i], self.opts.max_pixels)
            lum, small = prepare(img, self.opts)
        except ImageError as e:
            return {"i": i, "error": str(e), "t0": t0}
        except Exception as e:       # MemoryError on a huge scan included: this file fails, the run goes on
            return {"i": i, "error": f"{self.paths[i]}: cannot read: {_what(e)}", "t0": t0}
        item = {"i": i, "lum": torch.from_numpy(lum), "small": torch.from_numpy(small), "alpha": img.alpha,
                "bit_depth": img.bit_depth, "ext": img.ext, "t0": t0}
        if self.opts.keep_input:
            item["rgb"] = img.rgb
        return item


def _what(e: BaseException) -> str:
    """One line for an unexpected exception (a MemoryError's own message is empty)."""
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else ("out of memory" if isinstance(e, MemoryError)
                                                       else type(e).__name__)


def _pad_stack(smalls: list[torch.Tensor]) -> torch.Tensor:
    """Batch images of different render sizes by edge-padding to the largest; each is cropped back after."""
    h = max(s.shape[0] for s in smalls)
    w = max(s.shape[1] for s in smalls)
    return torch.stack([F.pad(s[None, None], (0, w - s.shape[1], 0, h - s.shape[0]), mode="replicate")[0]
                        for s in smalls])


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
    "fp32" never autocasts. The readout (softmax, annealed mean) always runs in fp32. The network runs
    channels_last (tensor-core friendly on CUDA, less time on a CPU too); compile wraps it in torch.compile,
    specialised per render shape (photos come in batches of one shape; dynamic shapes fail in torch 2.13's
    inductor), so each new shape compiles once."""

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str | Precision = Precision.AUTO,
                 compile: bool = False):
        self.precision = check_precision(precision)
        self.model, self.device = model.to(device).eval(), device
        self.dtype = self.precision.autocast(device)
        self.memory_format = torch.channels_last     # tensor cores on CUDA; 10-15% less CPU time on a CPU too
        self.model.to(memory_format=self.memory_format)
        self.net = torch.compile(self.model, dynamic=False) if compile else self.model

    def chroma(self, smalls: list[torch.Tensor]) -> list[torch.Tensor]:
        """Chroma at render size for each luminance. On a CPU the batch runs in chunks of at most CPU_CHUNK_PIXELS:
        past that, activations fall out of cache and a bigger batch is slower per image (benchmarks/RESULTS.md)."""
        if self.device.type != "cpu":
            return self._chroma(smalls)
        out, chunk, pixels = [], [], 0
        for s in smalls:
            if chunk and pixels + s.numel() > CPU_CHUNK_PIXELS:
                out += self._chroma(chunk)
                chunk, pixels = [], 0
            chunk.append(s)
            pixels += s.numel()
        return out + self._chroma(chunk) if chunk else out

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
        finite = bool(torch.isfinite(ab).all())
        if not finite:
            ab = torch.zeros_like(ab)
        h, w = lum.shape
        rows = max(1, MERGE_PIXELS // w)
        on_cpu = self.device.type == "cpu"
        if rows >= h:     # one strip: the whole-image merge, 30% faster at 1 MP than the row gather below
            if on_cpu:
                return color.merge_luminance_cv(lum.numpy(), color.upsample_ab_cv(ab.float(), h, w), dtype), finite
            rgb = color.merge_luminance(lum.to(self.device)[None, None], ab.float()[None])[0].permute(1, 2, 0)
            return _as_dtype(rgb, dtype), finite
        ab = color.upsample(ab.float()[None], (ab.shape[-2], w))[0]   # columns now, rows strip by strip
        out = np.empty((h, w, 3), dtype)
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


def _as_is(item: dict[str, Any]) -> dict[str, Any]:
    """Keep worker output as built (the default would turn numpy alpha into tensors)."""
    return item


@dataclass(frozen=True)
class Verdict:
    """Why admit() keeps an input from the model: skipped or claimed (with the reason) or failed (the error)."""
    status: Status
    message: str


def stream(paths: list[Path], colorizer: Engine, opts: Options,
           admit: Callable[[int], Verdict | None] = lambda i: None,
           integer_output: bool = False, merge: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, item) for every path, in input order except that batches gather photos of one render shape (so none
    is padded); item has "rgb_out" (HxWx3 float, or with integer_output the integer type of
    the input's bit depth, a quarter of the memory for writing), "error", or "verdict" (what admit(index) said instead
    of running the model on it). With merge False an item has the chroma "ab" instead of "rgb_out", and the caller
    runs finish() on it, on another thread (the writer's), so the merge overlaps the next model call."""
    before = set_threads(opts.threads)
    try:
        yield from _stream(paths, colorizer, opts, admit, integer_output, merge)
    finally:                # an API caller's own thread settings come back after the run
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def finish(colorizer: Engine, item: dict[str, Any], src: Path, integer_output: bool) -> None:
    """Merge one streamed item's chroma ("ab") at full resolution: the item gets "rgb_out" (and a "warning" when the
    model's chroma was not finite), or "error"."""
    dtype = (np.uint16 if item["bit_depth"] == 16 else np.uint8) if integer_output else np.float32
    try:
        item["rgb_out"], finite = colorizer.merge(item["lum"], item.pop("ab"), dtype)
    except Exception as e:     # MemoryError at full resolution: this file fails, the run goes on
        item["error"] = f"{src}: cannot colorize: {_what(e)}"
        return
    if not finite:
        item["warning"] = "model produced NaN/Inf: wrote the gray input instead"


def _stream(paths: list[Path], colorizer: Engine, opts: Options, admit: Callable[[int], Verdict | None],
            integer_output: bool, merge: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    loader = DataLoader(ReadSet(paths, opts), batch_size=None, collate_fn=_as_is, num_workers=opts.workers,
                        pin_memory=colorizer.device.type == "cuda", prefetch_factor=4 if opts.workers else None,
                        worker_init_fn=_worker_init if opts.workers else None)
    buckets: dict[tuple[int, int], list[dict[str, Any]]] = {}   # by render shape: batches need no padding

    def flush(key: tuple[int, int]) -> Iterator[tuple[int, dict[str, Any]]]:
        pending = buckets.pop(key)
        for item, ab in zip(pending, colorizer.chroma([p["small"] for p in pending])):
            item["ab"] = ab
            if merge:
                finish(colorizer, item, paths[item["i"]], integer_output)
            yield item["i"], item

    for item in loader:
        if "error" not in item and (verdict := admit(item["i"])):
            item["verdict"] = verdict
        if "error" in item or "verdict" in item:
            yield item["i"], item
            continue
        key = tuple(item["small"].shape)
        buckets.setdefault(key, []).append(item)
        if len(buckets[key]) >= opts.batch_size:
            yield from flush(key)
        elif sum(map(len, buckets.values())) >= 2 * opts.batch_size:     # many shapes: bound what is held
            yield from flush(max(buckets, key=lambda k: len(buckets[k])))
    while buckets:
        yield from flush(next(iter(buckets)))


class WriterDied(RuntimeError):
    """The writer thread ended on an error of its own (not one file's): the run stops instead of hanging."""


class Writer:
    """Encodes and writes on a thread so the device never waits on the disk; bounded queue keeps memory flat.
    Any exception while writing one file (MemoryError included) fails that file only; should the thread itself die,
    put() and close() raise WriterDied rather than wait on a queue nobody reads."""

    def __init__(self, jpeg_quality: int, on_done: Callable[[Result], None],
                 write: Callable[[Path, bytes], None] = write_atomic,
                 finish: Callable[[dict[str, Any], Path], None] | None = None):
        self.q: queue.Queue = queue.Queue(maxsize=8)
        self.jpeg_quality, self.on_done, self.write, self.finish = jpeg_quality, on_done, write, finish
        self.died: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def put(self, res: Result, item: dict[str, Any]) -> None:
        self._put((res, item))

    def _put(self, job: tuple[Result, dict[str, Any]] | None) -> None:
        while True:
            if self.died is not None or not self.thread.is_alive():
                raise WriterDied(f"the writer stopped: {_what(self.died) if self.died else 'ended'}")
            try:
                self.q.put(job, timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while (job := self.q.get()) is not None:
                self._write_one(*job)
        except BaseException as e:      # on_done itself failed: say so to the producer instead of vanishing
            self.died = e

    def _write_one(self, res: Result, item: dict[str, Any]) -> None:
        try:
            if "ab" in item and self.finish is not None:    # the merge, here beside the next model call
                self.finish(item, res.src)
            if "error" in item:
                res.status, res.error = Status.FAILED, item["error"]
            else:
                res.warning = res.warning or item.get("warning", "")
                data = encode_image(item["rgb_out"], item["alpha"], res.dst.suffix, item["bit_depth"],
                                    self.jpeg_quality)
                del item["rgb_out"]         # the full-resolution array is not needed while the bytes are written
                self.write(res.dst, data)
        except (ImageError, ValueError, OSError) as e:
            res.status, res.error = Status.FAILED, str(e).splitlines()[0]
        except Exception as e:          # MemoryError on a huge scan included
            res.status, res.error = Status.FAILED, f"{res.src}: cannot write {res.dst}: {_what(e)}"
        res.seconds = time.perf_counter() - item["t0"]
        self.on_done(res)

    def close(self) -> None:
        if self.thread.is_alive() and self.died is None:
            self._put(None)
        self.thread.join()
        if self.died is not None:
            raise WriterDied(f"the writer stopped: {_what(self.died)}") from self.died


def colorize_files(jobs: list[tuple[Path, Path]], colorizer: Engine, opts: Options,
                   on_done: Callable[[Result], None], journal: Any = None) -> None:
    """Colorize each (src, dst) pair; on_done gets one Result per job, in order of completion. With an in-place
    journal, an output that is its own input counts as done only when the journal says so."""
    claimed: dict[Path, Claim] = {}
    lock = threading.Lock()             # the writer thread releases while the stream claims

    def admit(i: int) -> Verdict | None:
        """Claim the output just before the model runs, so overlapping runs share a folder instead of racing."""
        src, dst = jobs[i]
        if not opts.overwrite and _already_done(src, dst, journal):
            return Verdict(Status.SKIPPED, "done by another run meanwhile")
        try:
            held = claim(dst)
        except ClaimError as e:
            return Verdict(Status.FAILED, str(e))
        if held is None:
            return Verdict(Status.CLAIMED, "claimed by another run that is making it now")
        with lock:
            claimed[dst] = held
        return None

    def finished(res: Result) -> None:
        with lock:
            release(claimed.pop(res.dst, None))
        on_done(res)

    writer = Writer(opts.jpeg_quality, finished, finish=lambda item, src: finish(colorizer, item, src, True))
    try:
        for i, item in stream([s for s, _ in jobs], colorizer, opts, admit if opts.claim else lambda i: None,
                              integer_output=True, merge=False):
            src, dst = jobs[i]
            if "error" in item:
                with lock:
                    release(claimed.pop(dst, None))
                on_done(Result(src, dst, Status.FAILED, time.perf_counter() - item["t0"], error=item["error"]))
            elif "verdict" in item:
                v = item["verdict"]
                on_done(Result(src, dst, v.status, error=v.message if v.status == Status.FAILED else "",
                               warning="" if v.status == Status.FAILED else v.message))
            else:
                writer.put(Result(src, dst, Status.OK, warning=item.get("warning", "")), item)
    finally:
        try:
            writer.close()
        finally:
            with lock:
                for held in claimed.values():     # interrupted before these were written: free them
                    release(held)
                claimed.clear()


def _already_done(src: Path, dst: Path, journal: Any) -> bool:
    if journal is not None and os.path.realpath(src) == os.path.realpath(dst):
        return journal.written(dst)
    return dst.exists()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ batch runs over files
def _announce(prog: Reporter, res: Result) -> None:
    """Errors, claims and warnings, each as its file settles (above the bar on a terminal)."""
    if res.status == Status.FAILED:
        prog.echo(f"error: {res.error}")
    elif res.status == Status.CLAIMED:
        prog.echo(f"claimed: {res.dst}: {res.warning}")
    elif res.warning and res.status == Status.OK:
        prog.echo(f"warning: {res.src}: {res.warning}")


def run_jobs(jobs: list[tuple[Path, Path]], settled: list[Result], colorizer: Engine, opts: Options,
             quiet: bool, journal: Any = None) -> list[Result]:
    """Colorize with progress; returns every result (settled first) for the summary and report. A journal
    (batch.InPlaceJournal) records each file written, before the next rerun could see it."""
    results = list(settled)
    prog, meter = Reporter("colorize", len(jobs), quiet=quiet), Meter(len(jobs))
    for r in settled:
        if r.status == Status.FAILED:
            prog.echo(f"error: {r.error}")
    lock = threading.Lock()

    def done(res: Result) -> None:
        with lock:
            if journal is not None and res.status == Status.OK:
                try:
                    journal.record(res.src, res.dst)
                except OSError as e:
                    res.warning = f"written, but not recorded in {journal.path} ({e.strerror}): a rerun redoes it"
            results.append(res)
            _announce(prog, res)
            prog.count(meter.add(), IMAGES)
    try:
        colorize_files(jobs, colorizer, opts, done, journal)
    finally:
        prog.close()
    return results


def summary(results: list[Result], seconds: float) -> str:
    count = {s: sum(r.status == s for r in results) for s in Status}
    rate = count[Status.OK] / max(1e-9, seconds)
    claimed = f", claimed by another run {count[Status.CLAIMED]}" if count[Status.CLAIMED] else ""
    return (f"colorized {count[Status.OK]}, skipped {count[Status.SKIPPED]} (already done){claimed}, "
            f"failed {count[Status.FAILED]} in {seconds:.1f} s ({rate:.2f} img/s)")


def exit_code(results: list[Result]) -> int:
    """0 all done; 1 some input failed; 3 none failed but some outputs are still being made by another run (a cron
    job learns that this run alone does not prove the folder done)."""
    if any(r.status == Status.FAILED for r in results):
        return 1
    return 3 if any(r.status == Status.CLAIMED for r in results) else 0


def write_report(path: Path, results: list[Result]) -> None:
    import json
    rows = [{"input": str(r.src), "output": str(r.dst) if r.dst else None, "status": str(r.status),
             "seconds": round(r.seconds, 4), "error": r.error or None, "warning": r.warning or None} for r in results]
    write_atomic(path, json.dumps(rows, indent=1).encode())
