"""What a film run is asked and what it answers: options, results, errors, and what follows from the options alone
(times, output names and codecs, the frame window, the summary line)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from colorize_cli.pipeline import Status
from colorize_cli.registry import DEFAULT_RENDER_SIZE

if TYPE_CHECKING:
    from colorize_cli.reference import ReferenceSpec
    from colorize_cli.video.ffmpeg import VideoInfo


DEFAULT_STRENGTH = 0.7
DEFAULT_KEY_EVERY = 4  # no worse in PSNR, steadier in CDC than every frame (benchmarks/RESULTS.md)
WARMUP = 8  # frames run through model + stabiliser before a resumed segment, not written
VIDEO_EXTENSIONS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9"}
CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"}
PRESET_CODECS = {"libx264", "libx265"}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


class Flow(enum.Enum):
    """Dense optical flow method: DIS (OpenCV's fast preset, ~7x cheaper than Farneback at flow size and no worse
    in PSNR/CDC on the DAVIS clips: benchmarks/RESULTS.md, "Film speed") or Farneback (the method before)."""

    DIS = "dis"
    FARNEBACK = "farneback"


class VideoError(Exception):
    """One line that names the file: cannot read it, no video stream, truncated, cannot write."""


class VideoClaimed(VideoError):
    """Another live run is making this output now (exit status 3: not failed, not known to be done)."""


@dataclass
class VideoOptions:
    render_size: int = DEFAULT_RENDER_SIZE
    batch_size: int = 8
    strength: float = DEFAULT_STRENGTH
    key_every: int = DEFAULT_KEY_EVERY  # run the model on every K-th frame, carry chroma along the flow between
    crf: int = 18
    preset: str | None = None  # x264/x265 speed preset; None: the encoder's own (medium)
    codec: str | None = None  # None: by the output's extension
    start: float | None = None  # seconds
    end: float | None = None
    segment_seconds: float = 0.0  # 0: one pass; > 0: resumable segments
    overwrite: bool = False
    jpeg_quality: int = 95  # frame folders
    references: tuple[ReferenceSpec, ...] = ()  # --reference: colour images of frames, carried through their shots
    flow: Flow = Flow.DIS  # the stabiliser's optical flow (Farneback: the method before, for comparison)


@dataclass
class VideoResult:
    src: Path
    dst: Path
    status: Status = Status.OK  # OK, or SKIPPED (the output was already there)
    frames: int = 0  # frames colorized and written in this run
    reused: int = 0  # frames already done (finished segments, existing frame files)
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)  # frame folders: one line per unreadable/unwritable frame
    warnings: list[str] = field(default_factory=list)
    cuts: int = 0  # scene cuts the stabiliser reset at


@dataclass
class Window:
    """The frames to colorize: [first, first + count) by index (count None: to the end) and, for the audio, the same
    span in seconds."""

    first: int
    count: int | None
    total: int | None  # expected frames, for progress

    def audio_span(self, fps: Fraction) -> tuple[float, float | None]:
        return self.first / float(fps), None if self.count is None else self.count / float(fps)


def window(info: VideoInfo, opts: VideoOptions) -> Window:
    """--start/--end as frame indices: the first frame at or after --start up to the last one before --end."""
    fps, start = float(info.fps), opts.start or 0.0
    if info.duration and start >= info.duration:
        raise VideoError(f"{info.path}: --start {start:g} s is past the end of the video ({info.duration:g} s)")
    first = math.ceil(start * fps - 1e-6) if start > 0 else 0
    count = None if opts.end is None else max(0, math.ceil(opts.end * fps - 1e-6) - first)
    in_file = info.packets if info.packets is not None else (round(info.duration * fps) if info.duration else None)
    total = count if in_file is None else max(0, in_file - first) if count is None else min(count, in_file - first)
    return Window(first, count, total)


def parse_time(text: str | None) -> float | None:
    """ "HH:MM:SS[.ms]", "MM:SS[.ms]" or seconds -> seconds; None stays None; ValueError for anything else."""
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


def segments_dir(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.segments")


def summary(r: VideoResult) -> str:
    if r.status == Status.SKIPPED:
        return f"{r.dst}: already done, skipped (use --overwrite to redo)"
    rate = r.frames / max(1e-9, r.seconds)
    text = f"colorized {r.frames} frames of {r.src} -> {r.dst} in {r.seconds:.1f} s ({rate:.2f} frames/s)"
    if r.reused:
        text += f", {r.reused} already done"
    if r.failed:
        text += f", {len(r.failed)} failed"
    return text
