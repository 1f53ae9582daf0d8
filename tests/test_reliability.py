"""Hostile input, crashes, full disks and overlapping cron jobs: nothing lost, nothing half-written, nothing hangs."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from colorize_cli import claims
from colorize_cli.cli import app
from colorize_cli.imaging import ImageError, read_image
from tests.conftest import HISTORICAL, pick

runner = CliRunner()


def colorize(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "colorize_cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children(pid: int) -> list[int]:
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and (_stat(int(p.name)) or ["", ""])[1] == str(pid)
    ]


def alive(pid: int) -> bool:
    """Running or asleep; a zombie waiting for init to reap it counts as gone."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def png_bomb(path: Path, w: int = 100_000, h: int = 100_000) -> None:
    """A valid PNG header claiming w x h pixels followed by a tiny, truncated data stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)))


def small_grays(folder: Path, n: int, size: int = 48) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    src = cv2.imread(str(pick(HISTORICAL, 1, "*.jpg")[0]), cv2.IMREAD_GRAYSCALE)
    paths = []
    for i in range(n):
        y, x = (i * 7) % (src.shape[0] - size), (i * 13) % (src.shape[1] - size)
        paths.append(folder / f"img{i:03d}.png")
        cv2.imwrite(str(paths[-1]), src[y : y + size, x : x + size])
    return paths


def assert_clean(out: Path, expected: int) -> None:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert not [p for p in files if p.name.startswith(".")], "temp or lock files left behind"
    assert len(files) == expected
    for p in files:
        assert cv2.imread(str(p)) is not None, f"{p} does not decode"


def test_hostile_files_are_reported_by_name_and_the_run_goes_on(tmp_path: Path):
    d = tmp_path / "in"
    d.mkdir()
    good = pick(HISTORICAL, 1, "*.jpg")[0]
    (d / "good.jpg").write_bytes(good.read_bytes())
    (d / "zero.jpg").write_bytes(b"")
    (d / "truncated.jpg").write_bytes(good.read_bytes()[:300])
    (d / "text.png").write_text("hello, I am not a picture\n")
    (d / "elf.tif").write_bytes(b"\x7fELF" + os.urandom(200))
    png_bomb(d / "bomb.png")
    cv2.imwrite(str(d / "one.png"), np.array([[128]], np.uint8))  # 1x1 is a valid image
    cv2.imwrite(str(d / "float.tif"), np.random.default_rng(0).random((20, 30, 3), dtype=np.float32))
    cv2.imwrite(str(d / "deep.tif"), (np.random.default_rng(1).random((20, 30)) * 65535).astype(np.uint16))
    from PIL import Image

    rgb = Image.open(good).convert("RGB").resize((64, 48))
    rgb.convert("CMYK").save(d / "cmyk.jpg")
    frames = [rgb, rgb.transpose(Image.FLIP_LEFT_RIGHT)]
    frames[0].save(d / "anim.webp", save_all=True, append_images=frames[1:], duration=100)  # first frame is used
    res = runner.invoke(
        app, ["dir", str(d), "-o", str(tmp_path / "out"), "--workers", "0", "--report", str(tmp_path / "r.json")]
    )
    assert res.exit_code == 1
    status = {Path(r["input"]).name: r for r in json.loads((tmp_path / "r.json").read_text())}
    for bad in ("zero.jpg", "truncated.jpg", "text.png", "elf.tif", "bomb.png"):
        assert status[bad]["status"] == "failed" and bad in status[bad]["error"], bad
        assert bad in res.output
    assert "--max-pixels" in status["bomb.png"]["error"]
    for ok in ("good.jpg", "one.png", "float.tif", "deep.tif", "cmyk.jpg", "anim.webp"):
        assert status[ok]["status"] == "ok", status[ok]
    assert_clean(tmp_path / "out", 6)
    anim = read_image(tmp_path / "out" / "anim.webp").rgb
    assert anim.shape == (48, 64, 3)


def test_decompression_bomb_refused_fast_and_small():
    import resource
    import tempfile

    with tempfile.TemporaryDirectory() as t:
        png_bomb(Path(t) / "b.png")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        with pytest.raises(ImageError, match="exceeds the limit"):
            read_image(Path(t) / "b.png")
        assert time.perf_counter() - t0 < 2.0
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: no 10-gigapixel buffer


def test_sigkill_mid_run_then_rerun_completes_cleanly(tmp_path: Path):
    small_grays(tmp_path / "in", 200)
    out = tmp_path / "out"
    args = ["dir", tmp_path / "in", "-o", out, "--render-size", "48", "--workers", "1", "--batch-size", "4", "-q"]
    proc = colorize(*args)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.png"))) < 20:
        time.sleep(0.05)
    workers = children(proc.pid)
    assert workers, "the run's decode worker should be up"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(alive(w) for w in workers), "a decode worker outlived the killed run"
    done_before = len(list(out.glob("*.png")))
    assert 0 < done_before < 200, "the kill should land mid-run"
    for p in out.glob("*.png"):
        assert cv2.imread(str(p)) is not None  # everything under a final name is whole
    rerun = colorize(*args)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"skipped {done_before}" in err  # resumed: the finished files were not redone
    assert_clean(out, 200)  # the killed run's temp and lock files were swept


_ORPHAN = """
import os, time
from colorize_cli.stream import die_with_parent
parent = os.getpid()  # before the fork, as DataLoader's partial has it: the parent may die before the child looks
child = os.fork()
if child == 0:
    die_with_parent(parent, 0)
    time.sleep(120)
    os._exit(0)
