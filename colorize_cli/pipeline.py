"""The photo stream behind `colorize dir`, `image` and `eval`, around engine.Engine (the in-memory model + merge):

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
from torch.utils.data import DataLoader, Dataset

from colorize_cli.claims import Claim, ClaimError, claim, release
from colorize_cli.color import srgb_luminance
from colorize_cli.engine import (
    PRECISIONS,
    Engine,
    Options,
    Precision,
    check_precision,
    prepare,
    render_shape,
    render_small,
    set_threads,
)
from colorize_cli.imaging import ImageError, encode_image, read_image, write_atomic
from colorize_cli.progress import IMAGES, Meter, Reporter

# The stream's names, then the engine's, re-exported: the stream's callers build the Engine and Options it takes.
__all__ = [
    "Status",
    "Result",
    "ReadSet",
    "Verdict",
    "stream",
    "finish",
    "Writer",
    "WriterDied",
    "colorize_files",
    "run_jobs",
    "log",
    "summary",
    "exit_code",
    "write_report",
    "PRECISIONS",
    "Engine",
    "Options",
    "Precision",
    "check_precision",
    "render_shape",
    "render_small",
    "set_threads",
    "srgb_luminance",
]


class Status(str, Enum):
    """What became of one input. A str Enum, so reports and comparisons read the plain word."""

    OK = "ok"
    SKIPPED = "skipped"  # done before (or meanwhile, by another run), or not this shard's
    CLAIMED = "claimed"  # another live run is making this output right now: not known to be done
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


def _start_workers(loader: DataLoader) -> Iterator[dict[str, Any]]:
    """The loader's iterator, its decode workers forked while OpenCV runs one thread, so each worker is one lane (its
    own pool would fight the model for the cores). A worker must never set this itself: cv2.setNumThreads in a forked
    child waits forever on the parent's pool threads, which the child does not have."""
    if not loader.num_workers:
        return iter(loader)
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return iter(loader)
    finally:
        cv2.setNumThreads(before)


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
        except Exception as e:  # MemoryError on a huge scan included: this file fails, the run goes on
            return {"i": i, "error": f"{self.paths[i]}: cannot read: {_what(e)}", "t0": t0}
        item = {
            "i": i,
            "lum": torch.from_numpy(lum),
            "small": torch.from_numpy(small),
            "alpha": img.alpha,
            "bit_depth": img.bit_depth,
            "ext": img.ext,
            "t0": t0,
        }
        if self.opts.keep_input:
            item["rgb"] = img.rgb
        return item


def _what(e: BaseException) -> str:
    """One line for an unexpected exception (a MemoryError's own message is empty)."""
    text = str(e).splitlines()[0] if str(e) else ""
    return (
        f"{type(e).__name__}: {text}" if text else ("out of memory" if isinstance(e, MemoryError) else type(e).__name__)
    )


def _as_is(item: Any) -> Any:
    """Keep worker output as built (the default would turn numpy alpha into tensors)."""
    return item


@dataclass(frozen=True)
class Verdict:
    """Why admit() keeps an input from the model: skipped or claimed (with the reason) or failed (the error)."""

    status: Status
    message: str


