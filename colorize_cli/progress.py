"""One progress reporter for dir, video and train: a rich bar on a terminal, a plain line every `every_s` seconds (and
at the end) otherwise, nothing but errors when quiet. The plain lines also go to --log (runlog), bar or not, quiet or
not, so a cluster log reads the same whether the run had a terminal.

    Meter (counts units: rate of this run, ETA) -> Tick -> Reporter.count (a line in Units) -> bar or stderr, and --log
    train: Reporter.update with its own line (step, loss)
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from colorize_cli import runlog


@dataclass(frozen=True)
class Tick:
    done: int  # units finished, those done by an earlier run included
    total: int | None  # best estimate, None if unknown
    rate: float  # units per second done in this run
    eta_s: float | None


ProgressFn = Callable[[Tick], None]


@dataclass(frozen=True)
class Units:
    noun: str  # "images"
    rate: str  # "img/s"


IMAGES = Units("images", "img/s")
FRAMES = Units("frames", "frames/s")


def line(t: Tick, units: Units) -> str:
    """The plain line of a counted run: "12/40 frames, 3.10 frames/s, ETA 9 s"."""
    of = f"/{t.total}" if t.total else ""
    eta = f", ETA {t.eta_s:.0f} s" if t.eta_s is not None else ""
    return f"{t.done}{of} {units.noun}, {t.rate:.2f} {units.rate}{eta}"


class Meter:
    """Units finished in this run (after `reused` done before it) as Ticks, each passed to `report` if given."""

    def __init__(self, total: int | None, reused: int = 0, report: ProgressFn | None = None):
        self.total, self.reused, self.report = total, reused, report
        self.count = 0
        self.t0 = time.perf_counter()

    def rate(self) -> float:
        return self.count / max(1e-9, time.perf_counter() - self.t0)

    def add(self, n: int = 1) -> Tick:
        self.count += n
        done, rate = self.reused + self.count, self.rate()
        eta = max(0.0, (self.total - done) / rate) if self.total and rate > 0 else None
        tick = Tick(done, self.total, rate, eta)
        if self.report is not None:
            self.report(tick)
        return tick


class Reporter:
    """The bar or the lines of one run. The bar starts at once when the total is known, else at the first update."""

    def __init__(
        self, label: str, total: int | None = None, *, quiet: bool = False, every_s: float = 10.0, done: int = 0
    ):
        self.label, self.total, self.quiet, self.every_s = label, total, quiet, every_s
        self.last = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.bar: Any = None
        if total:
            self._show(done, "")

    def update(self, done: int, text: str, info: str = "", total: int | None = None) -> None:
        """`done` units of the total; `text` the plain line for this state, `info` the bar's text beside the count."""
        if total is not None:
            self.total = total
        due = time.perf_counter() - self.last >= self.every_s or bool(self.total and done >= self.total)
        if due:
            self.last = time.perf_counter()
            runlog.note(text)
        self._show(done, info)
        if due and not self.quiet and self.bar is None:
            print(text, file=sys.stderr, flush=True)

    def count(self, t: Tick, units: Units) -> None:
        self.update(t.done, line(t, units), f"{t.rate:.1f} {units.rate}", t.total)

    def counting(self, units: Units) -> ProgressFn:
        """A progress callback (video.run's) that reports each Tick in `units`."""
        return lambda t: self.count(t, units)

    def echo(self, msg: str) -> None:
        """A message (error, warning) above the bar, or on stderr; and into --log."""
        runlog.note(msg)
        if self.bar is not None:
            self.bar.console.print(msg, markup=False, highlight=False)
        else:
            print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _show(self, done: int, info: str) -> None:
        if self.quiet or not self.tty:
            return
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self.task = self.bar.add_task(self.label, total=self.total, completed=done, info=info)
            self.bar.start()
        self.bar.update(self.task, completed=done, total=self.total, info=info)
