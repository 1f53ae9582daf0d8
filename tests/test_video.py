"""`colorize video`: streaming colorization of real film clips (DAVIS, a 1950s B&W film) cut small with ffmpeg.

Every test uses a tiny render size so the whole file runs in seconds on a CPU; nothing here depends on how good the
model is.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from colorize_cli import color, video
from colorize_cli.pipeline import Engine, srgb_luminance
from colorize_cli.video import core, segments, stabilize
from colorize_cli.video.ffmpeg import Encoder
from colorize_cli.weights import shipped_path
from tests.conftest import SpyColorizer

VIDEO = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "video"
SWAN, FILM = VIDEO / "davis-blackswan.mp4", VIDEO / "bw-film-1950s.mp4"
FF = imageio_ffmpeg.get_ffmpeg_exe()
FAST = dict(render_size=64, batch_size=8)


def ffmpeg(*args: str) -> None:
    subprocess.run([FF, "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True)


def header(path: Path) -> str:
    """What `ffmpeg -i` says about a file (stream lines), without ffprobe."""
    return subprocess.run([FF, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def frames(path: Path) -> list[np.ndarray]:
    return list(video.decode(path))


def ab_of(rgb: np.ndarray) -> np.ndarray:
    return color.rgb_to_lab(torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255)[0, 1:].numpy()


def flicker(abs_: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(a - b).mean() for a, b in zip(abs_[1:], abs_[:-1])]))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    if not (SWAN.is_file() and FILM.is_file()):
        pytest.skip(f"{VIDEO} is not available")
    d = tmp_path_factory.mktemp("clips")
    c = {k: d / f"{k}.mp4" for k in ("swan", "film_odd", "swan_audio", "swan_2s", "film_cut")}
    ffmpeg("-i", str(SWAN), "-t", "1", "-vf", "scale=160:90", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(c["swan"]))
    ffmpeg(
        "-i", str(FILM), "-t", "1", "-vf", "scale=161:91", "-c:v", "libx264", "-pix_fmt", "yuv444p", str(c["film_odd"])
    )
    for name, scale in (("swan_audio", "160:90"), ("swan_2s", "96:54")):  # 2 s of the swan with a 440 Hz tone
        sine = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-t", "2"]
        codecs = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]
        ffmpeg("-i", str(SWAN), *sine, "-vf", f"scale={scale}", *codecs, str(c[name]))
    # frames 30..59 of the film hold a hard cut at frame 44 (30 + 14)
    ffmpeg(
        "-i",
        str(FILM),
        "-vf",
        "select='between(n,30,59)',scale=128:96",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(c["film_cut"]),
    )
    return c


@pytest.fixture(scope="module")
def colorizer() -> Engine:
    if shipped_path("unet-lab").is_file():
        from colorize_cli.zoo import load_model

        model = load_model("unet-lab")
    else:  # the quality of the model does not matter here
        from colorize_cli.registry import create_model

        torch.manual_seed(0)
        model = create_model("unet-lab").eval()
    return Engine(model, torch.device("cpu"))


def opts(**kw) -> video.VideoOptions:
    return video.VideoOptions(**{**FAST, **kw})


def leftovers(folder: Path) -> list[str]:
    return sorted(
        p.name
        for p in folder.iterdir()
        if any(k in p.name for k in ("partial", "colorize-tmp", "colorize-lock")) or p.name.endswith(".segments")
    )


# ------------------------------------------------------------------------------------------------ video files
@pytest.mark.parametrize("clip,ext", [("swan", ".mp4"), ("film_odd", ".mp4"), ("film_odd", ".webm")])
def test_keeps_frame_count_fps_size_and_luminance(clips, colorizer, tmp_path, clip, ext):
    src, dst = clips[clip], tmp_path / f"out{ext}"
    ticks: list[video.Tick] = []
    res = video.run(src, dst, colorizer, opts(), ticks.append)
    a, b = video.probe(src), video.probe(dst)
    assert (b.width, b.height) == (a.width, a.height)  # 161x91 stays 161x91
    assert b.fps == a.fps and b.packets == a.packets == res.frames
    out, inp = frames(dst), frames(src)
    assert len(out) == len(inp) == a.packets == {"swan": 24, "film_odd": 29}[clip]
    lum_err = np.mean([np.abs(video.frame_luminance(o) - video.frame_luminance(i)).mean() for o, i in zip(out, inp)])
    assert lum_err < 0.02  # the detail is the input's own luminance
    assert np.mean([np.abs(ab_of(o)).mean() for o in out[::6]]) > 0.5  # and it has colour
    assert (
        [t.done for t in ticks] == list(range(1, len(out) + 1)) and ticks[-1].total == len(out) and ticks[-1].rate > 0
    )
    assert "Audio:" not in header(dst)  # a clip with no audio works
    assert leftovers(tmp_path) == []


def test_webm_gets_vp9_and_odd_size_is_444(clips, colorizer, tmp_path):
    dst = tmp_path / "o.webm"
    video.run(clips["film_odd"], dst, colorizer, opts())
    stream = next(ln for ln in header(dst).splitlines() if "Video:" in ln)
    assert "vp9" in stream and "yuv444p" in stream


def test_audio_is_kept_and_trimmed_with_the_picture(clips, colorizer, tmp_path):
    src = clips["swan_audio"]
    assert "Audio: aac" in header(src)
    whole = tmp_path / "whole.mkv"
    video.run(src, whole, colorizer, opts())
    assert "Audio: aac" in header(whole)  # copied, not re-encoded
    assert video.probe(whole).packets == 48
    webm = tmp_path / "trim.webm"  # AAC cannot go in WebM: re-encoded to Opus
    res = video.run(src, webm, colorizer, opts(start=0.5, end=1.0))
    assert "Audio: opus" in header(webm)
    assert res.frames == 12 and video.probe(webm).packets == 12
    info = video.probe(webm)
    assert 0.45 <= info.duration <= 0.6  # audio cut to the same half second
    first, source = frames(webm)[0], frames(src)
    dist = [np.abs(video.frame_luminance(first) - video.frame_luminance(s)).mean() for s in source]
    assert int(np.argmin(dist)) == 12  # starts at 0.5 s * 24 fps


def nearest_source_frames(out: Path, src: Path) -> list[int]:
    lum = [video.frame_luminance(f) for f in frames(src)]
    return [int(np.argmin([np.abs(video.frame_luminance(f) - x).mean() for x in lum])) for f in frames(out)]


def test_trim_with_segments_takes_the_same_frames(clips, colorizer, tmp_path):
    src, dst = clips["swan_audio"], tmp_path / "t.mp4"
    video.run(src, dst, colorizer, opts(start=0.3, end=1.0, segment_seconds=0.2))  # 0.3 s falls between frames
    assert nearest_source_frames(dst, src) == list(range(8, 24))
    assert "Audio: aac" in header(dst)


@pytest.mark.parametrize("kind", ["text", "truncated", "truncated_faststart", "missing", "audio_only", "empty"])
def test_bad_inputs_raise_one_line_naming_the_file(clips, colorizer, tmp_path, kind):
    bad = tmp_path / f"bad_{kind}.mp4"
    data = clips["swan"].read_bytes()
    if kind == "text":
        bad.write_text("this is not a film\n")
    elif kind == "truncated":  # moov atom at the end: lost
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_faststart":  # index first, frames cut off
        fs = tmp_path / "fs.mp4"
        ffmpeg("-i", str(clips["swan"]), "-c", "copy", "-movflags", "+faststart", str(fs))
        bad.write_bytes(fs.read_bytes()[: fs.stat().st_size // 2])
    elif kind == "audio_only":
        bad = tmp_path / "bad_audio_only.m4a"
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(bad))
    elif kind == "empty":
        bad.write_bytes(b"")
    dst = tmp_path / "out.mp4"
    with pytest.raises(video.VideoError) as e:
        video.run(bad, dst, colorizer, opts())
    msg = str(e.value)
    assert str(bad) in msg and "\n" not in msg
    assert {
        "missing": "not found",
        "audio_only": "no video stream",
        "empty": "empty",
        "truncated_faststart": "truncated",
    }.get(kind, "") in msg
    assert not dst.exists() and leftovers(tmp_path) == []


def test_interrupt_leaves_nothing_under_the_final_name(clips, colorizer, tmp_path, monkeypatch):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"previous result")  # an overwrite that is interrupted keeps the old file
    real = Encoder.write

    def write(self, rgb):
        if self.frames == 10:
            raise KeyboardInterrupt
        real(self, rgb)

    monkeypatch.setattr(Encoder, "write", write)
    with pytest.raises(KeyboardInterrupt):
        video.run(clips["swan"], dst, colorizer, opts(overwrite=True))
    assert dst.read_bytes() == b"previous result"
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    assert video.run(clips["swan"], dst, colorizer, opts()).status == "skipped"  # exists: not redone by default


def test_segments_resume_after_interrupt(clips, colorizer, tmp_path, monkeypatch):
    src, dst = clips["swan_2s"], tmp_path / "film.mp4"  # 48 frames and audio, 12-frame segments
    o = opts(segment_seconds=0.5)
    work = video.segments_dir(dst)
    real, writes = Encoder.write, []

    def write(self, rgb):
        writes.append(1)
        if len(writes) == 12 + 12 + 5:  # in the third segment
            raise KeyboardInterrupt
        real(self, rgb)

    monkeypatch.setattr(Encoder, "write", write)
    with pytest.raises(KeyboardInterrupt):
        video.run(src, dst, colorizer, o)
    assert not dst.exists()
    assert sorted(p.name for p in work.glob("seg_*")) == ["seg_00000.mp4", "seg_00001.mp4"]
    stamps = {p.name: p.stat().st_mtime_ns for p in work.glob("seg_*")}

    writes.clear()
    seen: dict[str, int] = {}
    real_clear = segments.clear_segments

    def clear(path):  # look at the segments before the clean-up
        seen.update({p.name: p.stat().st_mtime_ns for p in Path(path).glob("seg_*")})
        real_clear(path)

    monkeypatch.setattr(segments, "clear_segments", clear)
    res = video.run(src, dst, colorizer, o)
    assert len(writes) == 24 and res.frames == 24 and res.reused == 24  # only the last two segments were made
    assert res.warnings == []  # same options: nothing discarded
    assert all(seen[k] == v for k, v in stamps.items())  # finished segments untouched
    assert not work.exists() and leftovers(tmp_path) == []
    assert video.probe(dst).fps == video.probe(src).fps and "Audio: aac" in header(dst)
    assert nearest_source_frames(dst, src) == list(range(48))  # no frame dropped or doubled at the joins


def test_segments_from_other_options_are_discarded(clips, colorizer, tmp_path, monkeypatch):
    src, dst = clips["swan"], tmp_path / "o.mp4"
    real = Encoder.write

    def write(self, rgb):
        if "seg_00001" in self.path.name:
            raise KeyboardInterrupt
        real(self, rgb)

    monkeypatch.setattr(Encoder, "write", write)
    with pytest.raises(KeyboardInterrupt):
        video.run(src, dst, colorizer, opts(segment_seconds=0.5))
    monkeypatch.undo()
    res = video.run(src, dst, colorizer, opts(segment_seconds=0.5, crf=30))
    assert res.reused == 0 and res.frames == 24 and any("starting over" in w for w in res.warnings)


# ---------------------------------------------------------------------------------------------- stabilisation
def small_frames(path: Path, n: int) -> list[np.ndarray]:
    return list(video.decode(path, n))


def test_stabiliser_lowers_flicker_and_stays_close(clips):
    """Real motion (the swan clip), ground-truth chroma plus independent per-frame errors, as a flickery model gives."""
    rgb = small_frames(SWAN, 30)
    rgb = [cv2.resize(f, (228, 128), interpolation=cv2.INTER_AREA) for f in rgb]
    lums = [video.frame_luminance(f) for f in rgb]
    truth = [ab_of(f) for f in rgb]
    rng = np.random.default_rng(0)
    noisy = [
        t
        + rng.normal(0, 4, (2, 1, 1)).astype(np.float32)
        + cv2.resize(rng.normal(0, 4, (8, 15, 2)).astype(np.float32), (228, 128)).transpose(2, 0, 1)
        for t in truth
    ]
    stab = video.ChromaStabilizer()
    out = [stab.step(lum, ab) for lum, ab in zip(lums, noisy)]
    assert flicker(out) < 0.6 * flicker(noisy)
    err = lambda seq: np.mean([np.abs(a - t).mean() for a, t in zip(seq, truth)])  # noqa: E731
    assert err(out) < 0.8 * err(noisy)
    assert stab.cuts == 0 and stab.mean_confidence > 0.5
    # with a perfect prediction it must not drag colour around: within 1 ab unit of the prediction
    clean = video.ChromaStabilizer()
    assert err([clean.step(lum, t) for lum, t in zip(lums, truth)]) < 1.0
    # strength 0 is the prediction itself
    off = video.ChromaStabilizer(0.0)
    assert all(np.array_equal(off.step(lum, ab), ab) for lum, ab in zip(lums[:3], noisy[:3]))


def test_stabiliser_on_the_model_output(clips, colorizer):
    """Through the real model: less frame-to-frame change than per-frame colorization, same picture overall."""
    rgb = frames(clips["swan"])
    per_frame = list(video.colorize_frames(rgb, colorizer, video.ChromaStabilizer(0.0), **FAST))
    stable = list(video.colorize_frames(rgb, colorizer, video.ChromaStabilizer(), **FAST))
    a0, a1 = [ab_of(f) for f in per_frame], [ab_of(f) for f in stable]
    assert flicker(a1) < flicker(a0)
    assert np.mean([np.abs(x - y).mean() for x, y in zip(a0, a1)]) < 0.5 * np.mean([np.abs(x).mean() for x in a0]) + 1


def test_scene_cut_resets_to_the_prediction(clips):
    rgb = frames(clips["film_cut"])
    assert len(rgb) == 30
    stab = video.ChromaStabilizer(0.9)
    rng = np.random.default_rng(1)
    for i, f in enumerate(rgb):
        lum = video.frame_luminance(f)
        pred = rng.normal(0, 10, (2, *lum.shape)).astype(np.float32)
        out = stab.step(lum, pred)
        if i == 14:
            assert np.array_equal(out, pred)  # the cut: no colour carried over
        elif i in (13, 15):
            assert not np.array_equal(out, pred)
    assert stab.cuts == 1


def test_stabiliser_survives_nan_prediction(clips):
    rgb = frames(clips["swan"])[:3]
    stab = video.ChromaStabilizer()
    lum = [video.frame_luminance(f) for f in rgb]
    stab.step(lum[0], np.full((2, *lum[0].shape), 5, np.float32))
    out = stab.step(lum[1], np.full((2, *lum[1].shape), np.nan, np.float32))
    assert np.array_equal(out, np.zeros_like(out)) and stab.nonfinite == 1
    assert np.isfinite(stab.step(lum[2], np.ones((2, *lum[2].shape), np.float32))).all()


def test_frame_luminance_matches_pipeline_on_colour_and_gray_frames(clips):
    colour, gray = frames(clips["swan"])[0], frames(clips["film_odd"])[0]
    gray3 = np.repeat(gray[..., :1], 3, 2)  # a B&W film stored as colour video
    for f in (colour, gray, gray3):
        ref = srgb_luminance(f.astype(np.float32) / 255)
        assert np.abs(video.frame_luminance(f) - ref).max() < 1e-4  # 0.01 L: a fortieth of one 8-bit step


# ---------------------------------------------------------------------------------------------- frame folders
def test_frame_folder_in_and_out_and_resume(clips, colorizer, tmp_path):
    src, dst = tmp_path / "frames", tmp_path / "colour"
    src.mkdir()
    ffmpeg("-i", str(clips["swan"]), "-frames:v", "12", str(src / "f%03d.png"))
    (src / "notes.txt").write_text("not a frame")
    names = sorted(p.name for p in src.glob("*.png"))
    res = video.run(src, dst, colorizer, opts())
    assert res.frames == 12 and not res.failed
    assert sorted(p.name for p in dst.iterdir()) == names
    for n in names[::5]:
        a, b = cv2.imread(str(src / n)), cv2.imread(str(dst / n))
        assert a.shape == b.shape
        assert np.abs(video.frame_luminance(a[..., ::-1]) - video.frame_luminance(b[..., ::-1])).mean() < 0.01
    assert video.run(src, dst, colorizer, opts()).status == "skipped"
    keep = {n: (dst / n).stat().st_mtime_ns for n in names}
    for n in names[5:8]:
        (dst / n).unlink()
    res = video.run(src, dst, colorizer, opts())
    assert res.frames == 3 and res.reused == 9
    assert all((dst / n).stat().st_mtime_ns == keep[n] for n in names if n not in names[5:8])
    assert not [p for p in dst.iterdir() if p.name.startswith(".")]  # no temp files left


def test_unreadable_frame_is_reported_and_the_rest_done(clips, colorizer, tmp_path):
    src, dst = tmp_path / "frames", tmp_path / "colour"
    src.mkdir()
    ffmpeg("-i", str(clips["swan"]), "-frames:v", "6", str(src / "f%03d.jpg"))
    (src / "f004.jpg").write_bytes(b"\xff\xd8 broken")
    res = video.run(src, dst, colorizer, opts())
    assert res.frames == 5 and len(res.failed) == 1 and "f004.jpg" in res.failed[0]
    assert not (dst / "f004.jpg").exists() and (dst / "f005.jpg").exists()


# --------------------------------------------------------------------------------------------------- options
def test_parse_time():
    assert video.parse_time("01:02:03.5") == 3723.5
    assert video.parse_time("1:30") == 90 and video.parse_time("90") == 90 and video.parse_time(None) is None
    for bad in ("abc", "1:75", "-3", "1::2", "1:2:3:4"):
        with pytest.raises(ValueError):
            video.parse_time(bad)


def test_usage_errors(clips, tmp_path):
    o = video.VideoOptions()
    with pytest.raises(ValueError, match="unsupported output type"):
        video.check_paths(clips["swan"], tmp_path / "o.gif", o)
    with pytest.raises(ValueError, match="folder"):
        video.check_paths(tmp_path, tmp_path / "o.mp4", o)
    with pytest.raises(ValueError, match="after --start"):
        video.check_paths(clips["swan"], tmp_path / "o.mp4", video.VideoOptions(start=5, end=2))
    with pytest.raises(ValueError, match="not in this ffmpeg"):
        video.check_paths(clips["swan"], tmp_path / "o.mp4", video.VideoOptions(codec="no-such-encoder"))
    with pytest.raises(ValueError, match="overwrite the input"):
        video.check_paths(clips["swan"], clips["swan"], o)
    assert video.default_output(Path("a/film.avi")) == Path("a/film_colorized.mp4")
    assert os.fspath(video.default_output(Path("b/reel.mkv"))).endswith("reel_colorized.mkv")


def test_variable_frame_rate_keeps_every_frame(clips, colorizer, tmp_path):
    """1 s at 10 fps then 1 s at 30 fps in one file: every frame is colorized and written (at a constant rate)."""
    for name, start, rate in (("a.mp4", "0", 10), ("b.mp4", "2", 30)):
        ffmpeg(
            "-ss",
            start,
            "-i",
            str(FILM),
            "-t",
            "1",
            "-vf",
            f"scale=96:72,fps={rate}",
            "-c:v",
            "libx264",
            str(tmp_path / name),
        )
    (tmp_path / "list.txt").write_text("file a.mp4\nfile b.mp4\n")
    ffmpeg("-f", "concat", "-i", str(tmp_path / "list.txt"), "-c", "copy", str(tmp_path / "vfr.mkv"))
    src, dst = tmp_path / "vfr.mkv", tmp_path / "out.mkv"
    res = video.run(src, dst, colorizer, opts())
    n_in, _ = imageio_ffmpeg.count_frames_and_secs(str(src))
    n_out, _ = imageio_ffmpeg.count_frames_and_secs(str(dst))
    assert n_out == n_in == res.frames == 40


def test_key_frames_every_k_and_at_cuts(clips):
    """--key-every K: the model is asked for every K-th frame, and for the first frame after a scene cut."""
    lums = [video.frame_luminance(f) for f in frames(clips["film_cut"])]
    stab = video.ChromaStabilizer(key_every=4)
    keys = [i for i, lum in enumerate(lums) if stab.needs_model(lum)]
    assert 14 in keys  # the cut (see test_scene_cut_resets_to_the_prediction)
    assert keys[:4] == [0, 4, 8, 12] and keys[-1] >= len(lums) - 4
    assert all(0 < b - a <= 4 for a, b in zip(keys, keys[1:]))
    every = video.ChromaStabilizer()
    assert all(every.needs_model(lum) for lum in lums[:5])


@pytest.mark.parametrize("flow", list(video.Flow))
def test_carried_frames_follow_the_motion(clips, flow):
    """Real motion, true chroma given on key frames only: the frames between, carried along the flow (either
    method), stay near the truth (far nearer than gray), and each key frame brings the prediction back."""
    rgb = [cv2.resize(f, (228, 128), interpolation=cv2.INTER_AREA) for f in small_frames(SWAN, 13)]
    lums = [video.frame_luminance(f) for f in rgb]
    truth = [ab_of(f) for f in rgb]
    stab = video.ChromaStabilizer(0.0, key_every=3, flow=flow)
    errs = []
    for lum, t in zip(lums, truth):
        out = stab.step(lum, t if stab.needs_model(lum) else None)
        errs.append(np.abs(out - t).mean())
    gray_err = np.mean([np.abs(t).mean() for t in truth])
    assert errs[0] == errs[3] == 0  # strength 0: key frames are the prediction
    assert max(errs) < 0.2 * gray_err


def test_key_every_runs_the_model_on_key_frames_only(clips, colorizer, monkeypatch):
    rgb = frames(clips["swan"])
    seen = []
    real = colorizer.chroma
    monkeypatch.setattr(colorizer, "chroma", lambda smalls: seen.append(len(smalls)) or real(smalls))
    every = list(video.colorize_frames(rgb, colorizer, video.ChromaStabilizer(), **FAST))
    calls_every = sum(seen)
    seen.clear()
    keyed = list(video.colorize_frames(rgb, colorizer, video.ChromaStabilizer(key_every=3), **FAST))
    assert len(keyed) == len(every) == len(rgb) and calls_every == len(rgb)
    assert sum(seen) == -(-len(rgb) // 3)
    diff = np.mean([np.abs(ab_of(a) - ab_of(b)).mean() for a, b in zip(every, keyed)])
    assert diff < 0.5 * np.mean([np.abs(ab_of(a)).mean() for a in every])


def test_key_frame_planning_and_the_blend_share_each_frames_features(clips, monkeypatch):
    """With --key-every, each frame is blurred and histogrammed once (by the planning), not again by the blend; the
    output is what computing them afresh gives."""

    class Fresh(video.ChromaStabilizer):
        def step(self, lum, ab):
            self._planned.clear()  # forget what the planning computed: the blend computes its own
            return super().step(lum, ab)

    class Varied(SpyColorizer):  # chroma that follows the picture, so the warp and blend matter
        def chroma(self, smalls):
            return [torch.stack([(s - 0.5) * 60, torch.linspace(-20, 20, s.shape[1]).expand_as(s)]) for s in smalls]

    rgb = [cv2.resize(f, (228, 128), interpolation=cv2.INTER_AREA) for f in small_frames(SWAN, 9)]
    fresh = list(video.colorize_frames(rgb, Varied(), Fresh(key_every=3), render_size=64, batch_size=4))
    calls = []
    real = stabilize.features
    monkeypatch.setattr(stabilize, "features", lambda lum: calls.append(1) or real(lum))
    shared = list(
        video.colorize_frames(rgb, Varied(), video.ChromaStabilizer(key_every=3), render_size=64, batch_size=4)
    )
    assert len(calls) == len(rgb)
    assert all(np.array_equal(a, b) for a, b in zip(fresh, shared))


def test_film_frames_reach_the_network_without_the_photo_tone_stretch():
    """A faded frame (L 0.2..0.7) is not stretched per frame for video, unlike a photo: a range that follows each
    frame's percentiles made real footage less steady (benchmarks/RESULTS.md)."""
    lum = np.tile(np.linspace(0.2, 0.7, 64, dtype=np.float32), (48, 1))
    spy = SpyColorizer()
    items = [core.Item(key=k, lum=lum) for k in range(2)]
    list(video.colorize_items(items, spy, video.ChromaStabilizer(0.0), render_size=48, batch_size=2))
    assert len(spy.seen) == 2
    assert all(abs(float(s.min()) - 0.2) < 0.01 and abs(float(s.max()) - 0.7) < 0.01 for s in spy.seen)