def stream(
    paths: list[Path],
    colorizer: Engine,
    opts: Options,
    admit: Callable[[int], Verdict | None] = lambda i: None,
    integer_output: bool = False,
    merge: bool = True,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, item) for every path, in input order except that batches gather photos of one render shape (so none
    is padded); item has "rgb_out" (HxWx3 float, or with integer_output the integer type of
    the input's bit depth, a quarter of the memory for writing), "error", or "verdict" (what admit(index) said instead
    of running the model on it). With merge False an item has the chroma "ab" instead of "rgb_out", and the caller
    runs finish() on it, on another thread (the writer's), so the merge overlaps the next model call."""
    before = set_threads(opts.threads)
    try:
        yield from _stream(paths, colorizer, opts, admit, integer_output, merge)
    finally:  # an API caller's own thread settings come back after the run
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def finish(colorizer: Engine, item: dict[str, Any], src: Path, integer_output: bool) -> None:
    """Merge one streamed item's chroma ("ab") at full resolution: the item gets "rgb_out" (and a "warning" when the
    model's chroma was not finite), or "error"."""
    dtype = (np.uint16 if item["bit_depth"] == 16 else np.uint8) if integer_output else np.float32
    try:
        item["rgb_out"], finite = colorizer.merge(item["lum"], item.pop("ab"), dtype)
    except Exception as e:  # MemoryError at full resolution: this file fails, the run goes on
        item["error"] = f"{src}: cannot colorize: {_what(e)}"
        return
    if not finite:
        item["warning"] = "model produced NaN/Inf: wrote the gray input instead"


def _stream(
    paths: list[Path],
    colorizer: Engine,
    opts: Options,
    admit: Callable[[int], Verdict | None],
    integer_output: bool,
    merge: bool,
) -> Iterator[tuple[int, dict[str, Any]]]:
    loader = DataLoader(
        ReadSet(paths, opts),
        batch_size=None,
        collate_fn=_as_is,
        num_workers=opts.workers,
        pin_memory=colorizer.device.type == "cuda",
        prefetch_factor=4 if opts.workers else None,
    )
    buckets: dict[tuple[int, int], list[dict[str, Any]]] = {}  # by render shape: batches need no padding

    def flush(key: tuple[int, int]) -> Iterator[tuple[int, dict[str, Any]]]:
        pending = buckets.pop(key)
        for item, ab in zip(pending, colorizer.chroma([p["small"] for p in pending])):
            item["ab"] = ab
            if merge:
                finish(colorizer, item, paths[item["i"]], integer_output)
            yield item["i"], item

    for item in _start_workers(loader):
        if "error" not in item and (verdict := admit(item["i"])):
            item["verdict"] = verdict
        if "error" in item or "verdict" in item:
            yield item["i"], item
            continue
        key = tuple(item["small"].shape)
        buckets.setdefault(key, []).append(item)
        if len(buckets[key]) >= opts.batch_size:
            yield from flush(key)
        elif sum(map(len, buckets.values())) >= 2 * opts.batch_size:  # many shapes: bound what is held
            yield from flush(max(buckets, key=lambda k: len(buckets[k])))
    while buckets:
        yield from flush(next(iter(buckets)))


class WriterDied(RuntimeError):
    """The writer thread ended on an error of its own (not one file's): the run stops instead of hanging."""


class Writer:
    """Encodes and writes on a thread so the device never waits on the disk; bounded queue keeps memory flat.
    Any exception while writing one file (MemoryError included) fails that file only; should the thread itself die,
    put() and close() raise WriterDied rather than wait on a queue nobody reads."""

    def __init__(
        self,
        jpeg_quality: int,
        on_done: Callable[[Result], None],
        write: Callable[[Path, bytes], None] = write_atomic,
        finish: Callable[[dict[str, Any], Path], None] | None = None,
    ):
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
        except BaseException as e:  # on_done itself failed: say so to the producer instead of vanishing
            self.died = e

    def _write_one(self, res: Result, item: dict[str, Any]) -> None:
        try:
            if "ab" in item and self.finish is not None:  # the merge, here beside the next model call
                self.finish(item, res.src)
            if "error" in item:
                res.status, res.error = Status.FAILED, item["error"]
            else:
                res.warning = res.warning or item.get("warning", "")
                assert res.dst is not None  # a job always has its output; only settled results may lack one
                data = encode_image(
                    item["rgb_out"], item["alpha"], res.dst.suffix, item["bit_depth"], self.jpeg_quality
                )
                del item["rgb_out"]  # the full-resolution array is not needed while the bytes are written
                self.write(res.dst, data)
        except (ImageError, ValueError, OSError) as e:
            res.status, res.error = Status.FAILED, str(e).splitlines()[0]
        except Exception as e:  # MemoryError on a huge scan included
            res.status, res.error = Status.FAILED, f"{res.src}: cannot write {res.dst}: {_what(e)}"
        res.seconds = time.perf_counter() - item["t0"]
        self.on_done(res)

    def close(self) -> None:
        if self.thread.is_alive() and self.died is None:
            self._put(None)
        self.thread.join()
        if self.died is not None:
            raise WriterDied(f"the writer stopped: {_what(self.died)}") from self.died


def colorize_files(
    jobs: list[tuple[Path, Path]],
    colorizer: Engine,
    opts: Options,
    on_done: Callable[[Result], None],
    journal: Any = None,
) -> None:
    """Colorize each (src, dst) pair; on_done gets one Result per job, in order of completion. With an in-place
    journal, an output that is its own input counts as done only when the journal says so."""
    claimed: dict[Path, Claim] = {}
    lock = threading.Lock()  # the writer thread releases while the stream claims

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
            release(claimed.pop(res.dst, None) if res.dst is not None else None)
        on_done(res)

    writer = Writer(opts.jpeg_quality, finished, finish=lambda item, src: finish(colorizer, item, src, True))
    try:
        for i, item in stream(
            [s for s, _ in jobs],
            colorizer,
            opts,
            admit if opts.claim else lambda i: None,
            integer_output=True,
            merge=False,
        ):
            src, dst = jobs[i]
            if "error" in item:
                with lock:
                    release(claimed.pop(dst, None))
                on_done(Result(src, dst, Status.FAILED, time.perf_counter() - item["t0"], error=item["error"]))
            elif "verdict" in item:
                v = item["verdict"]
                on_done(
                    Result(
                        src,
                        dst,
                        v.status,
                        error=v.message if v.status == Status.FAILED else "",
                        warning="" if v.status == Status.FAILED else v.message,
                    )
                )
            else:
                writer.put(Result(src, dst, Status.OK, warning=item.get("warning", "")), item)
    finally:
        try:
            writer.close()
        finally:
            with lock:
                for held in claimed.values():  # interrupted before these were written: free them
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


def run_jobs(
    jobs: list[tuple[Path, Path]],
    settled: list[Result],
    colorizer: Engine,
    opts: Options,
    quiet: bool,
    journal: Any = None,
) -> list[Result]:
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
    return (
        f"colorized {count[Status.OK]}, skipped {count[Status.SKIPPED]} (already done){claimed}, "
        f"failed {count[Status.FAILED]} in {seconds:.1f} s ({rate:.2f} img/s)"
    )


def exit_code(results: list[Result]) -> int:
    """0 all done; 1 some input failed; 3 none failed but some outputs are still being made by another run (a cron
    job learns that this run alone does not prove the folder done)."""
    if any(r.status == Status.FAILED for r in results):
        return 1
    return 3 if any(r.status == Status.CLAIMED for r in results) else 0


def write_report(path: Path, results: list[Result]) -> None:
    import json

    rows = [
        {
            "input": str(r.src),
            "output": str(r.dst) if r.dst else None,
            "status": str(r.status),
            "seconds": round(r.seconds, 4),
            "error": r.error or None,
            "warning": r.warning or None,
        }
        for r in results
    ]
    write_atomic(path, json.dumps(rows, indent=1).encode())
