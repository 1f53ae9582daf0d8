"""`colorize dir --dry-run`: what a run would do with each file, from the same plan the run makes, writing nothing
(no output folder, no locks, no sweep of old temp files)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator

from colorize_cli.claims import holder
from colorize_cli.pipeline import Status


class Verdict(str, Enum):
    colorize = "colorize"
    done = "skip (done)"
    claimed = "skip (claimed by another run)"
    refused = "refuse"


@dataclass
class Entry:
    verdict: Verdict
    src: Path
    dst: Path | None
    reason: str = ""

    def line(self) -> str:
        if self.verdict is Verdict.refused:
            return f"{self.verdict.value:<29} {self.reason}"  # the error names the file
        detail = f" -> {self.dst}" if self.verdict is Verdict.colorize else ""
        return f"{self.verdict.value:<29} {self.src}{detail}"


def entries(
    pairs: list[tuple[Path, Path]],
    overwrite: bool,
    shard: tuple[int, int] | None,
    rel: Callable[[Path], str],
    journal: Any = None,
) -> Iterator[Entry]:
    """One Entry per file of this shard, in input order: batch.plan's verdicts, and outputs a live run holds a
    claim on."""
    from colorize_cli.batch import plan

    todo, settled = plan(pairs, overwrite, shard, rel, journal)
    verdicts = {
        (r.src, r.dst): Entry(Verdict.refused if r.status == Status.FAILED else Verdict.done, r.src, r.dst, r.error)
        for r in settled
    }
    verdicts.update(
        {
            (src, dst): Entry(Verdict.claimed if holder(dst) is not None else Verdict.colorize, src, dst)
            for src, dst in todo
        }
    )
    for pair in pairs:
        if pair in verdicts:  # not in this shard otherwise
            yield verdicts.pop(pair)


def summary(counts: Counter) -> str:
    return (
        f"dry run: would colorize {counts[Verdict.colorize]}, skip {counts[Verdict.done]} (already done) and "
        f"{counts[Verdict.claimed]} (claimed by another run), refuse {counts[Verdict.refused]}; nothing written"
    )
