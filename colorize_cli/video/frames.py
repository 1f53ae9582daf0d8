"""Frame folders (`colorize video frames/ -o colour_frames/`): the images, sorted by name, are the frames; each output
has the input's name and format and is written atomically. A rerun skips frames already written; stabilisation
restarts (after a WARMUP-frame warm-up) at the first missing frame, and after a frame that cannot be read or written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from colorize_cli.batch import Inputs
from colorize_cli.color import srgb_luminance
from colorize_cli.folders import iter_images, output_path
from colorize_cli.imaging import ImageError, encode_image, read_image, write_atomic
from colorize_cli.pipeline import Engine, Status
from colorize_cli.progress import Meter, ProgressFn
from colorize_cli.video import references
from colorize_cli.video.core import Item, colorize_items, nonfinite_warning
from colorize_cli.video.options import WARMUP, VideoError, VideoOptions, VideoResult
from colorize_cli.video.stabilize import ChromaStabilizer


@dataclass
class _Folder:
    """A folder's frames, their outputs, which are to be written (todo) and which to run (todo or warm-up)."""

    files: list[Path]
    dsts: list[Path]
    todo: list[bool]
    run_it: list[bool]


def _plan(src: Path, dst: Path, opts: VideoOptions) -> _Folder:
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
    run_it = [any(todo[i : i + WARMUP + 1]) for i in range(len(files))]
    return _Folder(files, dsts, todo, run_it)


def _items(folder: _Folder, result: VideoResult) -> Iterator[Item]:
    """The frames to run, read one at a time; the stabiliser restarts after a gap (a skipped or unreadable frame)."""
    fresh = True
    for i, f in enumerate(folder.files):
        if not folder.run_it[i]:
            fresh = True
            continue
        try:
            img = read_image(f)
        except ImageError as e:
            result.failed.append(str(e))
            fresh = True
            continue
        yield Item(
            i, srgb_luminance(img.rgb), emit=folder.todo[i], reset=fresh, alpha=img.alpha, bit_depth=img.bit_depth
        )
        fresh = False


def colorize_folder(
    src: Path, dst: Path, colorizer: Engine, opts: VideoOptions, progress: ProgressFn | None = None
) -> VideoResult:
    """Every image in `src` (sorted by name) is a frame; outputs get the same names in `dst`. A frame that cannot be
    read or written is reported in result.failed and the stabiliser restarts after it."""
    t0 = time.perf_counter()
    result = VideoResult(src, dst)
    folder = _plan(src, dst, opts)
    result.reused = len(folder.files) - sum(folder.todo)
    if not any(folder.todo):
        result.status = Status.SKIPPED
        return result
    refs = references.folder_references(folder.files, opts, result)
    dst.mkdir(parents=True, exist_ok=True)
    meter = Meter(len(folder.files), result.reused, progress)
    stab = ChromaStabilizer(opts.strength, key_every=opts.key_every, flow=opts.flow)
    guide = references.folder_guide(folder.files, opts, refs, colorizer)
    for it, rgb in colorize_items(
        _items(folder, result), colorizer, stab, opts.render_size, opts.batch_size, guide=guide
    ):
        out = folder.dsts[it.key]
        try:
            write_atomic(out, encode_image(rgb, it.alpha, out.suffix, it.bit_depth, opts.jpeg_quality))
            result.frames += 1
        except (ImageError, ValueError, OSError) as e:
            result.failed.append(str(e).splitlines()[0])
            stab.reset()
        meter.add()
    result.cuts = stab.cuts
    nonfinite_warning(stab, result)
    result.seconds = time.perf_counter() - t0
    return result
