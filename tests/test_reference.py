"""--reference: a colour image of one frame carried through its shot. Synthetic clips made here (a textured, coloured
picture sliding sideways), so nothing depends on ../shared or on how good the model is: the SpyColorizer's constant
chroma stands for the model, and the reference's colour must replace it where the motion can be followed."""

from __future__ import annotations

from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from colorize_cli import color, reference, video
from colorize_cli.cli import app
from colorize_cli.pipeline import render_small
from colorize_cli.reference import Reference, ReferenceGuide, parse_spec
from colorize_cli.video import references
from tests.conftest import SpyColorizer

H, W, N, SHIFT = 72, 128, 24, 1  # frames of H x W, the picture moves SHIFT pixels right per frame
FAST = dict(render_size=64, batch_size=8)


def scene(seed: int = 0, width: int = W + N * SHIFT, tint: tuple[float, float, float] | None = None) -> np.ndarray:
    """A wide uint8 RGB picture: smooth colour regions (or one tint) over a luminance texture the flow can follow."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((H, width)).astype(np.float32), (0, 0), 2.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    hue = cv2.resize(rng.random((3, 6, 3)).astype(np.float32), (width, H), interpolation=cv2.INTER_CUBIC)
    if tint is not None:
        hue = np.broadcast_to(np.float32(tint), hue.shape)
    rgb = np.clip(0.15 + 0.7 * tex[..., None] * (0.4 + 0.9 * hue), 0, 1)
    return np.rint(rgb * 255).astype(np.uint8)


def moving(n: int = N, seed: int = 0, tint: tuple[float, float, float] | None = None) -> list[np.ndarray]:
    """n frames of the scene panning: frame t shows columns [N*SHIFT - t*SHIFT, ... + W)."""
    pic = scene(seed, tint=tint)
    return [np.ascontiguousarray(pic[:, N * SHIFT - t * SHIFT : N * SHIFT - t * SHIFT + W]) for t in range(n)]


def ab_of(frame: np.ndarray) -> np.ndarray:
    return color.rgb_to_lab(torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None].float() / 255)[0, 1:].numpy()


def ab_error(out: np.ndarray, truth: np.ndarray) -> float:
    """Mean |ab| difference over the interior (the columns entering at the left edge have no reference colour)."""
    m = 12
    return float(np.abs(ab_of(out) - ab_of(truth))[:, m:-m, m:-m].mean())


def guide_for(frames: list[np.ndarray], ref: int, render_size: int = 64, grade: bool = False) -> ReferenceGuide:
    """A guide from frame ref's true colour; grade: it also grades the (spy) model's chroma of its shot."""
    smalls = [render_small(video.frame_luminance(f), render_size, tones=False) for f in frames]
    ab = reference.reference_chroma(frames[ref].astype(np.float32) / 255, frames[0].shape[:2], render_size)
    return ReferenceGuide(
        [Reference(ref, ab, "test")],
        lambda first, n: iter(smalls[first : first + n]),
        chroma=video.model_chroma(SpyColorizer()) if grade else None,
    )


def colorize(frames: list[np.ndarray], guide: ReferenceGuide | None, key_every: int = 1) -> list[np.ndarray]:
    stab = video.ChromaStabilizer(key_every=key_every)
    return list(video.colorize_frames(frames, SpyColorizer(), stab, 64, 8, guide=guide))


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 24) -> None:
    gen = imageio_ffmpeg.write_frames(
        str(path),
        (frames[0].shape[1], frames[0].shape[0]),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv444p",
        quality=None,
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=["-crf", "4"],
    )
    gen.send(None)
    for f in frames:
        gen.send(np.ascontiguousarray(f))
    gen.close()


def save_png(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


# ------------------------------------------------------------------------------------------------------ parsing
def test_parse_spec_times_and_frame_numbers():
    assert parse_spec("00:01:12.5=shot12.png") == reference.ReferenceSpec(
        "00:01:12.5=shot12.png", Path("shot12.png"), seconds=72.5
    )
    assert parse_spec("3.25=a.png").seconds == 3.25
    spec = parse_spec("#300=frame_0300_colour.png")
    assert (spec.frame, spec.path) == (300, Path("frame_0300_colour.png"))
    assert spec.frame_at(None) == 300
    assert parse_spec("1=a.png").frame_at(24) == 24  # the first frame at or after the time
    assert parse_spec("1.01=a.png").frame_at(24) == 25
    assert parse_spec("0=a.png").frame_at(24) == 0
    for bad in ("shot.png", "=a.png", "#=a.png", "#x=a.png", "#-1=a.png", "1:2:3:4=a.png", "#3=", "abc=a.png"):
        with pytest.raises(ValueError, match="--reference"):
            parse_spec(bad)
    with pytest.raises(ValueError, match="no clock"):
        parse_spec("2.5=a.png").frame_at(None)


def test_missing_or_unreadable_reference_is_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match="nope.png: file not found"):
        reference.load_rgb(parse_spec(f"#0={tmp_path / 'nope.png'}"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png"):
        reference.load_rgb(parse_spec(f"#0={bad}"))


def test_mismatch_names_the_reference_for_other_shapes_and_other_pictures():
    frames = moving(2)
    lum = video.frame_luminance(frames[0])
    spec = parse_spec("#0=ref.png")
    assert reference.mismatch(spec, frames[0].astype(np.float32) / 255, lum, 0) is None
    resized = cv2.resize(frames[0], (W * 2, H * 2)).astype(np.float32) / 255  # another size, same shape: fine
    assert reference.mismatch(spec, resized, lum, 0) is None
    square = frames[0][:, :H].astype(np.float32) / 255
    assert "ref.png: reference is 72x72" in reference.mismatch(spec, square, lum, 0)
    other = scene(seed=7)[:, :W].astype(np.float32) / 255
    assert "ref.png: does not look like frame 0" in reference.mismatch(spec, other, lum, 0)


# ------------------------------------------------------------------------------------------------------ the carry
def test_reference_colour_is_carried_forward_along_the_motion():
    frames = moving()
    auto, guided = colorize(frames, None), colorize(frames, guide_for(frames, 0))
    assert ab_error(guided[0], frames[0]) < 2.5  # the reference's own frame takes its colour
    for t in (6, 12, N - 1):
        assert ab_error(guided[t], frames[t]) < 0.4 * ab_error(auto[t], frames[t]), t
    for t in range(N):  # luminance is each frame's own
        assert np.abs(video.frame_luminance(guided[t]) - video.frame_luminance(frames[t])).mean() < 0.01
    keyed = colorize(frames, guide_for(frames, 0), key_every=3)  # --key-every: the same carry
    for t in (7, N - 1):
        assert ab_error(keyed[t], frames[t]) < 0.4 * ab_error(auto[t], frames[t]), t


def test_reference_in_the_middle_spreads_both_ways_and_stops_at_a_cut():
    frames = moving()
    cut = [(f * 0.25 + 90).astype(np.uint8) for f in moving(6, seed=5)]  # another shot, flat and gray-ish
    clip = frames + cut
    ref = N // 2
    auto, guided = colorize(clip, None), colorize(clip, guide_for(clip, ref))
    for t in (0, ref - 6, ref + 6, N - 1):
        assert ab_error(guided[t], clip[t]) < 0.4 * ab_error(auto[t], clip[t]), t
    for t in range(N, N + 6):  # past the cut: the automatic colour
        assert np.abs(guided[t].astype(int) - auto[t]).max() <= 1, t


def test_grade_fit_recovers_a_cast_and_a_gain():
    rng = np.random.default_rng(3)
    model = rng.normal(0, 20, (2, 32, 48)).astype(np.float32)
    lum = rng.random((32, 48)).astype(np.float32)
    truth = np.stack([1.2 * model[0] + 8, 0.8 * model[1] - 0.1 * model[0] + 10 * lum - 4])  # a gain and a cast
    exact = reference.Grade.fit(model, lum, truth, ridge=0.0)
    np.testing.assert_allclose(exact(model, lum), truth, atol=1e-3)
    light = reference.Grade.fit(model, lum, truth)  # the shipped ridge: close
    assert np.abs(light(model, lum) - truth).mean() < 0.2 * np.abs(model - truth).mean()
    assert np.abs(reference.Grade.fit(model, lum, model)(model, lum) - model).max() < 1e-4  # right already: no change


def test_grade_colours_what_the_carry_cannot_reach_and_stops_at_a_cut():
    """The columns a pan reveals after the reference have no carried colour: graded, the model's colour there takes
    the shot's cast the reference shows (the spy model has none); past a cut the automatic colour stays."""
    frames = moving(tint=(1.0, 0.75, 0.45))
    cut = [(f * 0.25 + 90).astype(np.uint8) for f in moving(6, seed=5)]
    clip = frames + cut
    plain, graded = colorize(clip, guide_for(clip, 0)), colorize(clip, guide_for(clip, 0, grade=True))
    auto = colorize(clip, None)
    t = N - 1
    new = slice(0, t * SHIFT - 4)  # columns frame 0 never showed

    def err(out: np.ndarray) -> float:
        return float(np.abs(ab_of(out) - ab_of(clip[t]))[:, 4:-4, new].mean())

    assert err(graded[t]) < 0.7 * err(plain[t])
    assert ab_error(graded[t], clip[t]) <= ab_error(plain[t], clip[t]) + 0.5  # the carried part stays as good
    for u in range(N, N + 6):  # past the cut: the automatic colour
        assert np.abs(graded[u].astype(int) - auto[u]).max() <= 1, u


