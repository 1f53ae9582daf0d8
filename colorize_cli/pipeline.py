"""The photo runs behind `colorize dir` and `image`: stream.py's items through a writer thread, with claims against
overlapping runs, progress and the in-place journal.

    (src, dst) jobs -> claim each output just before the model runs (admit)
                    -> stream.stream: decode workers -> batched model chroma   (no merge on this thread)
                    -> [Writer thread: stream.finish (merge at full resolution), encode, temp file, atomic rename]
                    -> on_done(Result): release the claim, journal, progress line; results.py sums them up

The model is only ever called through `chroma(lum)`, so this file never knows which architecture runs.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from colorize_cli.claims import Claim, ClaimError, claim, release
from colorize_cli.color import srgb_luminance
from colorize_cli.engine import (
    PRECISIONS,
    Engine,
    Options,
    Precision,
    check_precision,
    render_shape,
    render_small,
    set_threads,
)
from colorize_cli.imaging import ImageError, encode_image, write_atomic
from colorize_cli.progress import IMAGES, Meter, Reporter
from colorize_cli.results import Result, Status, exit_code, summary, write_report
from colorize_cli.stream import ReadSet, StreamItem, Verdict, finish, stream, what

# The runs' names, then the results', the stream's and the engine's, re-exported: one import for the callers.
__all__ = [
    "Writer",
    "WriterDied",
    "colorize_files",
    "run_jobs",
    "log",
    "Status",
    "Result",
    "summary",
    "exit_code",
    "write_report",
    "ReadSet",
    "StreamItem",
    "Verdict",
    "stream",
    "finish",
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
        finish: Callable[[StreamItem, Path], None] | None = None,
    ):
        self.q: queue.Queue = queue.Queue(maxsize=8)
        self.jpeg_quality, self.on_done, self.write, self.finish = jpeg_quality, on_done, write, finish
        self.died: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def put(self, res: Result, item: StreamItem) -> None:
        self._put((res, item))

    def _put(self, job: tuple[Result, StreamItem] | None) -> None:
        while True:
            if self.died is not None or not self.thread.is_alive():
                raise WriterDied(f"the writer stopped: {what(self.died) if self.died else 'ended'}")
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

    def _write_one(self, res: Result, item: StreamItem) -> None:
        try:
            if item.ab is not None and self.finish is not None:  # the merge, here beside the next model call
                self.finish(item, res.src)
            if item.error is not None:
                res.status, res.error = Status.FAILED, item.error
            else:
                res.warning = res.warning or item.warning
                assert res.dst is not None  # a job always has its output; only settled results may lack one
                assert item.rgb_out is not None  # merged: finish() gave it its picture or its error
                data = encode_image(item.rgb_out, item.alpha, res.dst.suffix, item.bit_depth, self.jpeg_quality)
                item.rgb_out = None  # the full-resolution array is not needed while the bytes are written
                self.write(res.dst, data)
        except (ImageError, ValueError, OSError) as e:
            res.status, res.error = Status.FAILED, str(e).splitlines()[0]
        except Exception as e:  # MemoryError on a huge scan included
            res.status, res.error = Status.FAILED, f"{res.src}: cannot write {res.dst}: {what(e)}"
        res.seconds = time.perf_counter() - item.t0
        self.on_done(res)

    def close(self) -> None:
        if self.thread.is_alive() and self.died is None:
            self._put(None)
        self.thread.join()
        if self.died is not None:
            raise WriterDied(f"the writer stopped: {what(self.died)}") from self.died


class _Claims:
    """The outputs this run holds while it makes them. The stream claims (admit) while the writer thread releases."""

    def __init__(self, jobs: list[tuple[Path, Path]], overwrite: bool, journal: Any):
        self.jobs, self.overwrite, self.journal = jobs, overwrite, journal
        self.held: dict[Path, Claim] = {}
        self.lock = threading.Lock()

    def admit(self, i: int) -> Verdict | None:
        """Claim the output just before the model runs, so overlapping runs share a folder instead of racing."""
        src, dst = self.jobs[i]
        if not self.overwrite and _already_done(src, dst, self.journal):
            return Verdict(Status.SKIPPED, "done by another run meanwhile")
        try:
            held = claim(dst)
        except ClaimError as e:
            return Verdict(Status.FAILED, str(e))
        if held is None:
            return Verdict(Status.CLAIMED, "claimed by another run that is making it now")
        with self.lock:
            self.held[dst] = held
        return None

    def release(self, dst: Path | None) -> None:
        with self.lock:
            release(self.held.pop(dst, None) if dst is not None else None)

    def release_all(self) -> None:
        """Interrupted before these were written: free them."""
        with self.lock:
            for held in self.held.values():
                release(held)
            self.held.clear()


def _settled(src: Path, dst: Path, item: StreamItem) -> Result:
    """The Result of an item that never reached the writer: its decoding failed, or admit() said why not."""
    if item.error is not None:
        return Result(src, dst, Status.FAILED, time.perf_counter() - item.t0, error=item.error)
    assert item.verdict is not None
    v = item.verdict
    failed = v.status == Status.FAILED
    return Result(src, dst, v.status, error=v.message if failed else "", warning="" if failed else v.message)


def colorize_files(
    jobs: list[tuple[Path, Path]],
    colorizer: Engine,
    opts: Options,
    on_done: Callable[[Result], None],
    journal: Any = None,
) -> None:
    """Colorize each (src, dst) pair; on_done gets one Result per job, in order of completion. With an in-place
    journal, an output that is its own input counts as done only when the journal says so."""
    claims = _Claims(jobs, opts.overwrite, journal)

    def finished(res: Result) -> None:
        claims.release(res.dst)
        on_done(res)

    writer = Writer(opts.jpeg_quality, finished, finish=lambda item, src: finish(colorizer, item, src, True))
    admit = claims.admit if opts.claim else lambda i: None
    try:
        for i, item in stream([s for s, _ in jobs], colorizer, opts, admit, integer_output=True, merge=False):
            src, dst = jobs[i]
            if item.error is not None:
                claims.release(dst)
                on_done(_settled(src, dst, item))
            elif item.verdict is not None:
                on_done(_settled(src, dst, item))
            else:
                writer.put(Result(src, dst, Status.OK, warning=item.warning), item)
    finally:
        try:
            writer.close()
        finally:
            claims.release_all()


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
