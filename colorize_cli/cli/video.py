"""`colorize video`: parse and check the options, load the model, hand the film to colorize_cli.video.run, and turn
its result (or a claim, an error, Ctrl-C) into lines and an exit code."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from colorize_cli.cli.common import (
    BATCH,
    COMPILE,
    DEVICE,
    LOG,
    MODEL,
    OVERWRITE,
    PRECISION,
    QUALITY,
    QUIET,
    RENDER,
    THREADS,
    VIVIDNESS,
    check_device,
    check_model_or_file,
    check_writable,
    fail,
    start_log,
    tell,
)

if TYPE_CHECKING:  # torch stays out of --help
    from colorize_cli.engine import Engine
    from colorize_cli.video import VideoOptions, VideoResult

SOURCE = typer.Argument(..., help="A video file, or a folder of frames (images, in name order).")
OUTPUT = typer.Option(
    None,
    "--output",
    "-o",
    help="Output video (.mp4, .mkv, .mov, .webm) or frame folder (default: NAME_colorized beside the input).",
)
STRENGTH = typer.Option(
    0.7,
    "--strength",
    min=0.0,
    max=1.0,
    help="Temporal stabilisation: 0 colours each frame on its own, 1 is strongest.",
)
KEY_EVERY = typer.Option(
    4,
    "--key-every",
    min=1,
    help="Run the model on every K-th frame (and at scene cuts) and carry the colour "
    "along optical flow between: faster on a CPU (1: every frame).",
)
CRF = typer.Option(18, "--crf", min=0, max=63, help="Quality for x264/x265/VP9: lower is better and bigger.")
CODEC = typer.Option(None, "--codec", help="ffmpeg video encoder (default: libx264; libvpx-vp9 for .webm).")
PRESET = typer.Option(
    None,
    "--preset",
    help="x264/x265 speed preset, ultrafast..veryslow (default medium); veryfast encodes ~2.5x faster.",
)
START = typer.Option(None, "--start", help="Begin here: HH:MM:SS[.ms] or seconds.")
END = typer.Option(None, "--end", help="Stop here: HH:MM:SS[.ms] or seconds.")
SEGMENT_SECONDS = typer.Option(
    0.0,
    "--segment-seconds",
    min=0.0,
    help="Resumable: keep finished segments of this many seconds, so a rerun "
    "after a crash or Ctrl-C continues (0: off).",
)
REFERENCE = typer.Option(
    [],
    "--reference",
    metavar="WHEN=IMAGE",
    help="A colour image of one frame (WHEN: HH:MM:SS[.ms] or seconds, or #N for "
    "frame N from 0), carried forward and backward through its shot along "
    "the motion; the model fills in where it loses track. Repeatable.",
)


@dataclass
class VideoArgs:
    """`colorize video`'s options as Typer parsed them (the command's parameters, by name)."""

    source: Path
    output: Path | None
    model: str
    render_size: int
    batch_size: int
    threads: int
    device: str
    strength: float
    key_every: int
    crf: int
    codec: str | None
    preset: str | None
    start: str | None
    end: str | None
    segment_seconds: float
    reference: list[str]
    overwrite: bool
    quiet: bool
    jpeg_quality: int
    precision: str
    compile: bool
    vividness: float
    log: Path | None

    def options(self) -> VideoOptions:
        """video.VideoOptions from the command line's words (times and --reference parsed: ValueError if bad)."""
        from colorize_cli import video
        from colorize_cli.reference import parse_spec

        return video.VideoOptions(
            render_size=self.render_size,
            batch_size=self.batch_size,
            strength=self.strength,
            key_every=self.key_every,
            crf=self.crf,
            preset=self.preset,
            codec=self.codec,
            start=video.parse_time(self.start),
            end=video.parse_time(self.end),
            segment_seconds=self.segment_seconds,
            overwrite=self.overwrite,
            jpeg_quality=self.jpeg_quality,
            references=tuple(parse_spec(r) for r in self.reference),
        )


def video_cmd(
    source: Path = SOURCE,
    output: Path | None = OUTPUT,
    model: str = MODEL,
    render_size: int = RENDER,
    batch_size: int = BATCH,
    threads: int = THREADS,
    device: str = DEVICE,
    strength: float = STRENGTH,
    key_every: int = KEY_EVERY,
    crf: int = CRF,
    codec: str | None = CODEC,
    preset: str | None = PRESET,
    start: str | None = START,
    end: str | None = END,
    segment_seconds: float = SEGMENT_SECONDS,
    reference: list[str] = REFERENCE,
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
    jpeg_quality: int = QUALITY,
    precision: str = PRECISION,
    compile: bool = COMPILE,
    vividness: float = VIVIDNESS,
    log: Path | None = LOG,
) -> None:
    """Colorize a film: a video file (sound kept) or a folder of frames, steadied from frame to frame."""
    run_video(VideoArgs(**locals()))


def run_video(a: VideoArgs) -> None:
    from colorize_cli import video

    start_log(a.log, f"video {a.source}")
    check_model_or_file(a.model)
    check_device(a.device)
    if not a.source.exists():
        fail(f"{a.source}: file not found")
    output = a.output or video.default_output(a.source)
    try:
        opts = a.options()
        video.check_paths(a.source, output, opts)
    except ValueError as e:
        fail(str(e))
    check_writable(output if a.source.is_dir() else output.parent)
    if video.is_done(a.source, output, opts):
        tell(f"colorize: {output} is already done; --overwrite redoes it")
        raise typer.Exit(0)
    result = _run_film(a, output, opts, _engine(a))
    for msg in result.failed:
        tell(f"error: {msg}")
    for msg in result.warnings:
        tell(f"warning: {msg}")
    tell(video.summary(result))
    raise typer.Exit(1 if result.failed else 0)


def _engine(a: VideoArgs) -> Engine:
    """The model on its device, threads set first (a usage error, 2, for weights or options that do not load)."""
    from colorize_cli.engine import Engine, set_threads
    from colorize_cli.weights import WeightsError
    from colorize_cli.zoo import load_model, pick_device

    set_threads(a.threads)
    try:
        dev = pick_device(a.device)
        return Engine(load_model(a.model, dev, a.vividness), dev, a.precision, a.compile)
    except (WeightsError, ValueError) as e:
        fail(str(e))


def _run_film(a: VideoArgs, output: Path, opts: VideoOptions, colorizer: Engine) -> VideoResult:
    """video.run with the progress bar; exit 3 when claimed, 1 on a VideoError, 130 on Ctrl-C (saying what is kept)."""
    from colorize_cli import video
    from colorize_cli.progress import FRAMES, Reporter

    progress = Reporter("colorize", quiet=a.quiet)
    try:
        return video.run(a.source, output, colorizer, opts, progress.counting(FRAMES))
    except video.VideoClaimed as e:
        print(f"colorize: claimed: {e}", file=sys.stderr)
        raise typer.Exit(3) from None
    except video.VideoError as e:
        fail(str(e), 1)
    except KeyboardInterrupt:
        if a.source.is_dir() or a.segment_seconds:
            done = "frames" if a.source.is_dir() else "segments"
            tell(f"colorize: interrupted; finished {done} are kept, rerun to resume")
        else:
            tell(f"colorize: interrupted; {output} was not written (--segment-seconds makes long runs resumable)")
        raise typer.Exit(130) from None
    finally:
        progress.close()