def test_replayed_carry_equals_an_unbroken_one():
    """A run that starts mid-shot (a resumed segment, a folder rerun) carries the same colour as one from the start."""
    frames = moving()
    smalls = [render_small(video.frame_luminance(f), 64, tones=False) for f in frames]
    zero = np.zeros((2, *smalls[0].shape), np.float32)
    whole, late = guide_for(frames, 8), guide_for(frames, 8)
    full = [whole.apply(t, smalls[t], zero) for t in range(N)]
    for t in (3, 15):
        part = [late.apply(u, smalls[u], zero) for u in range(t, t + 3)]
        for u, p in zip(range(t, t + 3), part):
            np.testing.assert_allclose(p, full[u], atol=1.0)  # backward carry stored as int8: 0.5 ab at most
        late = guide_for(frames, 8)


# -------------------------------------------------------------------------------------------------- through files
@pytest.fixture
def clip(tmp_path) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path / "clip.mp4"
    write_clip(path, moving())
    return path, list(video.decode(path))


def test_video_run_with_a_reference_and_the_span(clip, tmp_path):
    path, frames = clip
    ref = save_png(tmp_path / "ref.png", frames[10])
    auto = video.run(path, tmp_path / "auto.mp4", SpyColorizer(), video.VideoOptions(**FAST))
    opts = video.VideoOptions(**FAST, references=(parse_spec(f"#10={ref}"),))
    res = video.run(path, tmp_path / "ref.mp4", SpyColorizer(), opts)
    assert auto.warnings == res.warnings == [] and res.frames == N
    a, g = list(video.decode(tmp_path / "auto.mp4")), list(video.decode(tmp_path / "ref.mp4"))
    for t in (2, 10, 20):
        assert ab_error(g[t], frames[t]) < 0.5 * ab_error(a[t], frames[t]), t
    # a reference outside --start/--end is ignored with a note; a time picks its frame (0.5 s at 24 fps = frame 12)
    late = video.VideoOptions(**FAST, start=0.5, references=(parse_spec(f"#10={ref}"),), overwrite=True)
    res = video.run(path, tmp_path / "late.mp4", SpyColorizer(), late)
    assert any("#10=" in w and "outside --start/--end; ignored" in w for w in res.warnings)
    timed = video.VideoOptions(**FAST, references=(parse_spec(f"0.5={save_png(tmp_path / 'r12.png', frames[12])}"),))
    res = video.run(path, tmp_path / "timed.mp4", SpyColorizer(), timed)
    assert res.warnings == [] and ab_error(list(video.decode(tmp_path / "timed.mp4"))[12], frames[12]) < 3


