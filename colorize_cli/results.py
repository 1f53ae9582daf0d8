"""What became of each input of a photo run, and what a run says about them: the Status vocabulary, one Result per
input, the summary line, the exit code and the JSON report. No torch, no decoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from colorize_cli.imaging import write_atomic


class Status(str, Enum):
    """What became of one input. A str Enum, so reports and comparisons read the plain word."""

    OK = "ok"
    SKIPPED = "skipped"  # done before (or meanwhile, by another run), or not this shard's
    CLAIMED = "claimed"  # another live run is making this output right now: not known to be done
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass
class Result:
    src: Path
    dst: Path | None
    status: Status
    seconds: float = 0.0
    error: str = ""
    warning: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def summary(results: list[Result], seconds: float) -> str:
    count = {s: sum(r.status == s for r in results) for s in Status}
    rate = count[Status.OK] / max(1e-9, seconds)
    claimed = f", claimed by another run {count[Status.CLAIMED]}" if count[Status.CLAIMED] else ""
    return (
        f"colorized {count[Status.OK]}, skipped {count[Status.SKIPPED]} (already done){claimed}, "
        f"failed {count[Status.FAILED]} in {seconds:.1f} s ({rate:.2f} img/s)"
    )


def exit_code(results: list[Result]) -> int:
    """0 all done; 1 some input failed; 3 none failed but some outputs are still being made by another run (a cron
    job learns that this run alone does not prove the folder done)."""
    if any(r.status == Status.FAILED for r in results):
        return 1
    return 3 if any(r.status == Status.CLAIMED for r in results) else 0


def write_report(path: Path, results: list[Result]) -> None:
    import json

    rows = [
        {
            "input": str(r.src),
            "output": str(r.dst) if r.dst else None,
            "status": str(r.status),
            "seconds": round(r.seconds, 4),
            "error": r.error or None,
            "warning": r.warning or None,
        }
        for r in results
    ]
    write_atomic(path, json.dumps(rows, indent=1).encode())
