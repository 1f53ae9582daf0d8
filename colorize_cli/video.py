"""Colorize film: a video file (audio kept) or a folder of frames, with temporal stabilisation.

    video file -> ffmpeg decode (rgb24 pipe, streamed: never all frames on disk or in memory)
               -> batches of N frames: full-res luminance + render-size luminance -> model chroma (one call per batch)
               -> ChromaStabilizer, frame by frame (optical flow on the render-size luminance, warp the previous
                  stabilised chroma, blend it in where the warp is trustworthy, reset at scene cuts; with
                  --key-every K the model sees only every K-th frame and the rest are carried along the flow)
               -> merge with each frame's own full-res luminance -> ffmpeg encode (video only, temp file)
               -> ffmpeg mux: video stream-copied, the source's audio copied (re-encoded to AAC, or Opus for .webm,
                  only when the container cannot hold it) -> atomic rename to the output name.

The output keeps the input's frame count, frame rate and exact width x height. The luminance always comes from the
frames themselves, so a black-and-white film stored as colour video (three equal channels) needs nothing special.
Container and encoder follow the output's extension (.mp4/.m4v/.mov/.mkv: libx264, .webm: libvpx-vp9); --codec and
--crf override. Colour is written as BT.709 (tagged), limited range. --start/--end select whole frames (the first frame
at or after --start up to the last one before --end) and the audio is cut to the same span.

Never a half-written file under the output name, never a file over the source: the encoder and the mux write hidden
temporaries beside the output whose names are unique to the run (claims.temp_file: pid, start time, host, random;
created with O_EXCL, so never an existing file), the result is checked (frame count) and then renamed; any failure,
Ctrl-C included, removes those temporaries and nothing else. The run holds a claim on the output (as `dir` does per
photo), so an overlapping run on the same film stops with "claimed" instead of sharing its temporaries or segments.

Resume (segment_seconds S > 0): the film is cut into segments of round(S * fps) frames. Each finished segment is encoded
to `.NAME.segments/seg_00000.EXT` (a hidden folder beside the output) and recorded in its manifest.json, so a crash or
Ctrl-C loses at most the segment in progress. A rerun with the same options skips the finished segments (it seeks
straight to the first missing one), encodes the rest, joins all of them with ffmpeg's concat demuxer (-c copy), muxes
the audio, renames, and removes the folder. Each segment first runs the model on the WARMUP frames before it (not
written) so the stabiliser's state at the boundary is close to that of an unbroken run; every segment does this,
interrupted or not, so the result does not depend on where a run was stopped. Changing anything that affects the picture
(model, render size, strength, key frames, codec, crf, trims, segment length, the source file) discards the old
segments. Segment boundaries are found by seeking in time: exact for constant-frame-rate sources (film transfers, camera
files).

References (`--reference WHEN=IMAGE`, colorize_cli/reference.py): a colour image of one frame, checked against its frame
before any work, whose chroma is carried forward and backward along the flow through its shot (ReferenceGuide, applied
after the stabiliser; the stabiliser then carries the guided colour on). The carry needs only luminance: each segment
and a folder rerun replay it from the reference, so a resumed run gives the colours of an unbroken one.

Frame folders (`colorize video frames/ -o colour_frames/`): the images (sorted by name) are the frames; each output has
the input's name and format and is written atomically. A rerun skips frames already written; stabilisation restarts
(after a WARMUP-frame warm-up) at the first missing frame.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import cv2
import imageio_ffmpeg
import numpy as np
import torch

from colorize_cli import runlog
from colorize_cli.batch import Inputs
from colorize_cli.claims import ClaimError, claim, is_temp_name, release, sweep, temp_file
from colorize_cli.imaging import ImageError, encode_image, iter_images, output_path, read_image, write_atomic
from colorize_cli.pipeline import (Y_OF_LINEAR_RGB, Engine, luminance_from_y, render_small,
                                   srgb_luminance)
from colorize_cli.registry import DEFAULT_RENDER_SIZE

if TYPE_CHECKING:     # reference.py builds on ChromaStabilizer, so it is imported where it is used
    from colorize_cli.reference import Reference, ReferenceGuide, ReferenceSpec

DEFAULT_STRENGTH = 0.7
WARMUP = 8                      # frames run through model + stabiliser before a resumed segment, not written
VIDEO_EXTENSIONS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9"}
CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"}
PRESET_CODECS = {"libx264", "libx265"}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
_MP4_LIKE = {".mp4", ".m4v", ".mov"}


class VideoError(Exception):
    """One line that names the file: cannot read it, no video stream, truncated, cannot write."""


class VideoClaimed(VideoError):
    """Another live run is making this output now (exit status 3: not failed, not known to be done)."""


@dataclass
class VideoOptions:
    render_size: int = DEFAULT_RENDER_SIZE
    batch_size: int = 8
    strength: float = DEFAULT_STRENGTH
    key_every: int = 1                 # run the model on every K-th frame, carry chroma along the flow between
    crf: int = 18
    preset: str | None = None          # x264/x265 speed preset; None: the encoder's own (medium)
    codec: str | None = None           # None: by the output's extension
    start: float | None = None         # seconds
    end: float | None = None
    segment_seconds: float = 0.0       # 0: one pass; > 0: resumable segments
    overwrite: bool = False
    jpeg_quality: int = 95             # frame folders
    references: tuple[ReferenceSpec, ...] = ()   # --reference: colour images of frames, carried through their shots


@dataclass
class VideoResult:
    src: Path
    dst: Path
    status: str = "ok"                 # "ok" or "skipped" (output already there)
    frames: int = 0                    # frames colorized and written in this run
    reused: int = 0                    # frames already done (finished segments, existing frame files)
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)    # frame folders: one line per unreadable/unwritable frame
    warnings: list[str] = field(default_factory=list)
    cuts: int = 0                      # scene cuts the stabiliser reset at


@dataclass
class Tick:
    done: int                          # frames finished, reused ones included
    total: int | None                  # best estimate, None if unknown
    fps: float                         # frames per second colorized in this run
    eta_s: float | None


ProgressFn = Callable[[Tick], None]


# ------------------------------------------------------------------------------------------------- stabilisation
class ChromaStabilizer:
    """Temporal smoothing of predicted chroma along optical flow; one frame at a time, in order.

    step(lum, ab): lum (h,w) luminance 0..1 at render size, ab (2,h,w) the model's Lab chroma for that frame.
    Farneback flow from the current frame back to the previous one warps the previous *stabilised* chroma onto this
    frame; the result is  ab_t = (1 - a) * pred_t + a * warped_prev,  a = strength * confidence, where confidence
    (per pixel, 0..1) needs both a consistent forward-backward flow and a warped previous luminance that matches this
    one (after removing each frame's mean, so old-film exposure flicker does not count as a mismatch); pixels warped
    from outside the frame get 0. A scene cut (the mean-free luminance histograms of consecutive frames differ by more
    than cut_threshold in total variation, or the mean absolute luminance change exceeds cut_mad) restarts from the
    prediction. Non-finite predictions become gray and restart too.

    Key frames (key_every K > 1, for speed): needs_model() picks every K-th frame and the first after a cut; only
    those go through the network, and step(lum, None) carries the previous chroma along the flow to the frames between.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, *, key_every: int = 1, cut_threshold: float = 0.4,
                 cut_mad: float = 0.25, photo_sigma: float = 0.05, fb_sigma: float = 1.0, flow_size: int = 160):
        self.strength = float(np.clip(strength, 0.0, 1.0))
        self.key_every = max(1, int(key_every))
        self._plan_prev: tuple[np.ndarray, np.ndarray] | None = None
        self._since_key = 0
        self.cut_threshold, self.cut_mad = cut_threshold, cut_mad
        self.photo_sigma, self.fb_sigma, self.flow_size = photo_sigma, fb_sigma, flow_size
        self.frames = self.cuts = self.nonfinite = 0
        self.confidence_sum = 0.0
        self._grid_cache: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None
        self._planned: collections.deque = collections.deque()   # (lum, blurred, hist) from needs_model, for step
        self.reset()

    def reset(self) -> None:
        self.prev_ab: np.ndarray | None = None
        self.prev_lum: np.ndarray | None = None      # blurred, full render size
        self.prev_flow: np.ndarray | None = None     # uint8 at flow size
        self.prev_hist: np.ndarray | None = None

    @property
    def mean_confidence(self) -> float:
        return self.confidence_sum / max(1, self.frames)

    def needs_model(self, lum: np.ndarray, force: bool = False) -> bool:
        """Key-frame planning, called for each frame in order before any step: True for every key_every-th frame, the
        first, and the first after a scene cut (decided on luminance alone, as step decides, so a carried frame is
        never a cut); the frames between are carried along optical flow from the last one (step with ab None)."""
        if self.key_every <= 1:
            return True
        blurred, hist = _features(_np32(lum))
        self._planned.append((lum, blurred, hist))
        prev = self._plan_prev
        key = (force or prev is None or prev[0].shape != blurred.shape or self._since_key >= self.key_every
               or self._is_cut(prev[0], prev[1], blurred, hist))
        self._since_key = 1 if key else self._since_key + 1
        self._plan_prev = (blurred, hist)
        return key

    def step(self, lum: np.ndarray | torch.Tensor, ab: np.ndarray | torch.Tensor | None) -> np.ndarray:
        """The stabilised chroma for this frame: ab blended with the warped previous chroma, or with ab None (a frame
        between key frames) the previous chroma carried along the flow alone."""
        planned = self._planned.popleft() if self._planned else None
        if planned is not None and planned[0] is not lum:     # not the frame planned next: plan afresh
            self._planned.clear()
            planned = None
        lum = _np32(lum)
        ab = None if ab is None else _np32(ab)
        self.frames += 1
        if ab is not None and not np.isfinite(ab).all():
            self.nonfinite += 1
            ab = np.zeros_like(ab)
            self.reset()
        if self.strength <= 0 and self.key_every <= 1:
            return ab
        blurred, hist = planned[1:] if planned is not None else _features(lum)
        flow_img, scale = self._flow_image(blurred)
        out = ab if ab is not None else np.zeros((2, *lum.shape), np.float32)
        if self.prev_ab is not None and self.prev_ab.shape == out.shape:
            if self._is_cut(self.prev_lum, self.prev_hist, blurred, hist):
                self.cuts += 1
            else:
                warped, conf = self._warp(blurred, flow_img, scale)
                self.confidence_sum += float(conf.mean())
                a = (self.strength * conf)[None]
                out = warped if ab is None else ab + a * (warped - ab)
        self.prev_ab, self.prev_lum, self.prev_flow, self.prev_hist = out, blurred, flow_img, hist
        return out

    def _is_cut(self, prev_blurred: np.ndarray, prev_hist: np.ndarray, blurred: np.ndarray, hist: np.ndarray) -> bool:
        tv = 0.5 * float(np.abs(hist - prev_hist).sum())
        mad = float(np.abs(blurred - prev_blurred).mean())
        return tv > self.cut_threshold or mad > self.cut_mad

    def _flow_image(self, blurred: np.ndarray) -> tuple[np.ndarray, float]:
        """uint8 luminance for Farneback, shrunk so the short side is at most flow_size (cost ~ pixels)."""
        h, w = blurred.shape
        s = min(1.0, self.flow_size / min(h, w))
        img = blurred if s == 1.0 else cv2.resize(blurred, (max(1, round(w * s)), max(1, round(h * s))),
                                                  interpolation=cv2.INTER_AREA)
        return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8), s

    def _grid(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        if self._grid_cache is None or self._grid_cache[0] != (h, w):
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid_cache = ((h, w), gx, gy)
        return self._grid_cache[1], self._grid_cache[2]

    def _warp(self, blurred: np.ndarray, flow_img: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """The previous stabilised chroma moved onto this frame, and a per-pixel confidence 0..1."""
        h, w = blurred.shape
        back, fwd = _flow_pair(flow_img, self.prev_flow)   # back: this frame's pixel -> where it was in the previous
        if scale != 1.0:
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) / scale
            fwd = cv2.resize(fwd, (w, h), interpolation=cv2.INTER_LINEAR) / scale
        gx, gy = self._grid(h, w)
        mx, my = gx + back[..., 0], gy + back[..., 1]
        remap = functools.partial(cv2.remap, map1=mx, map2=my, interpolation=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        warped = np.stack([remap(c) for c in self.prev_ab])
        warped_lum = remap(self.prev_lum)
        fwd_there = remap(fwd)
        fb_err = np.hypot(back[..., 0] + fwd_there[..., 0], back[..., 1] + fwd_there[..., 1])
        fb_sigma = self.fb_sigma * max(1.0, min(h, w) / 256)
        photo = (warped_lum - warped_lum.mean()) - (blurred - blurred.mean())
        conf = np.exp(-(photo / self.photo_sigma) ** 2 - (fb_err / fb_sigma) ** 2)
        conf *= (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        conf = cv2.blur(cv2.erode(conf, np.ones((3, 3), np.uint8)), (3, 3))   # conservative at occlusion edges
        return warped, conf.astype(np.float32)


def _farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3,
                                        poly_n=5, poly_sigma=1.1, flags=0)


_last_pair: list = [None, None, None]      # (cur, prev, flows) of the last _flow_pair call


def _flow_pair(cur: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Farneback flow cur -> prev and prev -> cur. The last pair is remembered: a reference carried forward
    (reference.py) follows the same two frames right after the stabiliser and reuses its flows instead of doubling
    the cost."""
    c, p, flows = _last_pair
    if c is not None and c.shape == cur.shape and p.shape == prev.shape and np.array_equal(c, cur) \
            and np.array_equal(p, prev):
        return flows
    flows = (_farneback(cur, prev), _farneback(prev, cur))
    _last_pair[:] = [cur.copy(), prev.copy(), flows]
    return flows


def _features(lum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What both key-frame planning and the blend read from a frame: its blurred luminance and centred histogram."""
    return cv2.GaussianBlur(lum, (0, 0), 1.0), _centred_hist(lum)


def _centred_hist(lum: np.ndarray, bins: int = 32) -> np.ndarray:
    """Histogram of the luminance minus its mean (a global exposure change is not a cut)."""
    idx = np.clip(((lum - lum.mean() + 0.5) * bins).astype(np.int64), 0, bins - 1)
    return np.bincount(idx.ravel(), minlength=bins) / idx.size


def _np32(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


# --------------------------------------------------------------------------------------------------- luminance
def _lin_table() -> np.ndarray:
    v = np.arange(256, dtype=np.float32) * np.float32(1 / 255)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


_LIN = _lin_table()
_Y_ROW = Y_OF_LINEAR_RGB[None]
_Y_STEPS = 1 << 16
_L_OF_Y = luminance_from_y(np.linspace(0, 1, _Y_STEPS + 1, dtype=np.float32))  # within 7e-5 of the formula
_GRAY_L = srgb_luminance(np.repeat((np.arange(256, dtype=np.float32) * np.float32(1 / 255))[:, None], 3, 1)[None])[0]


def frame_luminance(frame: np.ndarray) -> np.ndarray:
    """Lab L / 100 of a uint8 RGB frame (HxWx3): pipeline.srgb_luminance through lookup tables (sRGB -> linear,
    then Y -> L on a 65,536-step table, 0.007 L at worst), fast enough for 4K. Gray frames (a B&W film stored as
    colour) take a single table lookup."""
    if frame.dtype != np.uint8:
        return srgb_luminance(frame.astype(np.float32))
    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return _GRAY_L[r]
    y = cv2.transform(_LIN[frame], _Y_ROW)
    return _L_OF_Y[np.rint(y * _Y_STEPS).astype(np.int32)]


# ----------------------------------------------------------------------------------------------------- the core
@dataclass
class _Item:
    key: Any
    lum: np.ndarray                  # full-resolution luminance (H,W) 0..1
    emit: bool = True                # False: warm-up frame, stabiliser only
    reset: bool = False              # restart the stabiliser before this frame
    extra: dict = field(default_factory=dict)


def colorize_items(items: Iterable[_Item], colorizer: Engine, stabilizer: ChromaStabilizer, render_size: int,
                   batch_size: int, dtype: type = np.float32,
                   guide: ReferenceGuide | None = None) -> Iterator[tuple[_Item, np.ndarray]]:
    """(item, RGB HxWx3 as float 0..1 or quantised to dtype) for every item with emit, in order. The model sees
    batches; the stabiliser and the merge run frame by frame between them (the stabiliser is sequential by nature).
    With a guide (references, item keys being frame indices) its colour replaces the stabilised one where it reaches,
    and the stabiliser carries that on."""
    batch: list[_Item] = []

    def flush() -> Iterator[tuple[_Item, np.ndarray]]:
        # No tone stretch: following each frame's own percentiles made real footage less accurate and less steady
        # (benchmarks/RESULTS.md, "Faded prints"); a film's range belongs to the shot, not the frame.
        smalls = [render_small(it.lum, render_size, tones=False) for it in batch]
        keys = [stabilizer.needs_model(small, force=it.reset) for it, small in zip(batch, smalls)]
        chroma = iter(colorizer.chroma([torch.from_numpy(s) for s, k in zip(smalls, keys) if k]) if any(keys) else [])
        for it, small, key in zip(batch, smalls, keys):
            if it.reset:
                stabilizer.reset()
            model_ab = next(chroma) if key else None
            if model_ab is not None and guide is not None:     # graded as the shot's reference shows, if any
                model_ab = guide.correct(it.key, small, _np32(model_ab))
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


def colorize_frames(frames: Iterable[np.ndarray], colorizer: Engine, stabilizer: ChromaStabilizer,
                    render_size: int = DEFAULT_RENDER_SIZE, batch_size: int = 8, warmup: int = 0,
                    guide: ReferenceGuide | None = None, first: int = 0) -> Iterator[np.ndarray]:
    """uint8 RGB frames in -> colorized uint8 RGB frames out, streaming; the first `warmup` frames only prime the
    stabiliser and are not yielded. `first`: the index of the first frame in the film (for the guide)."""
    items = (_Item(first + i, frame_luminance(f), emit=i >= warmup) for i, f in enumerate(frames))
    for _, rgb in colorize_items(items, colorizer, stabilizer, render_size, batch_size, np.uint8, guide):
        yield rgb


class _Meter:
    """Frames/s of this run and ETA for the progress callback."""

    def __init__(self, progress: ProgressFn | None, total: int | None, reused: int = 0):
        self.progress, self.total, self.reused = progress, total, reused
        self.count = 0
        self.t0 = time.perf_counter()

    def fps(self) -> float:
        return self.count / max(1e-9, time.perf_counter() - self.t0)

    def add(self, n: int = 1) -> None:
        self.count += n
        if self.progress is None:
            return
        done, rate = self.reused + self.count, self.fps()
        eta = max(0.0, (self.total - done) / rate) if self.total and rate > 0 else None
        self.progress(Tick(done, self.total, rate, eta))


# ------------------------------------------------------------------------------------------------------- ffmpeg
def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=1)
def encoders() -> frozenset[str]:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True,
                         errors="replace").stdout
    return frozenset(m.group(1) for m in re.finditer(r"^\s*[VAS][A-Z.]{5}\s+(\S+)", out, re.M))


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: Fraction
    duration: float                  # container duration in seconds (0 if unknown)
    audio: str | None                # audio codec name, None without audio
    packets: int | None              # video frames in the file (packet count), None if unknown


_TRUNCATED = re.compile(r"partial file|truncat|moov atom not found|end of file|invalid data found", re.I)


def _reason(text: str) -> str:
    """One short line from an ffmpeg error text."""
    low = text.lower()
    if "no such file or directory" in low:
        return "file not found"
    if "permission denied" in low:
        return "permission denied"
    if "does not contain any stream" in low or "matches no streams" in low or "list index out of range" in low:
        return "no video stream"
    if "moov atom not found" in low:
        return "not a video file, or truncated (moov atom not found)"
    if "partial file" in low or "end of file" in low:
        return "truncated file"
    if "invalid data found" in low:
        return "not a video file, or corrupt (invalid data)"
    lines = [" ".join(ln.split()) for ln in text.splitlines() if ln.strip() and not ln.startswith("===")]
    return (lines[-1] if lines else "unknown ffmpeg error")[:200]


def _exact_fps(fps: float) -> Fraction:
    """ffmpeg prints rounded rates (23.98, 29.97): snap to the NTSC fractions, else a small exact fraction."""
    for base in (24, 30, 48, 60, 120, 240):
        if abs(fps - base / 1.001) < 0.006:
            return Fraction(base * 1000, 1001)
    return Fraction(fps).limit_denominator(1000)


def probe(path: Path | str) -> VideoInfo:
    """Size, rate, duration and audio from the first dict read_frames yields; then a stream-copy pass over the
    video packets (reads the file, decodes nothing) counts frames and catches a truncated or corrupt file."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: file not found")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    gen = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(gen)
    except StopIteration:
        raise VideoError(f"{path}: no video stream") from None
    except Exception as e:  # noqa: BLE001 - imageio-ffmpeg raises OSError, IndexError...
        raise VideoError(f"{path}: {_reason(str(e) or type(e).__name__)}") from None
    finally:
        gen.close()
    width, height = meta["size"]
    fps = _exact_fps(float(meta.get("fps") or 0)) if meta.get("fps") else Fraction(25)
    packets = _scan(path)
    return VideoInfo(path, int(width), int(height), fps, float(meta.get("duration") or 0), meta.get("audio_codec"),
                     packets)


def _scan(path: Path) -> int | None:
    """Video packet count of a file; VideoError if ffmpeg finds it truncated or unreadable."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-stats", "-i", str(path),
           "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    text = p.stderr.replace("\r", "\n")
    bad = [ln for ln in text.splitlines() if _TRUNCATED.search(ln)]
    if p.returncode != 0 or bad:
        raise VideoError(f"{path}: {_reason(bad[0] if bad else text)}")
    counts = re.findall(r"frame=\s*(\d+)", text)
    return int(counts[-1]) if counts else None


@functools.lru_cache(maxsize=1)
def _passthrough() -> list[str]:
    """Every decoded frame exactly once (the pipe's default is constant-rate: it would duplicate or drop frames)."""
    m = re.search(r"(\d+)\.(\d+)", imageio_ffmpeg.get_ffmpeg_version())
    old = m is not None and (int(m.group(1)), int(m.group(2))) < (5, 1)
    return ["-vsync", "passthrough"] if old else ["-fps_mode", "passthrough"]


def _read(info: VideoInfo, first: int = 0, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decoded uint8 RGB frames from frame index `first` on, streamed. ffmpeg seeks accurately (decodes from the
    keyframe before and drops frames) to half a frame before `first`, so float rounding of timestamps cannot gain or
    lose a frame; frame i is taken to be at i / fps (exact for constant-rate sources)."""
    params = ["-ss", f"{(first - 0.5) / float(info.fps):.6f}"] if first > 0 else []
    out = ["-map", "0:v:0", *_passthrough()] + (["-frames:v", str(max_frames)] if max_frames else [])
    gen = imageio_ffmpeg.read_frames(str(info.path), input_params=params, output_params=out)
    try:
        try:
            meta = next(gen)
        except Exception as e:  # noqa: BLE001
            raise VideoError(f"{info.path}: {_reason(str(e))}") from None
        w, h = meta["size"]
        while True:
            try:
                buf = next(gen)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - a frame cut short
                raise VideoError(f"{info.path}: cannot decode: {_reason(str(e))}") from None
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    finally:
        gen.close()


def decode(path: Path | str, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Every frame of a video file as uint8 RGB (HxWx3), streamed; VideoError if it cannot be read."""
    yield from _read(probe(path), 0, max_frames)


def _codec_args(codec: str, crf: int, preset: str | None = None) -> list[str]:
    if codec not in CRF_CODECS:
        return []
    args = ["-crf", str(crf)]
    if preset and codec in PRESET_CODECS:
        args += ["-preset", preset]
    if codec == "libvpx-vp9":
        args += ["-b:v", "0", "-row-mt", "1"]        # constant quality mode
    return args


class _Encoder:
    """Video-only encode of uint8 RGB frames. Pixel format: yuv420p (what every player takes) when width and height
    are even; yuv444p for odd sizes, since 4:2:0 needs even dimensions and the output must keep the input's exact
    width x height (padding or cropping would change it). 4:4:4 plays in ffmpeg-based players and VLC, not in every
    hardware or browser player; give the film even dimensions where that matters."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, codec: str, crf: int,
                 preset: str | None = None):
        self.path, self.frames = path, 0
        pix = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        tags = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
        self.gen = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, codec=codec, pix_fmt_out=pix,
                                               quality=None, macro_block_size=1, ffmpeg_log_level="error",
                                               output_params=_codec_args(codec, crf, preset) + tags)
        self.gen.send(None)

    def write(self, rgb: np.ndarray) -> None:
        try:
            self.gen.send(np.ascontiguousarray(rgb))
        except OSError as e:
            raise VideoError(f"{self.path}: the encoder stopped: {str(e).splitlines()[0]}") from None
        self.frames += 1

    def close(self) -> None:
        self.gen.close()


def _run_ffmpeg(args: list[str]) -> tuple[bool, str]:
    p = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
                       capture_output=True, text=True, errors="replace")
    return p.returncode == 0, p.stderr


def _mux(video_in: list[str], info: VideoInfo, span: tuple[float, float | None], dst_tmp: Path, final: Path) -> None:
    """The colorized video stream (copied) + the source's audio over the same time range -> dst_tmp."""
    ext = final.suffix.lower()
    flags = ["-movflags", "+faststart"] if ext in _MP4_LIKE else []
    if info.audio is None:
        attempts: list[list[str]] = [[*video_in, "-map", "0:v:0", "-c:v", "copy", *flags, str(dst_tmp)]]
    else:
        start, duration = span
        trim = (["-ss", f"{start:.6f}"] if start > 0 else []) + (["-t", f"{duration:.6f}"] if duration else [])
        base = [*video_in, *trim, "-i", str(info.path), "-map", "0:v:0", "-map", "1:a?", "-c:v", "copy"]
        fallback = ("libopus" if "libopus" in encoders() else "libvorbis") if ext == ".webm" else "aac"
        attempts = [[*base, "-c:a", "copy", *flags, str(dst_tmp)],
                    [*base, "-c:a", fallback, "-b:a", "192k", *flags, str(dst_tmp)]]
    err = ""
    for args in attempts:
        ok, err = _run_ffmpeg(args)
        if ok:
            return
    raise VideoError(f"{final}: cannot write the output: {_reason(err)}")


def _check_count(path: Path, expected: int, final: Path) -> None:
    got = _scan(path)
    if got is not None and got != expected:
        raise VideoError(f"{final}: the encoder wrote {got} of {expected} frames")


def _commit(tmp: Path, dst: Path) -> None:
    """fsync, then rename over the final name: after a crash the name holds the old file or the whole new one."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dst)


def _unlink(*paths: Path | None) -> None:
    for p in paths:
        if p is not None:
            with contextlib.suppress(OSError):
                p.unlink()


def _temp(beside: Path, source: Path) -> Path:
    """A fresh hidden temporary in beside's folder, ending in its extension (ffmpeg picks the container by name).
    Created empty with O_EXCL, so it is no existing file; checked against the source all the same before ffmpeg
    (run with -y) may open it."""
    try:
        tmp = temp_file(beside, keep_suffix=True)
    except OSError as e:
        raise VideoError(f"{beside}: cannot write beside it: {e.strerror or e}") from e
    if os.path.samefile(tmp, source):
        raise VideoError(f"{tmp}: temporary name is the source's; refusing to write")
    return tmp


# ------------------------------------------------------------------------------------------------------- checks
def parse_time(text: str | None) -> float | None:
    """"HH:MM:SS[.ms]", "MM:SS[.ms]" or seconds -> seconds; None stays None; ValueError for anything else."""
    if text is None or str(text).strip() == "":
        return None
    parts = str(text).strip().split(":")
    try:
        if len(parts) > 3 or any(p.strip() == "" for p in parts):
            raise ValueError
        nums = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"bad time {text!r}: use HH:MM:SS[.ms] or seconds") from None
    if any(n < 0 or not np.isfinite(n) for n in nums) or any(n >= 60 for n in nums[1:]):
        raise ValueError(f"bad time {text!r}: use HH:MM:SS[.ms] or seconds")
    secs = 0.0
    for n in nums:
        secs = secs * 60 + n
    return secs


def default_output(src: Path) -> Path:
    """NAME_colorized.EXT beside a video (.mp4 if its container is not one we write); NAME_colorized/ for a folder."""
    src = Path(src)
    if src.is_dir():
        return src.resolve().with_name(src.resolve().name + "_colorized")
    ext = src.suffix.lower() if src.suffix.lower() in VIDEO_EXTENSIONS else ".mp4"
    return src.with_name(f"{src.stem}_colorized{ext}")


def output_codec(dst: Path, codec: str | None) -> str:
    return codec or VIDEO_EXTENSIONS.get(Path(dst).suffix.lower(), "libx264")


def check_paths(src: Path, dst: Path, opts: VideoOptions) -> None:
    """Usage errors (ValueError, one line) before any work: mode, extension, encoder, trims, output == input."""
    src, dst = Path(src), Path(dst)
    if opts.start is not None and opts.end is not None and opts.end <= opts.start:
        raise ValueError(f"--end ({opts.end:g} s) must be after --start ({opts.start:g} s)")
    _check_references(opts, src.is_dir())
    if src.is_dir():
        if dst.suffix.lower() in VIDEO_EXTENSIONS:
            raise ValueError(f"{src} is a folder of frames: give -o a folder for the colorized frames, not {dst.name}")
        if dst.resolve() == src.resolve():
            raise ValueError(f"{dst}: output folder is the input folder; choose another with -o")
        if opts.start is not None or opts.end is not None or opts.segment_seconds:
            raise ValueError("--start, --end and --segment-seconds apply to video files, not frame folders")
        return
    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ValueError(f"{dst}: unsupported output type {dst.suffix or '(none)'!r}; "
                         f"use {', '.join(sorted(VIDEO_EXTENSIONS))}")
    if dst.exists() and src.exists() and os.path.samefile(dst, src):
        raise ValueError(f"{dst}: output would overwrite the input; choose another -o")
    work = segments_dir(dst).resolve()
    if src.resolve().parent == work or is_temp_name(src.name):
        raise ValueError(f"{src}: is a working file of a colorize run ({work.name}); give the film itself")
    codec = output_codec(dst, opts.codec)
    if codec not in encoders():
        raise ValueError(f"video encoder {codec!r} is not in this ffmpeg ({ffmpeg_exe()})")
    if opts.preset is not None and opts.preset not in PRESETS:
        raise ValueError(f"unknown --preset {opts.preset!r}; valid: {', '.join(PRESETS)}")


def is_done(src: Path, dst: Path, opts: VideoOptions) -> bool:
    """Nothing to do: the output video exists, or every frame of a folder is written (and --overwrite is off)."""
    if opts.overwrite:
        return False
    if Path(src).is_dir():
        files = list(iter_images(Path(src), False, exclude=Path(dst)))
        return bool(files) and all(output_path(f, Path(src), Path(dst), "same").exists() for f in files)
    return Path(dst).exists()


# ----------------------------------------------------------------------------------------------------- entry
def run(src: Path | str, dst: Path | str, colorizer: Engine, opts: VideoOptions,
        progress: ProgressFn | None = None) -> VideoResult:
    """Colorize a video file into a video file, or a folder of frames into a folder. Raises VideoError (one line,
    naming the file) when the input cannot be read or the output cannot be written; ValueError for bad options."""
    src, dst = Path(src), Path(dst)
    check_paths(src, dst, opts)
    try:
        held = claim(dst)
    except ClaimError as e:
        raise VideoError(str(e)) from e
    if held is None:
        raise VideoClaimed(f"{dst}: claimed by another run that is making it now; rerun when it has finished")
    try:
        for folder in (dst, segments_dir(dst)) if src.is_dir() else (dst.parent, segments_dir(dst)):
            sweep(folder, recursive=False)     # what a killed run left: only this tool's names, only dead owners'
        if src.is_dir():
            return colorize_folder(src, dst, colorizer, opts, progress)
        return colorize_video(src, dst, colorizer, opts, progress)
    finally:
        release(held)


@dataclass
class _Window:
    """The frames to colorize: [first, first + count) by index (count None: to the end) and, for the audio, the same
    span in seconds."""
    first: int
    count: int | None
    total: int | None                # expected frames, for progress

    def audio_span(self, fps: Fraction) -> tuple[float, float | None]:
        return self.first / float(fps), None if self.count is None else self.count / float(fps)


def _window(info: VideoInfo, opts: VideoOptions) -> _Window:
    """--start/--end as frame indices: the first frame at or after --start up to the last one before --end."""
    fps, start = float(info.fps), opts.start or 0.0
    if info.duration and start >= info.duration:
        raise VideoError(f"{info.path}: --start {start:g} s is past the end of the video ({info.duration:g} s)")
    first = math.ceil(start * fps - 1e-6) if start > 0 else 0
    count = None if opts.end is None else max(0, math.ceil(opts.end * fps - 1e-6) - first)
    in_file = info.packets if info.packets is not None else (round(info.duration * fps) if info.duration else None)
    total = count if in_file is None else max(0, in_file - first) if count is None else min(count, in_file - first)
    return _Window(first, count, total)


def colorize_video(src: Path, dst: Path, colorizer: Engine, opts: VideoOptions,
                   progress: ProgressFn | None = None) -> VideoResult:
    t0 = time.perf_counter()
    result = VideoResult(src, dst)
    if dst.exists() and not opts.overwrite:
        result.status = "skipped"
        return result
    info = probe(src)
    refs = _video_references(info, _window(info, opts), opts, result)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if opts.segment_seconds > 0:
        _segmented(info, dst, colorizer, opts, progress, result, refs)
    else:
        _single(info, dst, colorizer, opts, progress, result, refs)
    result.seconds = time.perf_counter() - t0
    return result


def _encode(frames: Iterator[np.ndarray], tmp: Path, info: VideoInfo, colorizer: Engine, opts: VideoOptions,
            stab: ChromaStabilizer, meter: _Meter, codec: str, warmup: int = 0, first: int = 0,
            guide: ReferenceGuide | None = None) -> int:
    """Colorize frames (the first is frame `first` of the film) into a video-only file; returns the number written."""
    enc = None
    try:
        for rgb in colorize_frames(frames, colorizer, stab, opts.render_size, opts.batch_size, warmup, guide, first):
            if enc is None:
                enc = _Encoder(tmp, rgb.shape[1], rgb.shape[0], info.fps, codec, opts.crf, opts.preset)
            enc.write(rgb)
            meter.add()
    finally:
        if enc is not None:
            enc.close()
    return enc.frames if enc is not None else 0


def _single(info: VideoInfo, dst: Path, colorizer: Engine, opts: VideoOptions, progress: ProgressFn | None,
            result: VideoResult, refs: list[Reference] | None = None) -> None:
    win = _window(info, opts)
    codec = output_codec(dst, opts.codec)
    video_tmp = out_tmp = None
    stab = ChromaStabilizer(opts.strength, key_every=opts.key_every)
    try:
        video_tmp, out_tmp = _temp(dst, info.path), _temp(dst, info.path)
        n = _encode(_read(info, win.first, win.count), video_tmp, info, colorizer, opts, stab,
                    _Meter(progress, win.total), codec, first=win.first,
                    guide=_guide(info, opts, refs, win.first, colorizer)) if win.count != 0 else 0
        if n == 0:
            raise VideoError(f"{info.path}: no video frames between --start and --end"
                             if opts.start is not None or opts.end is not None
                             else f"{info.path}: no video frames could be decoded")
        _mux(["-i", str(video_tmp)], info, win.audio_span(info.fps), out_tmp, dst)
        _check_count(out_tmp, n, dst)
        _commit(out_tmp, dst)
    finally:
        _unlink(video_tmp, out_tmp)
    result.frames, result.cuts = n, stab.cuts
    _nonfinite_warning(stab, result)


def _nonfinite_warning(stab: ChromaStabilizer, result: VideoResult) -> None:
    if stab.nonfinite:
        result.warnings.append(f"model produced NaN/Inf on {stab.nonfinite} frames: left gray")


def segments_dir(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.segments")


def _model_id(colorizer: Engine) -> str:
    meta = getattr(colorizer.model, "meta", None) or {}
    return str(meta.get("payload_sha256") or meta.get("architecture") or type(colorizer.model).__name__)


def _segmented(info: VideoInfo, dst: Path, colorizer: Engine, opts: VideoOptions, progress: ProgressFn | None,
               result: VideoResult, refs: list[Reference] | None = None) -> None:
    win = _window(info, opts)
    codec = output_codec(dst, opts.codec)
    fps = info.fps
    per = max(1, round(opts.segment_seconds * float(fps)))
    work = segments_dir(dst)
    st = info.path.stat()
    options = {"version": 1, "source": str(info.path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
               "model": _model_id(colorizer), "render_size": opts.render_size, "strength": opts.strength,
               "key_every": opts.key_every,
               "codec": codec, "crf": opts.crf, "preset": opts.preset, "first": win.first, "count": win.count,
               "segment_frames": per,
               "fps": str(fps), "ext": dst.suffix.lower(), "warmup": WARMUP,
               **({"references": _fingerprint(opts.references)} if opts.references else {})}
    manifest_path = work / "manifest.json"
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(manifest_path.read_text())
    if state.get("options") != options:
        if work.exists():
            result.warnings.append(f"{work}: made with other options or another source; starting over")
            _clear_segments(work)
        state = {"options": options, "segments": {}, "last": None}
    work.mkdir(parents=True, exist_ok=True)

    def seg_path(k: int) -> Path:
        return work / f"seg_{k:05d}{dst.suffix.lower()}"

    done = {int(k): int(v) for k, v in state["segments"].items() if seg_path(int(k)).exists()}
    state["segments"] = {str(k): v for k, v in done.items()}
    result.reused = sum(done.values())
    meter = _Meter(progress, win.total, result.reused)
    stab = ChromaStabilizer(opts.strength, key_every=opts.key_every)

    def save() -> None:
        write_atomic(manifest_path, json.dumps(state, indent=1).encode())

    save()
    k = 0
    while True:
        if state["last"] is not None and k > state["last"]:
            break
        if k in done:
            k += 1
            continue
        warm = min(WARMUP, k * per)
        want = per if win.count is None else max(0, min(per, win.count - k * per))
        tmp, seg = None, seg_path(k)
        stab.reset()
        try:
            tmp = _temp(seg, info.path)
            seg_first = win.first + k * per - warm
            n = _encode(_read(info, seg_first, warm + want), tmp, info, colorizer, opts, stab, meter, codec,
                        warmup=warm, first=seg_first,
                        guide=_guide(info, opts, refs, win.first, colorizer)) if want else 0
            if n:
                _check_count(tmp, n, dst)
                _commit(tmp, seg)
        finally:
            _unlink(tmp)
        if n:
            done[k] = n
            state["segments"][str(k)] = n
            result.frames += n
        if n < per:
            state["last"] = k if n else k - 1
        save()
        if n < per:
            break
        k += 1
    result.cuts = stab.cuts
    _nonfinite_warning(stab, result)
    order = sorted(k for k in done if state["last"] is None or k <= state["last"])
    if not order or order != list(range(len(order))):
        raise VideoError(f"{info.path}: no video frames between --start and --end" if not order
                         else f"{work}: segments missing; delete the folder and run again")
    listing = work / "concat.txt"
    listing.write_text("".join(f"file '{seg_path(i).name}'\n" for i in order))
    out_tmp = None
    try:
        out_tmp = _temp(dst, info.path)
        _mux(["-f", "concat", "-safe", "0", "-i", str(listing)], info, win.audio_span(fps), out_tmp, dst)
        _check_count(out_tmp, sum(done[i] for i in order), dst)
        _commit(out_tmp, dst)
    finally:
        _unlink(out_tmp)
    _clear_segments(work)


_SEGMENT_FILE = re.compile(r"^(seg_\d{5}\.[a-z0-9]+|manifest\.json|concat\.txt)$")


def _clear_segments(work: Path) -> None:
    """Remove a segment folder's own files (segments, manifest, listing, this tool's temporaries), then the folder if
    that left it empty: anything else a user put there stays."""
    with contextlib.suppress(OSError):
        for p in work.iterdir():
            if p.is_file() and (_SEGMENT_FILE.match(p.name) or is_temp_name(p.name)):
                _unlink(p)
    with contextlib.suppress(OSError):
        work.rmdir()


# ----------------------------------------------------------------------------------------------------- references
def _check_references(opts: VideoOptions, folder: bool) -> None:
    """Before any work: every reference image readable, frame folders' references given by number."""
    from colorize_cli import reference
    for spec in opts.references:
        if folder:
            spec.frame_at(None)
        reference.load_rgb(spec)


def _fingerprint(specs: Iterable[ReferenceSpec]) -> list[list]:
    """What identifies the references for resume: a repainted reference image discards the old segments."""
    out = []
    for spec in specs:
        with contextlib.suppress(OSError):
            st = spec.path.stat()
            out.append([spec.text, str(spec.path.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _reference(spec: ReferenceSpec, lum: np.ndarray, frame: int, render_size: int) -> Reference:
    """Load a reference and check it against its frame's luminance; VideoError naming it if it does not fit."""
    from colorize_cli import reference
    try:
        rgb = reference.load_rgb(spec)
    except ValueError as e:
        raise VideoError(str(e)) from None
    why = reference.mismatch(spec, rgb, lum, frame)
    if why:
        raise VideoError(why)
    return reference.Reference(frame, reference.reference_chroma(rgb, lum.shape, render_size), spec.text)


def _ignored(spec: ReferenceSpec, frame: int, result: VideoResult, where: str) -> None:
    result.warnings.append(f"--reference {spec.text}: frame {frame} is {where}; ignored")


def _video_references(info: VideoInfo, win: _Window, opts: VideoOptions, result: VideoResult) -> list[Reference]:
    """Each reference's frame decoded and checked before any work; one outside --start/--end is noted and dropped."""
    refs: list[Reference] = []
    end = None if win.count is None else win.first + win.count
    for spec in opts.references:
        frame = spec.frame_at(info.fps)
        if frame < win.first or (end is not None and frame >= end):
            _ignored(spec, frame, result, "outside --start/--end")
            continue
        got = list(_read(info, frame, 1))
        if not got:
            _ignored(spec, frame, result, "past the end of the film")
            continue
        refs.append(_reference(spec, frame_luminance(got[0]), frame, opts.render_size))
    _no_twins(refs)
    return refs


def _no_twins(refs: list[Reference]) -> None:
    frames = [r.frame for r in refs]
    for f in frames:
        if frames.count(f) > 1:
            names = " and ".join(r.name for r in refs if r.frame == f)
            raise VideoError(f"two references for frame {f}: {names}")


def _render_lums(info: VideoInfo, render_size: int, first: int, count: int) -> Iterator[np.ndarray]:
    """A guide's loader: render-size luminance of frames first.. of the file, decoded a second time."""
    for f in _read(info, first, count):
        yield render_small(frame_luminance(f), render_size, tones=False)


def model_chroma(colorizer: Engine) -> Callable[[np.ndarray], np.ndarray]:
    """The model on one render-size luminance (the guide's grade fits on it once per reference)."""
    return lambda lum: _np32(colorizer.chroma([torch.from_numpy(np.ascontiguousarray(lum, np.float32))])[0])


def _guide(info: VideoInfo, opts: VideoOptions, refs: list[Reference] | None, first: int,
           colorizer: Engine) -> ReferenceGuide | None:
    if not refs:
        return None
    from colorize_cli.reference import ReferenceGuide
    return ReferenceGuide(list(refs), functools.partial(_render_lums, info, opts.render_size), first,
                          chroma=model_chroma(colorizer))


def _folder_references(files: list[Path], opts: VideoOptions, result: VideoResult) -> list[Reference]:
    refs: list[Reference] = []
    for spec in opts.references:
        frame = spec.frame_at(None)
        if frame >= len(files):
            _ignored(spec, frame, result, f"past the folder's {len(files)} frames")
            continue
        try:
            lum = srgb_luminance(read_image(files[frame]).rgb)
        except ImageError as e:
            raise VideoError(f"--reference {spec.text}: its frame cannot be read: {e}") from None
        refs.append(_reference(spec, lum, frame, opts.render_size))
    _no_twins(refs)
    return refs


def _folder_lums(files: list[Path], render_size: int, first: int, count: int) -> Iterator[np.ndarray]:
    """A guide's loader for a frame folder; stops at a frame that cannot be read."""
    for f in files[first:first + count]:
        try:
            img = read_image(f)
        except ImageError:
            return
        yield render_small(srgb_luminance(img.rgb), render_size, tones=False)


# -------------------------------------------------------------------------------------------------- frame folders
def colorize_folder(src: Path, dst: Path, colorizer: Engine, opts: VideoOptions,
                    progress: ProgressFn | None = None) -> VideoResult:
    """Every image in `src` (sorted by name) is a frame; outputs get the same names in `dst`. A frame that cannot be
    read or written is reported in result.failed and the stabiliser restarts after it."""
    t0 = time.perf_counter()
    result = VideoResult(src, dst)
    if not src.is_dir():
        raise VideoError(f"{src}: folder not found")
    files = list(iter_images(src, False, exclude=dst))
    if not files:
        raise VideoError(f"{src}: no images")
    dsts = [output_path(f, src, dst, "same") for f in files]
    inputs = Inputs(files)
    clash = next(((f, d, inputs.which(d)) for f, d in zip(files, dsts) if inputs.which(d) is not None), None)
    if clash is not None:
        raise VideoError(f"{clash[0]}: refused: its output {clash[1]} is an input frame, {clash[2]}; nothing written")
    todo = [opts.overwrite or not d.exists() for d in dsts]
    # run a frame if it is to be written, or if one of the next WARMUP frames is (warm-up for the stabiliser)
    run_it = [any(todo[i:i + WARMUP + 1]) for i in range(len(files))]
    result.reused = len(files) - sum(todo)
    if not any(todo):
        result.status = "skipped"
        return result
    refs = _folder_references(files, opts, result)
    dst.mkdir(parents=True, exist_ok=True)
    meter = _Meter(progress, len(files), result.reused)
    stab = ChromaStabilizer(opts.strength, key_every=opts.key_every)
    guide = None
    if refs:
        from colorize_cli.reference import ReferenceGuide
        guide = ReferenceGuide(refs, functools.partial(_folder_lums, files, opts.render_size),
                               chroma=model_chroma(colorizer))

    def items() -> Iterator[_Item]:
        fresh = True
        for i, f in enumerate(files):
            if not run_it[i]:
                fresh = True
                continue
            try:
                img = read_image(f)
            except ImageError as e:
                result.failed.append(str(e))
                fresh = True
                continue
            yield _Item(i, srgb_luminance(img.rgb), emit=todo[i], reset=fresh,
                        extra={"alpha": img.alpha, "bit_depth": img.bit_depth})
            fresh = False

    for it, rgb in colorize_items(items(), colorizer, stab, opts.render_size, opts.batch_size, guide=guide):
        out = dsts[it.key]
        try:
            write_atomic(out, encode_image(rgb, it.extra["alpha"], out.suffix, it.extra["bit_depth"],
                                           opts.jpeg_quality))
            result.frames += 1
        except (ImageError, ValueError, OSError) as e:
            result.failed.append(str(e).splitlines()[0])
            stab.reset()
        meter.add()
    result.cuts = stab.cuts
    _nonfinite_warning(stab, result)
    result.seconds = time.perf_counter() - t0
    return result


# ----------------------------------------------------------------------------------------------------- reporting
class ProgressPrinter:
    """A progress callback: a rich bar on a terminal, a plain line every `every_s` seconds otherwise, nothing when
    quiet."""

    def __init__(self, quiet: bool = False, every_s: float = 10.0):
        self.quiet, self.every_s = quiet, every_s
        self.last = time.perf_counter()
        self.bar: Any = None
        self.tty = sys.stderr.isatty()

    def __call__(self, t: Tick) -> None:
        due = time.perf_counter() - self.last >= self.every_s or bool(t.total and t.done >= t.total)
        if due:
            self.last = time.perf_counter()
            runlog.note(self.line(t))       # --log gets the plain lines even under a bar or --quiet
        if self.quiet:
            return
        if self.tty:
            if self.bar is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
                self.bar = Progress(TextColumn("colorize"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), transient=False)
                self.task = self.bar.add_task("colorize", total=t.total, rate="")
                self.bar.start()
            self.bar.update(self.task, completed=t.done, total=t.total, rate=f"{t.fps:.1f} frames/s")
        elif due:
            print(self.line(t), file=sys.stderr, flush=True)

    @staticmethod
    def line(t: Tick) -> str:
        of = f"/{t.total}" if t.total else ""
        eta = f", ETA {t.eta_s:.0f} s" if t.eta_s is not None else ""
        return f"{t.done}{of} frames, {t.fps:.2f} frames/s{eta}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def summary(r: VideoResult) -> str:
    if r.status == "skipped":
        return f"{r.dst}: already done, skipped (use --overwrite to redo)"
    rate = r.frames / max(1e-9, r.seconds)
    text = f"colorized {r.frames} frames of {r.src} -> {r.dst} in {r.seconds:.1f} s ({rate:.2f} frames/s)"
    if r.reused:
        text += f", {r.reused} already done"
    if r.failed:
        text += f", {len(r.failed)} failed"
    return text
