"""The pipes to ffmpeg (imageio-ffmpeg's binary): probe a file, decode frames, encode frames, mux the audio back, and
the temporaries and renames that keep the output name whole.

    probe (size, rate, duration, audio; a stream-copy scan counts packets and catches truncated files)
    read_frames (rgb24 pipe, seeking half a frame early so no frame is gained or lost) -> Encoder (video only)
    -> mux (video copied, audio copied or re-encoded) -> check_count -> commit (fsync + rename)
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import imageio_ffmpeg
import numpy as np

from colorize_cli.claims import temp_file
from colorize_cli.video.options import CRF_CODECS, PRESET_CODECS, VideoError

_MP4_LIKE = {".mp4", ".m4v", ".mov"}


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=1)
def encoders() -> frozenset[str]:
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True, errors="replace"
    ).stdout
    return frozenset(m.group(1) for m in re.finditer(r"^\s*[VAS][A-Z.]{5}\s+(\S+)", out, re.M))


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: Fraction
    duration: float  # container duration in seconds (0 if unknown)
    audio: str | None  # audio codec name, None without audio
    packets: int | None  # video frames in the file (packet count), None if unknown


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
    packets = scan(path)
    return VideoInfo(
        path, int(width), int(height), fps, float(meta.get("duration") or 0), meta.get("audio_codec"), packets
    )


def scan(path: Path) -> int | None:
    """Video packet count of a file; VideoError if ffmpeg finds it truncated or unreadable."""
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-stats",
        "-i",
        str(path),
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
    ]
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


def read_frames(info: VideoInfo, first: int = 0, max_frames: int | None = None) -> Iterator[np.ndarray]:
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
    yield from read_frames(probe(path), 0, max_frames)


def _codec_args(codec: str, crf: int, preset: str | None = None) -> list[str]:
    if codec not in CRF_CODECS:
        return []
    args = ["-crf", str(crf)]
    if preset and codec in PRESET_CODECS:
        args += ["-preset", preset]
    if codec == "libvpx-vp9":
        args += ["-b:v", "0", "-row-mt", "1"]  # constant quality mode
    return args


class Encoder:
    """Video-only encode of uint8 RGB frames. Pixel format: yuv420p (what every player takes) when width and height
    are even; yuv444p for odd sizes, since 4:2:0 needs even dimensions and the output must keep the input's exact
    width x height (padding or cropping would change it). 4:4:4 plays in ffmpeg-based players and VLC, not in every
    hardware or browser player; give the film even dimensions where that matters."""

    def __init__(
        self, path: Path, width: int, height: int, fps: Fraction, codec: str, crf: int, preset: str | None = None
    ):
        self.path, self.frames = path, 0
        pix = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        tags = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
        self.gen = imageio_ffmpeg.write_frames(
            str(path),
            (width, height),
            fps=fps,
            codec=codec,
            pix_fmt_out=pix,
            quality=None,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=_codec_args(codec, crf, preset) + tags,
        )
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
    p = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
        capture_output=True,
        text=True,
        errors="replace",
    )
    return p.returncode == 0, p.stderr


def mux(video_in: list[str], info: VideoInfo, span: tuple[float, float | None], dst_tmp: Path, final: Path) -> None:
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
        attempts = [
            [*base, "-c:a", "copy", *flags, str(dst_tmp)],
            [*base, "-c:a", fallback, "-b:a", "192k", *flags, str(dst_tmp)],
        ]
    err = ""
    for args in attempts:
        ok, err = _run_ffmpeg(args)
        if ok:
            return
    raise VideoError(f"{final}: cannot write the output: {_reason(err)}")


def check_count(path: Path, expected: int, final: Path) -> None:
    got = scan(path)
    if got is not None and got != expected:
        raise VideoError(f"{final}: the encoder wrote {got} of {expected} frames")


def commit(tmp: Path, dst: Path) -> None:
    """fsync, then rename over the final name: after a crash the name holds the old file or the whole new one."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dst)


def unlink(*paths: Path | None) -> None:
    for p in paths:
        if p is not None:
            with contextlib.suppress(OSError):
                p.unlink()


def temp_beside(beside: Path, source: Path) -> Path:
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
