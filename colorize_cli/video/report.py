"""Progress of a film run: a rich bar on a terminal, a plain line every few seconds otherwise."""
from __future__ import annotations

import sys
import time
from typing import Any

from colorize_cli import runlog
from colorize_cli.video.options import Tick


class ProgressPrinter:
    """A progress callback: a rich bar on a terminal, a plain line every `every_s` seconds otherwise, nothing when
    quiet."""

    def __init__(self, quiet: bool = False, every_s: float = 10.0):
        self.quiet, self.every_s = quiet, every_s
        self.last = time.perf_counter()
        self.bar: Any = None
        self.tty = sys.stderr.isatty()

    def __call__(self, t: Tick) -> None:
        due = time.perf_counter() - self.last >= self.every_s or bool(t.total and t.done >= t.total)
        if due:
            self.last = time.perf_counter()
            runlog.note(self.line(t))       # --log gets the plain lines even under a bar or --quiet
        if self.quiet:
            return
        if self.tty:
            if self.bar is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
                self.bar = Progress(TextColumn("colorize"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), transient=False)
                self.task = self.bar.add_task("colorize", total=t.total, rate="")
                self.bar.start()
            self.bar.update(self.task, completed=t.done, total=t.total, rate=f"{t.fps:.1f} frames/s")
        elif due:
            print(self.line(t), file=sys.stderr, flush=True)

    @staticmethod
    def line(t: Tick) -> str:
        of = f"/{t.total}" if t.total else ""
        eta = f", ETA {t.eta_s:.0f} s" if t.eta_s is not None else ""
        return f"{t.done}{of} frames, {t.fps:.2f} frames/s{eta}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

