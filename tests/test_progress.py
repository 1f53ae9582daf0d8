"""The one progress reporter of dir, video and train (colorize_cli/progress.py), off a terminal: plain lines when due
and at the end, nothing but errors when quiet, every due line and message into --log."""

from __future__ import annotations

from pathlib import Path

from colorize_cli import runlog
from colorize_cli.progress import FRAMES, IMAGES, Meter, Reporter, Tick, line


def test_lines_name_units_rate_and_eta():
    assert line(Tick(3, 10, 2.5, 2.8), IMAGES) == "3/10 images, 2.50 img/s, ETA 3 s"
    assert line(Tick(7, None, 25.0, None), FRAMES) == "7 frames, 25.00 frames/s"


def test_meter_counts_after_the_reused_and_reports_each_tick():
    seen: list[Tick] = []
    meter = Meter(10, reused=4, report=seen.append)
    ticks = [meter.add() for _ in range(6)]
    assert seen == ticks and [t.done for t in ticks] == [5, 6, 7, 8, 9, 10]
    assert all(t.total == 10 and t.rate > 0 for t in ticks) and ticks[-1].eta_s == 0.0


def test_off_a_terminal_a_line_only_when_due_and_at_the_end(capsys):
    rep = Reporter("colorize", 5, every_s=3600)
    for done in range(1, 6):
        rep.count(Tick(done, 5, 1.0, 5.0 - done), IMAGES)
    rep.close()
    assert capsys.readouterr().err.splitlines() == ["5/5 images, 1.00 img/s, ETA 0 s"]
    rep = Reporter("train", 3, every_s=0.0)  # every update due
    for step in range(1, 4):
        rep.update(step, f"step {step}/3", "bar only")
    assert capsys.readouterr().err.splitlines() == ["step 1/3", "step 2/3", "step 3/3"]


def test_quiet_prints_only_messages_and_the_log_gets_everything(tmp_path: Path, capsys):
    log = tmp_path / "run.log"
    runlog.open_log(log)
    try:
        with Reporter("colorize", quiet=True, every_s=3600) as rep:
            report = rep.counting(FRAMES)
            report(Tick(1, 2, 4.0, 0.25))  # not due: neither printed nor logged
            rep.echo("error: a.png: truncated")
            report(Tick(2, 2, 4.0, 0.0))
    finally:
        runlog.close_log()
    assert capsys.readouterr().err.splitlines() == ["error: a.png: truncated"]
    logged = [ln.split("] ", 1)[1] for ln in log.read_text().splitlines()]
    assert logged == ["error: a.png: truncated", "2/2 frames, 4.00 frames/s, ETA 0 s"]
