"""The photo stream in memory: decode in DataLoader workers -> batches of one render shape -> model chroma -> merge.

    paths -> [ReadSet in workers: decode, luminance, resize to render size] -> StreamItem (pickled across the pipe)
          -> buckets by render shape -> Engine.chroma (one call per batch, nothing padded)
          -> finish: Engine.merge at full resolution (here, or on the writer's thread: pipeline.Writer)

The model is only ever called through `chroma(lum)`, so this file never knows which architecture runs, and it never
writes a file.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from colorize_cli.engine import Engine, Options, prepare, set_threads
from colorize_cli.imaging import ImageError, read_image
from colorize_cli.results import Status

PIPE_BYTES = 1 << 20  # StreamItem tensors under this size cross from the decode workers pickled, not shared


@dataclass(frozen=True)
class Verdict:
    """Why admit() keeps an input from the model: skipped or claimed (with the reason) or failed (the error)."""

    status: Status
    message: str


@dataclass
class StreamItem:
    """One photo on its way through the stream. A DataLoader worker builds it (it crosses the pipe pickled, so it
    holds only tensors, arrays and plain values); the model fills in `ab`, the merge `rgb_out`. An input that could
    not be decoded has only `error`; one admit() kept from the model has its `verdict`."""

    i: int  # the input's index in the stream's paths
    t0: float  # when its decoding began: the file's time in reports
    lum: torch.Tensor | None = None  # full-resolution luminance, 0..1
    small: torch.Tensor | None = None  # luminance at render size: the model's input
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    ext: str = ""
    rgb: np.ndarray | None = None  # the input's own colours (Options.keep_input: eval needs the truth)
    ab: torch.Tensor | None = None  # the model's chroma at render size, until the merge takes it
    rgb_out: np.ndarray | None = None  # the colorized photo at full resolution
    error: str | None = None
    warning: str = ""  # e.g. the model's chroma was not finite
    verdict: Verdict | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Crossing the pipe, a small image's luminance travels as plain bytes: a tensor goes through a shared-memory
        file and its descriptor, 1.4 ms of the main process's time per 256x256 photo against 0.45 as bytes; at 1 MP
        the shared file wins (2.4 against 7 ms)."""
        state = self.__dict__.copy()
        for key in ("lum", "small"):
            t = state[key]
            if t is not None and t.numel() * t.element_size() < PIPE_BYTES:
                state[key] = t.numpy()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key in ("lum", "small"):
            if isinstance(state[key], np.ndarray):
                state[key] = torch.from_numpy(state[key])
        self.__dict__.update(state)

    def pin_memory(self) -> StreamItem:
        """DataLoader(pin_memory=True) calls this: the luminance tensors pinned, for a faster copy to the GPU."""
        if self.lum is not None:
            self.lum = self.lum.pin_memory()
        if self.small is not None:
            self.small = self.small.pin_memory()
        return self


def _start_workers(loader: DataLoader) -> Iterator[StreamItem]:
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


_PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent(parent: int, worker_id: int) -> None:
    """DataLoader's worker_init_fn (a partial with the run's pid): on Linux a worker is killed when the run that forked
    it dies. A run killed with SIGKILL never tells its workers to stop; torch's worker notices, but then hangs at exit
    joining its queue's feeder thread, whose reader is gone: one orphan per worker and kill, for good
    (tests/test_reliability.py). The signal follows the thread that made the DataLoader's iterator, which is the one
    that reads from it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        zero = ctypes.c_ulong(0)
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), zero, zero, zero)
    except (OSError, AttributeError):  # no prctl: the worker lives as before
        return
    if os.getppid() != parent:  # the run died before the request took hold
        os._exit(1)


class ReadSet(Dataset):
    """Decodes in DataLoader workers; a bad file becomes an item with its error, never an exception across the pipe."""

    def __init__(self, paths: list[Path], opts: Options):
        self.paths, self.opts = paths, opts

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> StreamItem:
        t0 = time.perf_counter()
        try:
            img = read_image(self.paths[i], self.opts.max_pixels)
            lum, small = prepare(img, self.opts)
        except ImageError as e:
            return StreamItem(i, t0, error=str(e))
        except Exception as e:  # MemoryError on a huge scan included: this file fails, the run goes on
            return StreamItem(i, t0, error=f"{self.paths[i]}: cannot read: {what(e)}")
        return StreamItem(
            i,
            t0,
            lum=torch.from_numpy(lum),
            small=torch.from_numpy(small),
            alpha=img.alpha,
            bit_depth=img.bit_depth,
            ext=img.ext,
            rgb=img.rgb if self.opts.keep_input else None,
        )


def what(e: BaseException) -> str:
    """One line for an unexpected exception (a MemoryError's own message is empty)."""
    text = str(e).splitlines()[0] if str(e) else ""
    return (
        f"{type(e).__name__}: {text}" if text else ("out of memory" if isinstance(e, MemoryError) else type(e).__name__)
    )


def _as_is(item: Any) -> Any:
    """Keep worker output as built (the default collate would turn numpy alpha into tensors)."""
    return item


def stream(
    paths: list[Path],
    colorizer: Engine,
    opts: Options,
    admit: Callable[[int], Verdict | None] = lambda i: None,
    integer_output: bool = False,
    merge: bool = True,
) -> Iterator[tuple[int, StreamItem]]:
    """(index, item) for every path, in input order except that batches gather photos of one render shape (so none
    is padded); an item has `rgb_out` (HxWx3 float, or with integer_output the integer type of the input's bit depth,
    a quarter of the memory for writing), `error`, or `verdict` (what admit(index) said instead of running the model
    on it). With merge False an item has the chroma `ab` instead of `rgb_out`, and the caller runs finish() on it, on
    another thread (the writer's), so the merge overlaps the next model call."""
    before = set_threads(opts.threads)
    try:
        yield from _stream(paths, colorizer, opts, admit, integer_output, merge)
    finally:  # an API caller's own thread settings come back after the run
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def finish(colorizer: Engine, item: StreamItem, src: Path, integer_output: bool) -> None:
    """Merge one streamed item's chroma (`ab`) at full resolution: the item gets `rgb_out` (and a `warning` when the
    model's chroma was not finite), or `error`."""
    dtype = (np.uint16 if item.bit_depth == 16 else np.uint8) if integer_output else np.float32
    ab, item.ab = item.ab, None
    assert item.lum is not None and ab is not None  # only decoded items reach the merge
    try:
        item.rgb_out, finite = colorizer.merge(item.lum, ab, dtype)
    except Exception as e:  # MemoryError at full resolution: this file fails, the run goes on
        item.error = f"{src}: cannot colorize: {what(e)}"
        return
    if not finite:
        item.warning = "model produced NaN/Inf: wrote the gray input instead"


def _stream(
    paths: list[Path],
    colorizer: Engine,
    opts: Options,
    admit: Callable[[int], Verdict | None],
    integer_output: bool,
    merge: bool,
) -> Iterator[tuple[int, StreamItem]]:
    loader = DataLoader(
        ReadSet(paths, opts),
        batch_size=None,
        collate_fn=_as_is,
        num_workers=opts.workers,
        pin_memory=colorizer.device.type == "cuda",
        prefetch_factor=4 if opts.workers else None,
        worker_init_fn=functools.partial(die_with_parent, os.getpid()),
    )
    buckets: dict[tuple[int, ...], list[tuple[StreamItem, torch.Tensor]]] = {}  # by render shape: no padding

    def flush(key: tuple[int, ...]) -> Iterator[tuple[int, StreamItem]]:
        pending = buckets.pop(key)
        for (item, _), ab in zip(pending, colorizer.chroma([small for _, small in pending])):
            item.ab = ab
            if merge:
                finish(colorizer, item, paths[item.i], integer_output)
            yield item.i, item

    for item in _start_workers(loader):
        if item.error is None and (verdict := admit(item.i)):
            item.verdict = verdict
        if item.error is not None or item.verdict is not None:
            yield item.i, item
            continue
        assert item.small is not None  # decoded: it has its render-size luminance
        key = tuple(item.small.shape)
        buckets.setdefault(key, []).append((item, item.small))
        if len(buckets[key]) >= opts.batch_size:
            yield from flush(key)
        elif sum(map(len, buckets.values())) >= 2 * opts.batch_size:  # many shapes: bound what is held
            yield from flush(max(buckets, key=lambda k: len(buckets[k])))
    while buckets:
        yield from flush(next(iter(buckets)))
