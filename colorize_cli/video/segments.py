"""Resume (segment_seconds S > 0): the film is cut into segments of round(S * fps) frames.

    manifest.json (options + finished segments) -> for each missing segment k: seek to its first frame minus WARMUP,
    warm the stabiliser up on those frames (not written), encode the segment to .NAME.segments/seg_0000k.EXT, record it
    -> at the end of the film: concat every segment (-c copy) + the source's audio -> rename -> remove the folder

A crash or Ctrl-C loses at most the segment in progress. Every segment warms up, interrupted or not, so the result does
not depend on where a run was stopped. Anything that affects the picture (model, render size, strength, key frames,
codec, crf, trims, segment length, references, the source file) is in the manifest's options: a change discards the old
segments. Boundaries are found by seeking in time: exact for constant-frame-rate sources.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colorize_cli.claims import is_temp_name
from colorize_cli.imaging import write_atomic
from colorize_cli.pipeline import Engine
from colorize_cli.progress import Meter, ProgressFn
from colorize_cli.video import references
from colorize_cli.video.core import encode_video, nonfinite_warning
from colorize_cli.video.ffmpeg import VideoInfo, check_count, commit, mux, read_frames, temp_beside, unlink
from colorize_cli.video.options import (
    WARMUP,
    VideoError,
    VideoOptions,
    VideoResult,
    Window,
    output_codec,
    segments_dir,
    window,
)
from colorize_cli.video.stabilize import ChromaStabilizer

if TYPE_CHECKING:
    from colorize_cli.reference import Reference

_SEGMENT_FILE = re.compile(r"^(seg_\d{5}\.[a-z0-9]+|manifest\.json|concat\.txt)$")


@dataclass
class _Film:
    """What every segment of one run shares."""

    info: VideoInfo
    dst: Path
    colorizer: Engine
    opts: VideoOptions
    refs: list[Reference] | None
    win: Window
    codec: str
    per: int  # frames per segment


@dataclass
class _Book:
    """The segment folder and its manifest: the options the segments were made with, the finished ones (index ->
    frames) and, once the end of the film has been reached, the index of the last one."""

    work: Path
    ext: str
    options: dict[str, Any]
    done: dict[int, int] = field(default_factory=dict)
    last: int | None = None

    def path(self, k: int) -> Path:
        return self.work / f"seg_{k:05d}{self.ext}"

    def save(self) -> None:
        state = {"options": self.options, "segments": {str(k): n for k, n in self.done.items()}, "last": self.last}
        write_atomic(self.work / "manifest.json", json.dumps(state, indent=1).encode())

    def finished(self) -> list[int]:
        return sorted(k for k in self.done if self.last is None or k <= self.last)


def _model_id(colorizer: Engine) -> str:
    meta = getattr(colorizer.model, "meta", None) or {}
    return str(meta.get("payload_sha256") or meta.get("architecture") or type(colorizer.model).__name__)


def _options(film: _Film) -> dict[str, Any]:
    """Everything that affects the picture: a manifest made with other options is discarded."""
    opts, win, st = film.opts, film.win, film.info.path.stat()
    return {
        "version": 1,
        "source": str(film.info.path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "model": _model_id(film.colorizer),
        "render_size": opts.render_size,
        "strength": opts.strength,
        "key_every": opts.key_every,
        "codec": film.codec,
        "crf": opts.crf,
        "preset": opts.preset,
        "first": win.first,
        "count": win.count,
        "segment_frames": film.per,
        "fps": str(film.info.fps),
        "ext": film.dst.suffix.lower(),
        "warmup": WARMUP,
        **({"references": references.fingerprint(opts.references)} if opts.references else {}),
    }


def _open_book(work: Path, ext: str, options: dict[str, Any], result: VideoResult) -> _Book:
    """The manifest as left by an earlier run with the same options (its segments that still exist), else a fresh
    one over an emptied folder."""
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads((work / "manifest.json").read_text())
    if state.get("options") != options:
        if work.exists():
            result.warnings.append(f"{work}: made with other options or another source; starting over")
            clear_segments(work)
        state = {"options": options, "segments": {}, "last": None}
    work.mkdir(parents=True, exist_ok=True)
    book = _Book(work, ext, options, last=state["last"])
    book.done = {int(k): int(v) for k, v in state["segments"].items() if book.path(int(k)).exists()}
    return book


def _encode_segment(film: _Film, book: _Book, k: int, stab: ChromaStabilizer, meter: Meter) -> int:
    """Segment k, after its warm-up frames, into the segment folder; returns its frames (fewer than per: the end)."""
    info, win, per = film.info, film.win, film.per
    warm = min(WARMUP, k * per)
    want = per if win.count is None else max(0, min(per, win.count - k * per))
    tmp, seg = None, book.path(k)
    stab.reset()
    try:
        tmp = temp_beside(seg, info.path)
        seg_first = win.first + k * per - warm
        guide = references.film_guide(info, film.opts, film.refs, win.first, film.colorizer)
        n = (
            encode_video(
                read_frames(info, seg_first, warm + want),
                tmp,
                info,
                film.colorizer,
                film.opts,
                stab,
                meter,
                film.codec,
                warmup=warm,
                first=seg_first,
                guide=guide,
            )
            if want
            else 0
        )
        if n:
            check_count(tmp, n, film.dst)
            commit(tmp, seg)
    finally:
        unlink(tmp)
    return n


def _fill(film: _Film, book: _Book, stab: ChromaStabilizer, meter: Meter, result: VideoResult) -> None:
    """Encode the missing segments in order, saving the manifest after each, up to the end of the film."""
    k = 0
    while book.last is None or k <= book.last:
        if k in book.done:
            k += 1
            continue
        n = _encode_segment(film, book, k, stab, meter)
        if n:
            book.done[k] = n
            result.frames += n
        if n < film.per:
            book.last = k if n else k - 1
        book.save()
        if n < film.per:
            break
        k += 1


def _join(film: _Film, book: _Book) -> None:
    """Every finished segment, in order, plus the audio -> the output, renamed into place."""
    order = book.finished()
    if not order or order != list(range(len(order))):
        raise VideoError(
            f"{film.info.path}: no video frames between --start and --end"
            if not order
            else f"{book.work}: segments missing; delete the folder and run again"
        )
    listing = book.work / "concat.txt"
    listing.write_text("".join(f"file '{book.path(i).name}'\n" for i in order))
    out_tmp = None
    try:
        out_tmp = temp_beside(film.dst, film.info.path)
        mux(
            ["-f", "concat", "-safe", "0", "-i", str(listing)],
            film.info,
            film.win.audio_span(film.info.fps),
            out_tmp,
            film.dst,
        )
        check_count(out_tmp, sum(book.done[i] for i in order), film.dst)
        commit(out_tmp, film.dst)
    finally:
        unlink(out_tmp)


def segmented(
    info: VideoInfo,
    dst: Path,
    colorizer: Engine,
    opts: VideoOptions,
    progress: ProgressFn | None,
    result: VideoResult,
    refs: list[Reference] | None = None,
) -> None:
    """A resumable run: the segments an earlier run finished are kept, the rest made, then all joined."""
    film = _Film(
        info,
        dst,
        colorizer,
        opts,
        refs,
        window(info, opts),
        output_codec(dst, opts.codec),
        max(1, round(opts.segment_seconds * float(info.fps))),
    )
    book = _open_book(segments_dir(dst), dst.suffix.lower(), _options(film), result)
    result.reused = sum(book.done.values())
    meter = Meter(film.win.total, result.reused, progress)
    stab = ChromaStabilizer(opts.strength, key_every=opts.key_every, flow=opts.flow)
    book.save()
    _fill(film, book, stab, meter, result)
    result.cuts = stab.cuts
    nonfinite_warning(stab, result)
    _join(film, book)
    clear_segments(book.work)


def clear_segments(work: Path) -> None:
    """Remove a segment folder's own files (segments, manifest, listing, this tool's temporaries), then the folder if
    that left it empty: anything else a user put there stays."""
    with contextlib.suppress(OSError):
        for p in work.iterdir():
            if p.is_file() and (_SEGMENT_FILE.match(p.name) or is_temp_name(p.name)):
                unlink(p)
    with contextlib.suppress(OSError):
        work.rmdir()
