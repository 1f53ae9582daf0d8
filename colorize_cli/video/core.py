"""Frames to colour, streaming: luminance of each frame, batches through the model, the stabiliser and the reference
guide frame by frame between them, the merge with each frame's own full-resolution luminance.

    frames -> frame_luminance (full res) -> render_small -> model chroma (one call per batch, key frames only)
           -> ChromaStabilizer.step -> ReferenceGuide.apply -> Engine.merge -> RGB
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import cv2
import numpy as np
import torch

from colorize_cli.color import Y_OF_LINEAR_RGB, gray_table, luminance_from_y, srgb_luminance, srgb_to_linear_np
from colorize_cli.pipeline import Engine, render_small
from colorize_cli.progress import Meter
from colorize_cli.registry import DEFAULT_RENDER_SIZE
from colorize_cli.video.ffmpeg import Encoder, VideoInfo
from colorize_cli.video.options import VideoOptions, VideoResult
from colorize_cli.video.stabilize import ChromaStabilizer, np32

if TYPE_CHECKING:  # reference.py builds on ChromaStabilizer, so it is imported where it is used
    from colorize_cli.reference import ReferenceGuide


def _lin_table() -> np.ndarray:
    v = np.arange(256, dtype=np.float32) * np.float32(1 / 255)
    return srgb_to_linear_np(v).astype(np.float32)


_LIN = _lin_table()
_Y_ROW = Y_OF_LINEAR_RGB[None]
_Y_STEPS = 1 << 16
_L_OF_Y = luminance_from_y(np.linspace(0, 1, _Y_STEPS + 1, dtype=np.float32))  # within 7e-5 of the formula
_GRAY_L = gray_table(256)


def frame_luminance(frame: np.ndarray) -> np.ndarray:
    """Lab L / 100 of a uint8 RGB frame (HxWx3): color.srgb_luminance through lookup tables (sRGB -> linear,
    then Y -> L on a 65,536-step table, 0.007 L at worst), fast enough for 4K. Gray frames (a B&W film stored as
    colour) take a single table lookup."""
    if frame.dtype != np.uint8:
        return srgb_luminance(frame.astype(np.float32))
    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return _GRAY_L[r]
    y = cv2.transform(_LIN[frame], _Y_ROW)
    return _L_OF_Y[np.rint(y * _Y_STEPS).astype(np.int32)]


@dataclass
class Item:
    key: Any
    lum: np.ndarray  # full-resolution luminance (H,W) 0..1
    emit: bool = True  # False: warm-up frame, stabiliser only
    reset: bool = False  # restart the stabiliser before this frame
    alpha: np.ndarray | None = None  # frame folders: what the output keeps of the input file
    bit_depth: int = 8


def colorize_items(
    items: Iterable[Item],
    colorizer: Engine,
    stabilizer: ChromaStabilizer,
    render_size: int,
    batch_size: int,
    dtype: type = np.float32,
    guide: ReferenceGuide | None = None,
) -> Iterator[tuple[Item, np.ndarray]]:
    """(item, RGB HxWx3 as float 0..1 or quantised to dtype) for every item with emit, in order. The model sees
    batches; the stabiliser and the merge run frame by frame between them (the stabiliser is sequential by nature).
    With a guide (references, item keys being frame indices) its colour replaces the stabilised one where it reaches,
    and the stabiliser carries that on."""
    batch: list[Item] = []

    def flush() -> Iterator[tuple[Item, np.ndarray]]:
        # No tone stretch: following each frame's own percentiles made real footage less accurate and less steady
        # (benchmarks/RESULTS.md, "Faded prints"); a film's range belongs to the shot, not the frame.
        smalls = [render_small(it.lum, render_size, tones=False) for it in batch]
        keys = [stabilizer.needs_model(small, force=it.reset) for it, small in zip(batch, smalls)]
        chroma = iter(colorizer.chroma([torch.from_numpy(s) for s, k in zip(smalls, keys) if k]) if any(keys) else [])
        for it, small, key in zip(batch, smalls, keys):
            if it.reset:
                stabilizer.reset()
            model_ab: torch.Tensor | np.ndarray | None = next(chroma) if key else None
            if model_ab is not None and guide is not None:  # graded as the shot's reference shows, if any
                model_ab = guide.correct(it.key, small, np32(model_ab))
            ab = stabilizer.step(small, model_ab)
            guided = guide.apply(it.key, small, ab) if guide is not None else None
            if guided is not None:
                ab = stabilizer.prev_ab = guided
            if it.emit:
                rgb, _ = colorizer.merge(torch.from_numpy(it.lum), torch.from_numpy(ab).to(colorizer.device), dtype)
                yield it, rgb
        batch.clear()

    for it in items:
        batch.append(it)
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


def model_chroma(colorizer: Engine) -> Callable[[np.ndarray], np.ndarray]:
    """The model on one render-size luminance (a reference guide fits its grade on it, once per reference)."""
    return lambda lum: np32(colorizer.chroma([torch.from_numpy(np.ascontiguousarray(lum, np.float32))])[0])


def colorize_frames(
    frames: Iterable[np.ndarray],
    colorizer: Engine,
    stabilizer: ChromaStabilizer,
    render_size: int = DEFAULT_RENDER_SIZE,
    batch_size: int = 8,
    warmup: int = 0,
    guide: ReferenceGuide | None = None,
    first: int = 0,
) -> Iterator[np.ndarray]:
    """uint8 RGB frames in -> colorized uint8 RGB frames out, streaming; the first `warmup` frames only prime the
    stabiliser and are not yielded. `first`: the index of the first frame in the film (for the guide)."""
    items = (Item(first + i, frame_luminance(f), emit=i >= warmup) for i, f in enumerate(frames))
    for _, rgb in colorize_items(
        ahead(items, 2 * batch_size), colorizer, stabilizer, render_size, batch_size, np.uint8, guide
    ):
        yield rgb


_DONE = object()


def ahead(source: Iterable[Any], depth: int) -> Iterator[Any]:
    """source's items, produced on a thread up to `depth` ahead: decoding and the luminance tables (numpy and the
    pipe read release the GIL) overlap the model. An exception there is raised here, in order."""
    q: queue.Queue = queue.Queue(max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for x in source:
                if stop.is_set():
                    return
                q.put((x, None))
            q.put((_DONE, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put((_DONE, e))
        finally:
            getattr(source, "close", lambda: None)()  # on this thread: the decoder's pipe is closed here

    t = threading.Thread(target=produce, name="film-decode", daemon=True)
    t.start()
    try:
        while True:
            x, err = q.get()
            if err is not None:
                raise err
            if x is _DONE:
                return
            yield x
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue, then let it see stop
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


def encode_video(
    frames: Iterator[np.ndarray],
    tmp: Path,
    info: VideoInfo,
    colorizer: Engine,
    opts: VideoOptions,
    stab: ChromaStabilizer,
    meter: Meter,
    codec: str,
    warmup: int = 0,
    first: int = 0,
    guide: ReferenceGuide | None = None,
) -> int:
    """Colorize frames (the first is frame `first` of the film) into a video-only file; returns the number written."""
    enc = sink = None
    try:
        for rgb in colorize_frames(frames, colorizer, stab, opts.render_size, opts.batch_size, warmup, guide, first):
            if enc is None:
                enc = Encoder(tmp, rgb.shape[1], rgb.shape[0], info.fps, codec, opts.crf, opts.preset)
                sink = Behind(enc.write, opts.batch_size)
            assert sink is not None  # made with the encoder
            sink.put(rgb)
            meter.add()
        if sink is not None:
            sink.finish()
    finally:
        if sink is not None:
            sink.abandon()
        if enc is not None:
            enc.close()
    return enc.frames if enc is not None else 0


class Behind:
    """write(x) for each put(x), on a thread up to `depth` behind: the pipe to the encoder (which blocks while x264
    catches up) overlaps the model. finish() waits and raises the writer's error, if any."""

    def __init__(self, write: Callable[[Any], None], depth: int):
        self._q: queue.Queue = queue.Queue(max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(write,), name="film-encode", daemon=True)
        self._thread.start()

    def _run(self, write: Callable[[Any], None]) -> None:
        while (x := self._q.get()) is not _DONE:
            if self._error is None:
                try:
                    write(x)
                except BaseException as e:  # noqa: BLE001 - raised on the caller's thread
                    self._error = e

    def put(self, x: Any) -> None:
        if self._error is not None:
            self.finish()
        self._q.put(x)

    def finish(self) -> None:
        self.abandon()
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def abandon(self) -> None:
        if self._thread.is_alive():
            self._q.put(_DONE)
            self._thread.join()


def nonfinite_warning(stab: ChromaStabilizer, result: VideoResult) -> None:
    if stab.nonfinite:
        result.warnings.append(f"model produced NaN/Inf on {stab.nonfinite} frames: left gray")
