"""The entry: check the options, claim the output, sweep what a killed run left, then a frame folder (frames.py), a
resumable film (segments.py) or a film in one pass (here):

    probe -> references checked -> read_frames -> encode_video (video only, temp file) -> mux with the audio (temp)
    -> frame count checked -> rename over the output name
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from colorize_cli.claims import ClaimError, claim, is_temp_name, release, sweep
from colorize_cli.folders import iter_images, output_path
from colorize_cli.pipeline import Engine, Status
from colorize_cli.progress import Meter, ProgressFn
from colorize_cli.video import references
from colorize_cli.video.core import encode_video, nonfinite_warning
from colorize_cli.video.ffmpeg import (
    VideoInfo,
    check_count,
    commit,
    encoders,
    ffmpeg_exe,
    mux,
    probe,
    read_frames,
    temp_beside,
    unlink,
)
from colorize_cli.video.frames import colorize_folder
from colorize_cli.video.options import (
    PRESETS,
    VIDEO_EXTENSIONS,
    VideoClaimed,
    VideoError,
    VideoOptions,
    VideoResult,
    output_codec,
    segments_dir,
    window,
)
from colorize_cli.video.segments import segmented
from colorize_cli.video.stabilize import ChromaStabilizer

if TYPE_CHECKING:
    from colorize_cli.reference import Reference


def check_paths(src: Path, dst: Path, opts: VideoOptions) -> None:
    """Usage errors (ValueError, one line) before any work: mode, extension, encoder, trims, output == input."""
    src, dst = Path(src), Path(dst)
    if opts.start is not None and opts.end is not None and opts.end <= opts.start:
        raise ValueError(f"--end ({opts.end:g} s) must be after --start ({opts.start:g} s)")
    references.check_references(opts, src.is_dir())
    if src.is_dir():
        if dst.suffix.lower() in VIDEO_EXTENSIONS:
            raise ValueError(f"{src} is a folder of frames: give -o a folder for the colorized frames, not {dst.name}")
        if dst.resolve() == src.resolve():
            raise ValueError(f"{dst}: output folder is the input folder; choose another with -o")
        if opts.start is not None or opts.end is not None or opts.segment_seconds:
            raise ValueError("--start, --end and --segment-seconds apply to video files, not frame folders")
        return
    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ValueError(
            f"{dst}: unsupported output type {dst.suffix or '(none)'!r}; use {', '.join(sorted(VIDEO_EXTENSIONS))}"
        )
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


def run(
    src: Path | str, dst: Path | str, colorizer: Engine, opts: VideoOptions, progress: ProgressFn | None = None
) -> VideoResult:
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
            sweep(folder, recursive=False)  # what a killed run left: only this tool's names, only dead owners'
        if src.is_dir():
            return colorize_folder(src, dst, colorizer, opts, progress)
        return colorize_video(src, dst, colorizer, opts, progress)
    finally:
        release(held)


def colorize_video(
    src: Path, dst: Path, colorizer: Engine, opts: VideoOptions, progress: ProgressFn | None = None
) -> VideoResult:
    t0 = time.perf_counter()
    result = VideoResult(src, dst)
    if dst.exists() and not opts.overwrite:
        result.status = Status.SKIPPED
        return result
    info = probe(src)
    refs = references.video_references(info, window(info, opts), opts, result)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if opts.segment_seconds > 0:
        segmented(info, dst, colorizer, opts, progress, result, refs)
    else:
        _single(info, dst, colorizer, opts, progress, result, refs)
    result.seconds = time.perf_counter() - t0
    return result


def _single(
    info: VideoInfo,
    dst: Path,
    colorizer: Engine,
    opts: VideoOptions,
    progress: ProgressFn | None,
    result: VideoResult,
    refs: list[Reference] | None = None,
) -> None:
    win = window(info, opts)
    codec = output_codec(dst, opts.codec)
    video_tmp = out_tmp = None
    stab = ChromaStabilizer(opts.strength, key_every=opts.key_every, flow=opts.flow)
    try:
        video_tmp, out_tmp = temp_beside(dst, info.path), temp_beside(dst, info.path)
        n = (
            encode_video(
                read_frames(info, win.first, win.count),
                video_tmp,
                info,
                colorizer,
                opts,
                stab,
                Meter(win.total, report=progress),
                codec,
                first=win.first,
                guide=references.film_guide(info, opts, refs, win.first, colorizer),
            )
            if win.count != 0
            else 0
        )
        if n == 0:
            raise VideoError(
                f"{info.path}: no video frames between --start and --end"
                if opts.start is not None or opts.end is not None
                else f"{info.path}: no video frames could be decoded"
            )
        mux(["-i", str(video_tmp)], info, win.audio_span(info.fps), out_tmp, dst)
        check_count(out_tmp, n, dst)
        commit(out_tmp, dst)
    finally:
        unlink(video_tmp, out_tmp)
    result.frames, result.cuts = n, stab.cuts
    nonfinite_warning(stab, result)
