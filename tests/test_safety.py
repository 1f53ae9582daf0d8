"""Users' data: no path of this tool (output, temporary, lock, segment, journal, run folder) may ever destroy an input.

Each test reproduces a way an input was lost or a run misreported before (issue 19), on files made here, so none
needs ../shared.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from typer.testing import CliRunner

from colorize_cli import claims, pipeline
from colorize_cli.batch import JOURNAL_NAME
from colorize_cli.cli import app

runner = CliRunner()
FF = imageio_ffmpeg.get_ffmpeg_exe()
FAST = ["--render-size", "32", "--workers", "0"]


def photo(path: Path, seed: int, size: tuple[int, int] = (40, 56)) -> Path:
    """A small gray photo with structure (so two of them differ), written by OpenCV."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 255, size, dtype=np.uint8), (7, 7), 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def clip(path: Path, audio: bool = False) -> Path:
    """A 2-second 160x120 test film made by ffmpeg itself (with a sine sound track if asked)."""
    args = [
        FF,
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-t",
        "2",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", "-shortest"]
    subprocess.run([*args, "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


# ------------------------------------------------------------------------------------------------------- video
@pytest.mark.parametrize("audio", [False, True])
def test_video_never_deletes_a_source_named_like_a_temporary(tmp_path: Path, monkeypatch, audio: bool):
    monkeypatch.chdir(tmp_path)
    src = clip(tmp_path / "reel.partial.mp4", audio)
    before = src.read_bytes()
    res = runner.invoke(app, ["video", "reel.partial.mp4", "-o", "reel.mp4", "--render-size", "32", "-q"])
    assert res.exit_code == 0, res.output
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reel.mp4", "reel.partial.mp4"]  # no temporaries left
    assert (tmp_path / "reel.mp4").stat().st_mode & 0o777 == claims.FILE_MODE  # a new file's mode, not mkstemp's


def test_video_temporaries_are_unique_hidden_and_never_an_input(tmp_path: Path):
    src = clip(tmp_path / "film.mp4")
    names = {claims.temp_file(tmp_path / "film.mp4", keep_suffix=True).name for _ in range(20)}
    assert len(names) == 20
    for name in names:
        assert name.startswith(".") and name.endswith(".colorize-tmp.mp4") and claims.is_temp_name(name)
        assert str(os.getpid()) in name and name != src.name


def test_overlapping_video_runs_on_one_film_are_refused_as_claimed(tmp_path: Path):
    src = clip(tmp_path / "film.mp4")
    dst = tmp_path / "film_colour.mp4"
    held = claims.claim(dst)  # this live process is "the other run"
    work = tmp_path / f".{dst.name}.segments"
    work.mkdir()
    (work / "seg_00000.mp4").write_bytes(b"another run's segment")
    try:
        res = runner.invoke(app, ["video", str(src), "-o", str(dst), "--segment-seconds", "0.5", "-q", *FAST[:2]])
    finally:
        claims.release(held)
    assert res.exit_code == 3, res.output
    assert "claimed by another run" in res.output
    assert (work / "seg_00000.mp4").read_bytes() == b"another run's segment" and not dst.exists()


def test_video_refuses_a_source_inside_a_segment_folder(tmp_path: Path):
    work = tmp_path / ".out.mp4.segments"
    work.mkdir()
    src = clip(work / "seg_00000.mp4")
    res = runner.invoke(app, ["video", str(src), "-o", str(tmp_path / "out.mp4"), "--segment-seconds", "1", "-q"])
    assert res.exit_code == 2 and "working file" in res.output and src.exists()


def test_clearing_a_segment_folder_removes_only_its_own_files(tmp_path: Path):
    from colorize_cli.video.segments import clear_segments

    work = tmp_path / ".out.mp4.segments"
    work.mkdir()
    for name in ("seg_00000.mp4", "seg_00001.mp4", "manifest.json", "concat.txt"):
        (work / name).write_text("ours")
    claims.temp_file(work / "seg_00002.mp4", keep_suffix=True)
    (work / "my notes.txt").write_text("a user's")
    clear_segments(work)
    assert [p.name for p in work.iterdir()] == ["my notes.txt"]
    (work / "my notes.txt").unlink()
    clear_segments(work)
    assert not work.exists()


# ------------------------------------------------------------------------------------------------------ in place
def test_in_place_never_writes_over_another_input(tmp_path: Path):
    d = tmp_path / "f"
    photo(d / "a.jpg", 1)
    photo(d / "a.png", 2)
    before = snapshot(d)
    res = runner.invoke(app, ["dir", str(d), "--in-place", "--format", "png", *FAST])
    assert res.exit_code == 1, res.output
    line = next(ln for ln in res.output.splitlines() if "refused" in ln)
    assert "a.jpg" in line and "a.png" in line
    after = snapshot(d)
    assert after["a.jpg"] == before["a.jpg"]  # never deleted or touched
    assert after["a.png"] != before["a.png"]  # replaced by its own result, not by a.jpg's
    own = cv2.imread(str(d / "a.png"), cv2.IMREAD_COLOR)
    gray_a_png = cv2.imdecode(np.frombuffer(before["a.png"], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.abs(cv2.cvtColor(own, cv2.COLOR_BGR2GRAY).astype(int) - gray_a_png).mean() < 3


def test_in_place_rerun_does_not_colorize_its_own_outputs_again(tmp_path: Path):
    d = tmp_path / "f"
    for i in range(3):
        photo(d / f"p{i}.png", i)
    assert runner.invoke(app, ["dir", str(d), "--in-place", *FAST]).exit_code == 0
    done = snapshot(d)
    photo(d / "p3.png", 3)  # the interrupted run never reached this one
    res = runner.invoke(app, ["dir", str(d), "--in-place", *FAST])
    assert res.exit_code == 0, res.output
    assert "colorized 1, skipped 3" in res.output
    after = snapshot(d)
    assert all(after[k] == v for k, v in done.items() if k != JOURNAL_NAME)
    assert sorted(after) == sorted([JOURNAL_NAME, "p0.png", "p1.png", "p2.png", "p3.png"])


def test_in_place_format_change_rerun_takes_no_result_for_an_original(tmp_path: Path):
    d = tmp_path / "f"
    photo(d / "a.jpg", 1)
    assert runner.invoke(app, ["dir", str(d), "--in-place", "--format", "png", *FAST]).exit_code == 0
    made = (d / "a.png").read_bytes()
    res = runner.invoke(app, ["dir", str(d), "--in-place", "--format", "png", *FAST])
    assert res.exit_code == 0, res.output
    assert "colorized 0, skipped 1" in res.output and (d / "a.png").read_bytes() == made


def test_an_edited_in_place_result_is_done_again(tmp_path: Path):
    d = tmp_path / "f"
    photo(d / "a.png", 1)
    assert runner.invoke(app, ["dir", str(d), "--in-place", *FAST]).exit_code == 0
    photo(d / "a.png", 7, (44, 60))  # the user put a new scan under that name
    res = runner.invoke(app, ["dir", str(d), "--in-place", *FAST])
    assert res.exit_code == 0 and "colorized 1" in res.output


# ------------------------------------------------------------------------------------------------ failing writers
def test_a_memory_error_while_writing_fails_that_file_and_the_run_goes_on(tmp_path: Path, monkeypatch):
    for i in range(4):
        photo(tmp_path / "in" / f"p{i}.png", i)
    real = pipeline.encode_image

    def encode(rgb, alpha, ext, depth, quality):
        if rgb.shape[1] == 56 and encode.calls == 1:
            encode.calls += 1
            raise MemoryError
        encode.calls += 1
        return real(rgb, alpha, ext, depth, quality)

    encode.calls = 0
    monkeypatch.setattr(pipeline, "encode_image", encode)
    res = runner.invoke(app, ["dir", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 1
    err = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "p1.png" in err[0] and "out of memory" in err[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p2.png", "p3.png"]


def test_a_memory_error_in_the_merge_fails_that_file_only(tmp_path: Path, monkeypatch):
    photo(tmp_path / "in" / "big.png", 1, (80, 90))
    photo(tmp_path / "in" / "small.png", 2)
    real = pipeline.Engine.merge

    def merge(self, lum, ab, dtype=np.float32):
        if lum.shape[0] == 80:
            raise MemoryError
        return real(self, lum, ab, dtype)

    monkeypatch.setattr(pipeline.Engine, "merge", merge)
    res = runner.invoke(app, ["dir", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 1 and "big.png: cannot colorize: out of memory" in res.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["small.png"]


def test_a_writer_whose_thread_dies_stops_the_run_instead_of_hanging():
    def on_done(res):
        raise RuntimeError("report sink broke")

    writer = pipeline.Writer(95, on_done, write=lambda path, data: None)
    item = pipeline.StreamItem(0, time.perf_counter(), rgb_out=np.zeros((4, 4, 3), np.uint8))
    t0 = time.perf_counter()
    with pytest.raises(pipeline.WriterDied, match="report sink broke"):
        for _ in range(100):  # far more than the queue holds
            writer.put(pipeline.Result(Path("a.png"), Path("o.png"), pipeline.Status.OK), dataclasses.replace(item))
        writer.close()
    assert time.perf_counter() - t0 < 10


# ------------------------------------------------------------------------------------------------------- claims
def test_claim_errors_are_per_file_errors(tmp_path: Path, monkeypatch):
    for i in range(3):
        photo(tmp_path / "in" / f"p{i}.png", i)
    real_open, real_link = os.open, os.link

    def refused(path) -> bool:
        return str(path).endswith(".p1.png" + claims.LOCK_SUFFIX)

    def deny(path, flags, *a, **k):
        if refused(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *a, **k)

    def deny_link(src, dst, *a, **k):  # the lock is made by linking its written temporary under the lock's name
        if refused(dst):
            raise OSError(errno.EROFS, "Read-only file system", str(dst))
        return real_link(src, dst, *a, **k)

    monkeypatch.setattr(claims.os, "open", deny)
    monkeypatch.setattr(claims.os, "link", deny_link)
    res = runner.invoke(app, ["dir", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 1, res.output
    assert "p1.png: cannot claim the output" in res.output and "Read-only file system" in res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p2.png"]


def test_a_name_too_long_for_a_plain_lock_name_still_works(tmp_path: Path):
    name = "x" * 240 + ".png"  # the file fits (244 bytes); ".NAME.colorize-lock" would not
    photo(tmp_path / "in" / name, 1)
    res = runner.invoke(app, ["dir", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name]


def _lock_text(pid: int, started: str, boot: str | None = None, token: str = "t0k3n") -> str:
    return claims.Owner(claims._HOST, claims._BOOT if boot is None else boot, pid, started, token).text()


def test_locks_tell_a_reused_pid_and_a_reboot_from_a_live_owner(tmp_path: Path):
    dst = tmp_path / "x.png"
    lock = claims.lock_path(dst)
    parent = os.getppid()
    lock.write_text(_lock_text(parent, claims.start_time(parent)))  # live owner
    assert claims.claim(dst) is None
    lock.write_text(_lock_text(parent, "1"))  # that pid, but another process now
    held = claims.claim(dst)
    assert held is not None and claims.Owner.parse(lock.read_text()).pid == os.getpid()
    claims.release(held)
    assert not lock.exists()
    lock.write_text(_lock_text(parent, claims.start_time(parent), boot="an-earlier-boot"))
    assert claims.claim(dst) is not None  # before a reboot: dead


def test_a_forked_child_claims_with_its_own_start_time_not_its_parents(tmp_path: Path):
    """The start time is read once per process (claims.own_start_time): a child forked after the parent read it must
    not write the parent's into its locks, or a later run would take the child's pid for one reused."""
    held = claims.claim(tmp_path / "parent.png")  # the parent's start time is now cached
    assert held is not None
    assert claims.Owner.parse(claims.lock_path(tmp_path / "parent.png").read_text()).started == claims.start_time(
        os.getpid()
    )
    pid = os.fork()
    if pid == 0:  # the child: claim, then exit without running pytest's teardown
        child = claims.claim(tmp_path / "child.png")
        os._exit(0 if child is not None else 1)
    assert os.waitpid(pid, 0)[1] == 0
    owner = claims.Owner.parse(claims.lock_path(tmp_path / "child.png").read_text())
    assert owner is not None and owner.pid == pid
    assert owner.started != claims.start_time(os.getpid())  # the child started after its parent, at another tick
    claims.release(held)


def test_a_run_killed_while_claiming_leaves_no_lock_that_blocks_a_rerun(tmp_path: Path, monkeypatch):
    """SIGKILL between making a lock and writing its owner used to leave an empty lock, which reads as a live run's
    for a minute: the rerun CI made after a kill reported "claimed by another run". A lock now appears whole."""
    dst = tmp_path / "o.png"
    pid = os.fork()
    if pid == 0:  # the child dies mid-claim, at the moment its owner's text is asked for
        monkeypatch.setattr(claims.Owner, "text", lambda self: os.kill(os.getpid(), signal.SIGKILL))
        claims.claim(dst)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] & 0x7F == signal.SIGKILL
    held = claims.claim(dst)
    assert held is not None, "the killed run's claim still blocks the output"
    claims.release(held)
    assert claims.sweep(tmp_path) == 1  # what the killed run left: its temporary, recognised as dead
    assert list(tmp_path.iterdir()) == []


def test_a_file_system_without_hard_links_still_gets_whole_claims(tmp_path: Path, monkeypatch):
    def no_links(src, dst, *a, **k):
        raise OSError(errno.EPERM, "Operation not permitted", str(dst))

    monkeypatch.setattr(claims.os, "link", no_links)
    held = claims.claim(tmp_path / "o.png")
    assert held is not None and claims.Owner.parse(claims.lock_path(tmp_path / "o.png").read_text()) is not None
    assert claims.claim(tmp_path / "o.png") is None  # held by this live process
    claims.release(held)
    assert list(tmp_path.iterdir()) == []


def test_release_leaves_a_lock_it_no_longer_owns(tmp_path: Path):
    dst = tmp_path / "x.png"
    held = claims.claim(dst)
    parent = os.getppid()
    claims.lock_path(dst).write_text(_lock_text(parent, claims.start_time(parent), token="someone-else"))
    claims.release(held)
    assert claims.lock_path(dst).exists()


def test_takeover_never_removes_a_fresh_lock(tmp_path: Path, monkeypatch):
    """Two runs find one dead lock; the second renames aside the first one's fresh lock and must put it back."""
    dst = tmp_path / "x.png"
    lock = claims.lock_path(dst)
    dead = _lock_text(4_000_000, "1")
    fresh = _lock_text(os.getppid(), claims.start_time(os.getppid()), token="fresh")
    lock.write_text(fresh)  # between our look and our rename, another run took it over
    claims._take_over(lock, dead)
    assert lock.read_text() == fresh and [p.name for p in tmp_path.iterdir()] == [lock.name]


def test_claimed_by_another_run_is_its_own_status_and_exit_code(tmp_path: Path):
    photo(tmp_path / "in" / "a.png", 1)
    photo(tmp_path / "in" / "b.png", 2)
    held = claims.claim(tmp_path / "out" / "b.png")
    try:
        res = runner.invoke(
            app, ["dir", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *FAST, "--report", str(tmp_path / "r.json")]
        )
    finally:
        claims.release(held)
    assert res.exit_code == 3, res.output
    assert "claimed by another run 1" in res.output
    rows = {Path(r["input"]).name: r["status"] for r in json.loads((tmp_path / "r.json").read_text())}
    assert rows == {"a.png": "ok", "b.png": "claimed"}


def test_sweep_removes_only_this_tools_leftovers(tmp_path: Path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    user = ["notes.lock", ".notes.lock", ".x.png.lock", ".a.png.~1@h~x.tmp", ".backup.colorize-tmp", "x.png"]
    for name in user:
        (tmp_path / name).write_text("mine")
    ours_dead = tmp_path / f".x.png.{dead.pid}-0-{claims._HOST_ID}.abcd1234{claims.TEMP_SUFFIX}"
    ours_dead.write_text("")
    ours_live = claims.temp_file(tmp_path / "y.png")
    stale_lock = claims.lock_path(tmp_path / "z.png")
    stale_lock.write_text(_lock_text(dead.pid, ""))
    assert claims.sweep(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*user, ours_live.name])


def test_claims_never_block_each_other_across_threads(tmp_path: Path):
    """Many threads race for one output: exactly one wins."""
    dst = tmp_path / "x.png"
    wins: list[object] = []
    threads = [threading.Thread(target=lambda: wins.append(claims.claim(dst))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(w is not None for w in wins) == 1


# ----------------------------------------------------------------------------------------------- eval, train, device
def test_eval_on_an_unreadable_image_exits_1_and_measures_the_rest(tmp_path: Path):
    for i in range(2):
        rgb = np.dstack([cv2.imread(str(photo(tmp_path / "t" / f"g{i}.png", i)), cv2.IMREAD_GRAYSCALE)] * 3)
        rgb[..., 0] = 255 - rgb[..., 0]
        cv2.imwrite(str(tmp_path / "t" / f"c{i}.png"), rgb)
        (tmp_path / "t" / f"g{i}.png").unlink()
    (tmp_path / "t" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    res = runner.invoke(app, ["eval", str(tmp_path / "t"), *FAST, "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 1, res.output
    assert "broken.png" in res.output and json.loads((tmp_path / "r.json").read_text())["images"] == 2


def test_eval_never_writes_a_report_over_an_input(tmp_path: Path):
    truth = photo(tmp_path / "t" / "a.png", 1)
    before = truth.read_bytes()
    res = runner.invoke(app, ["eval", str(tmp_path / "t"), *FAST, "--grid", str(truth)])
    assert res.exit_code == 2 and "is an input" in res.output and truth.read_bytes() == before


def test_train_never_writes_into_its_data(tmp_path: Path):
    photo(tmp_path / "data" / "a.png", 1)
    for extra in (
        ["--out", str(tmp_path / "data" / "runs")],
        ["--out", str(tmp_path / "run"), "--export", str(tmp_path / "data" / "m.safetensors")],
    ):
        res = runner.invoke(app, ["train", str(tmp_path / "data"), "--steps", "1", *extra])
        assert res.exit_code == 2 and "inside the data folder" in res.output
    assert snapshot(tmp_path / "data").keys() == {"a.png"}


@pytest.mark.parametrize("device", ["gpu", "cuda:7", "cpu:1", "tpu"])
@pytest.mark.parametrize("command", ["dir", "eval", "video"])
def test_a_device_this_machine_lacks_is_a_usage_error(tmp_path: Path, monkeypatch, device: str, command: str):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # one GPU, so cuda:7 is out of range
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    photo(tmp_path / "in" / "a.png", 1)
    target = str(tmp_path / "in" / "a.png") if command == "video" else str(tmp_path / "in")
    res = runner.invoke(app, [command, target, "--device", device])
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1 and device in res.output