def test_mismatched_reference_stops_before_any_work(clip, tmp_path):
    path, frames = clip
    out = tmp_path / "out.mp4"
    for img, why in ((frames[3][:, :H], "reference is 72x72"), (scene(seed=9)[:, :W], "does not look like frame 3")):
        opts = video.VideoOptions(**FAST, references=(parse_spec(f"#3={save_png(tmp_path / 'bad.png', img)}"),))
        spy = SpyColorizer()
        with pytest.raises(video.VideoError, match=f"bad.png: {why}"):
            video.run(path, out, spy, opts)
        assert spy.calls == [] and not out.exists()


def test_segments_carry_the_reference_across_segment_boundaries(clip, tmp_path):
    path, frames = clip
    ref = save_png(tmp_path / "ref.png", frames[0])
    opts = video.VideoOptions(**FAST, segment_seconds=0.25, references=(parse_spec(f"#0={ref}"),))  # 6 frames each
    res = video.run(path, tmp_path / "seg.mp4", SpyColorizer(), opts)
    auto = list(video.decode(video.run(path, tmp_path / "a.mp4", SpyColorizer(), video.VideoOptions(**FAST)).dst))
    g = list(video.decode(res.dst))
    for t in (8, 14, 20):  # frames in later segments
        assert ab_error(g[t], frames[t]) < 0.5 * ab_error(auto[t], frames[t]), t


