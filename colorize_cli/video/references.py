"""Glue between colorize_cli/reference.py and the film and folder streams: check every --reference against its frame
before any work, fingerprint them for resume, and build the ReferenceGuide with a loader that decodes luminance again.
reference.py builds on ChromaStabilizer, so it is imported where it is used."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from colorize_cli.color import srgb_luminance
from colorize_cli.imaging import ImageError, read_image
from colorize_cli.pipeline import Engine, render_small
from colorize_cli.video.core import frame_luminance, model_chroma
from colorize_cli.video.ffmpeg import VideoInfo, read_frames
from colorize_cli.video.options import VideoError, VideoOptions, VideoResult, Window

if TYPE_CHECKING:
    from colorize_cli.reference import Reference, ReferenceGuide, ReferenceSpec


def check_references(opts: VideoOptions, folder: bool) -> None:
    """Before any work: every reference image readable, frame folders' references given by number."""
    from colorize_cli import reference

    for spec in opts.references:
        if folder:
            spec.frame_at(None)
        reference.load_rgb(spec)


def fingerprint(specs: Iterable[ReferenceSpec]) -> list[list]:
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


def video_references(info: VideoInfo, win: Window, opts: VideoOptions, result: VideoResult) -> list[Reference]:
    """Each reference's frame decoded and checked before any work; one outside --start/--end is noted and dropped."""
    refs: list[Reference] = []
    end = None if win.count is None else win.first + win.count
    for spec in opts.references:
        frame = spec.frame_at(info.fps)
        if frame < win.first or (end is not None and frame >= end):
            _ignored(spec, frame, result, "outside --start/--end")
            continue
        got = list(read_frames(info, frame, 1))
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
    for f in read_frames(info, first, count):
        yield render_small(frame_luminance(f), render_size, tones=False)


def film_guide(
    info: VideoInfo, opts: VideoOptions, refs: list[Reference] | None, first: int, colorizer: Engine
) -> ReferenceGuide | None:
    if not refs:
        return None
    from colorize_cli.reference import ReferenceGuide

    return ReferenceGuide(
        list(refs), functools.partial(_render_lums, info, opts.render_size), first, chroma=model_chroma(colorizer)
    )


def folder_references(files: list[Path], opts: VideoOptions, result: VideoResult) -> list[Reference]:
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
    for f in files[first : first + count]:
        try:
            img = read_image(f)
        except ImageError:
            return
        yield render_small(srgb_luminance(img.rgb), render_size, tones=False)


def folder_guide(
    files: list[Path], opts: VideoOptions, refs: list[Reference], colorizer: Engine
) -> ReferenceGuide | None:
    if not refs:
        return None
    from colorize_cli.reference import ReferenceGuide

    return ReferenceGuide(
        refs, functools.partial(_folder_lums, files, opts.render_size), chroma=model_chroma(colorizer)
    )