# ------------------------------------------------------------------------------------------------ the film threads
def test_decode_ahead_keeps_order_raises_in_order_and_closes():
    closed = []

    def source(fail_at: int | None):
        try:
            for i in range(10):
                if i == fail_at:
                    raise ValueError(f"bad frame {i}")
                yield i
        finally:
            closed.append(fail_at)

    assert list(core.ahead(source(None), 3)) == list(range(10))
    got = []
    with pytest.raises(ValueError, match="bad frame 6"):
        for x in core.ahead(source(6), 2):
            got.append(x)
    assert got == list(range(6))  # every frame before the bad one, in order
    early = core.ahead(source(None), 2)
    assert next(early) == 0
    early.close()  # the consumer stops: the producer closes its source
    assert closed == [None, 6, None]


def test_encode_thread_writes_in_order_and_raises_the_writers_error():
    written = []
    sink = core.Behind(written.append, 2)
    for i in range(20):
        sink.put(i)
    sink.finish()
    assert written == list(range(20))

    def broken(x: int) -> None:
        if x == 3:
            raise video.VideoError("out.mp4: the encoder stopped")
        written.append(x)

    written.clear()
    sink = core.Behind(broken, 2)
    with pytest.raises(video.VideoError, match="encoder stopped"):
        for i in range(50):
            sink.put(i)
        sink.finish()
    assert written == [0, 1, 2]


def test_film_defaults_are_the_measured_fast_ones():
    """benchmarks/RESULTS.md, "Film speed": key frames every 4 and DIS flow, no worse in PSNR/CDC."""
    opts = video.VideoOptions()
    assert opts.key_every == 4 and opts.flow is video.Flow.DIS
    assert video.ChromaStabilizer().flow is video.Flow.DIS