print(child, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_worker_dies_with_the_process_that_forked_it():
    """die_with_parent, the decode and training workers' init: SIGKILL the parent and its forked child goes too
    (without it the child sleeps on, reparented, for two minutes)."""
    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and alive(child):
        time.sleep(0.05)
    assert not alive(child)


def test_overlapping_runs_share_the_work(tmp_path: Path):
    small_grays(tmp_path / "in", 60)
    out = tmp_path / "out"
    args = ["dir", tmp_path / "in", "-o", out, "--render-size", "48", "--workers", "0", "--batch-size", "1", "--report"]
    a, b = colorize(*args, tmp_path / "a.json"), colorize(*args, tmp_path / "b.json")
    for p in (a, b):
        _, err = p.communicate(timeout=300)
        assert p.returncode in (0, 3), err  # 3: some of its files were the other run's, in progress then
    rows = {f: json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json")}
    made = [r for f in rows for r in rows[f] if r["status"] == "ok"]
    assert len({r["output"] for r in made}) == 60
    for f, other in (("a.json", "b.json"), ("b.json", "a.json")):  # "claimed" means the other run made it
        theirs = {r["output"] for r in rows[other] if r["status"] == "ok"}
        assert {r["output"] for r in rows[f] if r["status"] == "claimed"} <= theirs
    assert len(made) <= 60 + 4, "more than a few files were done twice"
    assert_clean(out, 60)


def test_claims_respect_live_runs_and_take_over_dead_ones(tmp_path: Path):
    dst = tmp_path / "x.png"
    lock = claims.lock_path(dst)
    parent = os.getppid()
    live = claims.Owner(claims._HOST, claims._BOOT, parent, claims.start_time(parent), "tok")
    lock.write_text(live.text())  # a live process holds it
    assert claims.claim(dst) is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(claims.Owner(claims._HOST, claims._BOOT, dead.pid, "", "tok").text())  # its owner is gone
    held = claims.claim(dst)
    assert held is not None
    claims.release(held)
    assert not lock.exists()


def test_nan_from_a_model_never_reaches_an_output(tmp_path: Path):
    from safetensors.torch import load_file

    from colorize_cli.weights import WEIGHTS_DIR, read_metadata, save_weights

    src = WEIGHTS_DIR / "unet-lab.safetensors"
    tensors, meta = load_file(str(src)), read_metadata(src)
    tensors["head.bias"] = tensors["head.bias"] * float("nan")
    meta.pop("payload_sha256")
    bad = tmp_path / "nan.safetensors"
    save_weights(bad, tensors, meta)
    small_grays(tmp_path / "in", 2)
    res = runner.invoke(
        app, ["dir", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(bad), "--workers", "0"]
    )
    assert res.exit_code == 0 and "NaN" in res.output
    out = cv2.imread(str(tmp_path / "out" / "img000.png"))
    assert out is not None and np.abs(out.astype(int) - out[..., :1]).max() <= 1  # the gray input, not garbage


def test_disk_full_is_a_clear_error_and_no_partial_file(tmp_path: Path, monkeypatch):
    small_grays(tmp_path / "in", 3)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    res = runner.invoke(app, ["dir", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--workers", "0"])
    assert res.exit_code == 1
    assert "No space left on device" in res.output and "img000.png" in res.output
    assert not list((tmp_path / "out").iterdir())  # no partial file, no temp, no lock


def test_in_place_only_when_asked(tmp_path: Path):
    paths = small_grays(tmp_path / "in", 2)
    before = paths[0].read_bytes()
    res = runner.invoke(app, ["dir", str(tmp_path / "in"), "-o", str(tmp_path / "in"), "--workers", "0"])
    assert res.exit_code == 2 and paths[0].read_bytes() == before
    res = runner.invoke(app, ["dir", str(tmp_path / "in"), "--in-place", "--workers", "0"])
    assert res.exit_code == 0 and paths[0].read_bytes() != before
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [
        ".colorize-in-place.jsonl",
        "img000.png",
        "img001.png",
    ]


def test_odd_file_names(tmp_path: Path):
    d = tmp_path / "in"
    names = ["-leading dash.png", "new\nline.png", "ünï cödé.png"]
    for name, src in zip(names, small_grays(tmp_path / "src", 3)):
        d.mkdir(exist_ok=True)
        src.rename(d / name)
    res = runner.invoke(app, ["dir", str(d), "-o", str(tmp_path / "out"), "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    res = runner.invoke(app, ["image", "-o", str(tmp_path / "o2"), "--workers", "0", "--", str(d / names[0])])
    assert res.exit_code == 0 and (tmp_path / "o2" / names[0]).is_file()


MAGIC = [
    b"",
    b"\xff\xd8\xff\xe0",
    b"\x89PNG\r\n\x1a\n",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"GIF89a",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=400))
def test_fuzz_reader_only_raises_its_own_error(tmp_path: Path, magic: bytes, body: bytes):
    p = tmp_path / "fuzz.img.png"
    p.write_bytes(magic + body)
    try:
        img = read_image(p, max_pixels=10_000_000)
    except ImageError as e:
        assert "fuzz.img.png" in str(e) and "\n" not in str(e)
    else:
        assert img.rgb.ndim == 3 and np.isfinite(img.rgb).all()


def test_sigkill_during_training_resumes_from_last_checkpoint(tmp_path: Path):
    from tests.conftest import TRAIN

    data = tmp_path / "data"
    data.mkdir()
    for p in pick(TRAIN, 24, "*.jpg"):
        (data / p.name).write_bytes(p.read_bytes())
    run = tmp_path / "run"
    args = [
        "train",
        data,
        "--steps",
        "40",
        "--crop",
        "32",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--ckpt-every",
        "2",
        "--val-every",
        "1000",
        "--out",
        run,
        "-q",
    ]
    proc = colorize(*args)
    deadline = time.time() + 200
    while time.time() < deadline and not (run / "last.ckpt").exists():
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from colorize_cli.weights import load_checkpoint

    step = load_checkpoint(run / "last.ckpt")["step"]  # the checkpoint on disk is whole
    assert 2 <= step < 40
    res = subprocess.run(
        [sys.executable, "-m", "colorize_cli", "train", "--resume", str(run / "last.ckpt"), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert load_checkpoint(run / "last.ckpt")["step"] == 40
    assert not list(run.glob(".*.tmp"))


def test_sigterm_to_the_process_group_saves_a_checkpoint(tmp_path: Path):
    """Slurm's scancel and `kill -- -PGID` send SIGTERM to the trainer and its DataLoader workers at once: the run
    still saves a whole checkpoint and exits cleanly, instead of crashing on a dead worker."""
    from tests.conftest import TRAIN

    data = tmp_path / "data"
    data.mkdir()
    for p in pick(TRAIN, 24, "*.jpg"):
        (data / p.name).write_bytes(p.read_bytes())
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "colorize_cli",
            "train",
            str(data),
            "--steps",
            "100000",
            "--crop",
            "32",
            "--batch-size",
            "2",
            "--workers",
            "2",
            "--ckpt-every",
            "5",
            "--val-every",
            "100000",
            "--out",
            str(run),
            "-q",
        ],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 200
    while time.time() < deadline and not (run / "last.ckpt").exists():
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 0, err[-2000:]
    from colorize_cli.weights import load_checkpoint

    assert load_checkpoint(run / "last.ckpt")["step"] >= 5


def test_sigkill_during_video_then_rerun_resumes_and_completes(tmp_path: Path):
    import imageio_ffmpeg

    from tests.conftest import DATA

    film = DATA / "video" / "bw-film-1950s.mp4"
    if not film.is_file():
        pytest.skip("video data not available")
    src, dst = tmp_path / "reel.mp4", tmp_path / "out" / "reel_colour.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-i",
            str(film),
            "-t",
            "4",
            "-vf",
            "scale=160:120",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(src),
        ],
        check=True,
    )
    args = ["video", src, "-o", dst, "--segment-seconds", "0.5", "--render-size", "96", "-q"]
    proc = colorize(*args)
    segments = dst.parent / f".{dst.name}.segments"
    deadline = time.time() + 200
    while time.time() < deadline and len(list(segments.glob("seg_*"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not dst.exists(), "nothing under the final name before the run finished"
    rerun = colorize(*args)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    want, _ = imageio_ffmpeg.count_frames_and_secs(str(src))
    got, _ = imageio_ffmpeg.count_frames_and_secs(str(dst))
    assert got == want
    assert sorted(p.name for p in dst.parent.iterdir()) == [dst.name]  # no partial files, segments cleaned up
