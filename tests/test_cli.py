"""End-to-end CLI tests on small real images with the shipped default model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from colorize_cli.cli import app
from colorize_cli.imaging import read_image
from colorize_cli.pipeline import srgb_luminance
from tests.conftest import ROOT

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def lum_of(path: Path) -> np.ndarray:
    return srgb_luminance(read_image(path).rgb) * 100


def test_help_and_version_are_instant_and_list_commands():
    out = subprocess.run([sys.executable, "-m", "colorize_cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("dir", "image", "train", "eval", "models"):
        assert cmd in out.stdout
    code = "import colorize_cli.cli, sys; assert 'torch' not in sys.modules, 'torch imported at start-up'"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert run("--version").output.startswith("colorize ")


def test_models_lists_default():
    res = run("models")
    assert res.exit_code == 0
    assert "unet-lab" in res.output


def test_dir_colorizes_keeps_size_luminance_alpha_depth(photo_dir: Path, tmp_path: Path):
    out = tmp_path / "out"
    (photo_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    report = tmp_path / "report.json"
    res = run("dir", photo_dir, "-o", out, "--report", report, "--workers", "1")
    assert res.exit_code == 1, res.output  # one bad file -> exit 1, the rest still done
    assert "broken.jpg" in res.output
    records = {Path(r["input"]).name: r for r in json.loads(report.read_text())}
    assert records["broken.jpg"]["status"] == "failed" and "broken.jpg" in records["broken.jpg"]["error"]
    inputs = sorted(p.name for p in photo_dir.iterdir() if p.name != "broken.jpg")
    assert sorted(p.name for p in out.iterdir()) == inputs
    for name in inputs:
        assert records[name]["status"] == "ok"
        src, dst = read_image(photo_dir / name), read_image(out / name)
        assert dst.rgb.shape == src.rgb.shape
        # the output's luminance is the input's (within JPEG/8-bit rounding and gamut clipping)
        assert np.median(np.abs(lum_of(out / name) - lum_of(photo_dir / name))) < 1.0, name
    assert read_image(out / "deep16.png").bit_depth == 16
    alpha_in, alpha_out = read_image(photo_dir / "alpha.png").alpha, read_image(out / "alpha.png").alpha
    assert alpha_out is not None and np.abs(alpha_out - alpha_in).max() < 1e-6
    assert not list(out.glob(".*.tmp"))


def test_outputs_are_coloured(photo_dir: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert run("dir", photo_dir, "-o", out, "--workers", "0").exit_code == 0
    lab = cv2.cvtColor(cv2.imread(str(out / sorted(os.listdir(out))[0])), cv2.COLOR_BGR2Lab).astype(np.float32)
    assert np.abs(lab[..., 1:] - 128).mean() > 2.0  # not gray


def test_rerun_skips_then_overwrite_redoes(photo_dir: Path, tmp_path: Path):
    out, n = tmp_path / "out", len(os.listdir(photo_dir))
    assert run("dir", photo_dir, "-o", out, "--workers", "0").exit_code == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    res = run("dir", photo_dir, "-o", out, "--workers", "0")
    assert res.exit_code == 0 and f"skipped {n}" in res.output
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    res = run("dir", photo_dir, "-o", out, "--workers", "0", "--overwrite")
    assert res.exit_code == 0 and f"colorized {n}" in res.output


def test_recursive_mirrors_tree_and_ignores_output_inside_input(photo_dir: Path):
    sub = photo_dir / "box 1" / "ünïcode"
    sub.mkdir(parents=True)
    (photo_dir / "sepia.jpg").rename(sub / "-dash name.jpg")
    out = photo_dir / "colour"  # inside the input folder on purpose
    n = sum(p.is_file() for p in photo_dir.rglob("*"))
    assert run("dir", photo_dir, "-o", out, "-r", "--format", "png", "--workers", "0").exit_code == 0
    assert (out / "box 1" / "ünïcode" / "-dash name.png").is_file()
    res = run("dir", photo_dir, "-o", out, "-r", "--format", "png", "--workers", "0")
    assert "colorized 0" in res.output and f"skipped {n}" in res.output  # our outputs are not inputs


def test_format_jpg_and_image_command(photo_dir: Path, tmp_path: Path):
    files = [photo_dir / "colour.png", photo_dir / "alpha.png"]
    # two images with --batch-size 2: the last batch is full, nothing is left pending
    res = run("image", *files, "-o", tmp_path / "o", "--format", "jpg", "--workers", "0", "--batch-size", "2")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["alpha.jpg", "colour.jpg"]


def test_input_files_are_never_modified(photo_dir: Path, tmp_path: Path):
    before = {p.name: p.read_bytes() for p in photo_dir.iterdir()}
    run("dir", photo_dir, "-o", tmp_path / "o", "--workers", "0")
    assert before == {p.name: p.read_bytes() for p in photo_dir.iterdir()}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["dir", "nowhere", "-o", "x"], "input folder not found"),
        (["dir", ".", "--model", "no-such-model"], "unknown model 'no-such-model'; valid models: "),
        (["dir", ".", "-o", "."], "is the input folder"),
        (["dir", ".", "--shard", "3/2"], "--shard"),
        (["dir", ".", "-o", "out", "--precision", "fp8"], "unknown precision 'fp8'; valid: auto, fp32, bf16, fp16"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, needle, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run(*args)
    assert res.exit_code == 2
    assert needle in res.output
    assert "Traceback" not in res.output


def test_unwritable_output_is_one_line(photo_dir: Path, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = run("dir", photo_dir, "-o", blocker / "sub")
    assert res.exit_code == 2 and "cannot create output folder" in res.output


def test_shards_cover_every_file_once(photo_dir: Path, tmp_path: Path):
    outs = []
    for k in (1, 2, 3):
        out = tmp_path / f"s{k}"
        assert run("dir", photo_dir, "-o", out, "--shard", f"{k}/3", "--workers", "0").exit_code == 0
        outs += sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert sorted(outs) == sorted(p.name for p in photo_dir.iterdir())


def test_keep_tones_shows_the_network_a_faded_print_as_it_is(tmp_path: Path):
    """By default a faded print's tonal range is stretched for the network, so --keep-tones changes the colours of
    a faded photo; the output's lightness is the input's either way."""
    src = ROOT / "examples" / "originals" / "1880Paris.jpg"
    gray = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)[:192, :256].astype(np.float32)
    faded = tmp_path / "faded.png"
    cv2.imwrite(str(faded), np.round(60 + gray * 0.55).astype(np.uint8))  # blacks lifted, whites dulled
    outs = {}
    for flag in ([], ["--keep-tones"]):
        out = tmp_path / ("kept" if flag else "stretched")
        res = run("image", faded, "-o", out, "--workers", "0", *flag)
        assert res.exit_code == 0, res.output
        outs[bool(flag)] = read_image(out / "faded.png").rgb
        assert np.abs(lum_of(out / "faded.png") - lum_of(faded)).mean() < 1.0
    assert np.abs(outs[True] - outs[False]).mean() > 0.002  # measured 0.008 at writing


def test_threads_option_is_on_every_photo_and_film_command_and_refuses_negatives(tmp_path: Path):
    for cmd in ("dir", "image", "video", "eval"):
        res = run(cmd, "--help")
        assert res.exit_code == 0 and "--threads" in res.output, cmd
    res = run("dir", tmp_path, "--threads", "-1")
    assert res.exit_code == 2 and "--threads" in res.output