def test_frame_folder_reference(clip, tmp_path):
    _, frames = clip
    src = tmp_path / "frames"
    src.mkdir()
    for t, f in enumerate(frames[:12]):
        save_png(src / f"frame_{t:04d}.png", f)
    ref = save_png(tmp_path / "colour_0006.png", frames[6])
    with pytest.raises(ValueError, match="no clock"):
        video.check_paths(src, tmp_path / "out", video.VideoOptions(references=(parse_spec(f"0.25={ref}"),)))
    opts = video.VideoOptions(**FAST, references=(parse_spec(f"#6={ref}"), parse_spec(f"#40={ref}")))
    res = video.run(src, tmp_path / "out", SpyColorizer(), opts)
    assert res.frames == 12 and any("#40=" in w and "past the folder's 12 frames" in w for w in res.warnings)
    auto = video.run(src, tmp_path / "auto", SpyColorizer(), video.VideoOptions(**FAST))
    for t in (1, 6, 11):
        name = f"frame_{t:04d}.png"
        g = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / name)), cv2.COLOR_BGR2RGB)
        a = cv2.cvtColor(cv2.imread(str(auto.dst / name)), cv2.COLOR_BGR2RGB)
        assert ab_error(g, frames[t]) < 0.5 * ab_error(a, frames[t]), t


def test_cli_reference_on_a_tiny_clip(clip, tmp_path):
    path, frames = clip
    runner = CliRunner()
    ref = save_png(tmp_path / "ref.png", frames[5])
    out = tmp_path / "out.mp4"
    missing = runner.invoke(app, ["video", str(path), "-o", str(out), "--reference", f"#5={tmp_path / 'gone.png'}"])
    assert missing.exit_code == 2 and "gone.png: file not found" in missing.output and not out.exists()
    bad = runner.invoke(app, ["video", str(path), "-o", str(out), "--reference", "5=", "--render-size", "64"])
    assert bad.exit_code == 2 and "--reference" in bad.output
    ok = runner.invoke(
        app,
        [
            "video",
            str(path),
            "-o",
            str(out),
            "--reference",
            f"#5={ref}",
            "--render-size",
            "64",
            "--quiet",
            "--device",
            "cpu",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert len(list(video.decode(out))) == N


def test_segment_manifest_fingerprints_the_reference_file(clip, tmp_path):
    """The segment manifest records each reference file (size, mtime), so a resume after repainting it starts over."""
    _, frames = clip
    ref = save_png(tmp_path / "ref.png", frames[0])
    opts = video.VideoOptions(**FAST, segment_seconds=0.25, references=(parse_spec(f"#0={ref}"),))
    before = references.fingerprint(opts.references)
    save_png(ref, frames[1][:, ::-1])  # repainted: other bytes
    assert before and references.fingerprint(opts.references) != before
