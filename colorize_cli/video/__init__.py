"""Colorize film: a video file (audio kept) or a folder of frames, with temporal stabilisation.

    video file -> ffmpeg decode (rgb24 pipe, streamed: never all frames on disk or in memory; read on a thread ahead)
               -> batches of N frames: full-res luminance + render-size luminance -> model chroma (one call per batch)
               -> ChromaStabilizer, frame by frame (DIS optical flow on the render-size luminance, warp the previous
                  stabilised chroma, blend it in where the warp is trustworthy, reset at scene cuts; with
                  --key-every K, default 4, the model sees only every K-th frame, the rest carried along the flow)
               -> merge with each frame's own full-res luminance -> ffmpeg encode (fed on a thread; video only, temp)
               -> ffmpeg mux: video stream-copied, the source's audio copied (re-encoded to AAC, or Opus for .webm,
                  only when the container cannot hold it) -> atomic rename to the output name.

The output keeps the input's frame count, frame rate and exact width x height. The luminance always comes from the
frames themselves, so a black-and-white film stored as colour video (three equal channels) needs nothing special.
Container and encoder follow the output's extension (.mp4/.m4v/.mov/.mkv: libx264, .webm: libvpx-vp9); --codec and
--crf override. Colour is written as BT.709 (tagged), limited range. --start/--end select whole frames (the first frame
at or after --start up to the last one before --end) and the audio is cut to the same span.

Rooms (arrows point down: a module imports only those below it):
    run.py        the entry: checks, claim, sweep; a film in one pass
    frames.py     folders of frames          segments.py   the resumable film
    references.py --reference glue (colorize_cli/reference.py does the carrying)
    core.py       frames -> colour: luminance, model batches, stabiliser, merge
    stabilize.py  ChromaStabilizer and the optical flow: pure numpy / OpenCV maths
    ffmpeg.py     probe, decode, encode, mux, temporaries and renames
    options.py    VideoOptions, VideoResult, errors, times, output names

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
after the stabiliser; the stabiliser then carries the guided colour on). Before the stabiliser, the model's chroma of
every frame in a reference's shot is graded as the reference shows (ReferenceGuide.correct, one model call per
reference). The carry needs only luminance and the grade one model call on the reference frame's luminance: each
segment and a folder rerun replay both from the reference, so a resumed run gives the colours of an unbroken one.

Frame folders (`colorize video frames/ -o colour_frames/`): the images (sorted by name) are the frames; each output has
the input's name and format and is written atomically. A rerun skips frames already written; stabilisation restarts
(after a WARMUP-frame warm-up) at the first missing frame.
"""

from __future__ import annotations

from colorize_cli.progress import ProgressFn, Tick
from colorize_cli.video.core import colorize_frames, colorize_items, frame_luminance, model_chroma
from colorize_cli.video.ffmpeg import VideoInfo, decode, probe
from colorize_cli.video.options import (
    DEFAULT_STRENGTH,
    WARMUP,
    Flow,
    VideoClaimed,
    VideoError,
    VideoOptions,
    VideoResult,
    default_output,
    parse_time,
    segments_dir,
    summary,
)
from colorize_cli.video.run import check_paths, is_done, run
from colorize_cli.video.stabilize import ChromaStabilizer

__all__ = [
    "DEFAULT_STRENGTH",
    "WARMUP",
    "ChromaStabilizer",
    "Flow",
    "ProgressFn",
    "Tick",
    "VideoClaimed",
    "VideoError",
    "VideoInfo",
    "VideoOptions",
    "VideoResult",
    "check_paths",
    "colorize_frames",
    "colorize_items",
    "decode",
    "default_output",
    "frame_luminance",
    "is_done",
    "model_chroma",
    "parse_time",
    "probe",
    "run",
    "segments_dir",
    "summary",
]
