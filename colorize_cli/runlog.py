"""--log FILE (for cron and clusters): the run's plain progress lines and every error, appended to FILE, one line
each, stamped with the local time and host:pid (several workers may share one log).

A logger with no handler until open_log, so code may note lines whether or not a log was asked for.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime
from pathlib import Path

LOG = logging.getLogger("colorize_cli.runlog")
LOG.addHandler(logging.NullHandler())
LOG.propagate = False  # never onto the terminal through the root logger
LOG.setLevel(logging.INFO)


class _Stamped(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.who = f"{socket.gethostname()}:{os.getpid()}"

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="seconds")
        return f"{when} [{self.who}] {record.getMessage()}"


def open_log(path: Path) -> None:
    """Append to path from now on (one log at a time; an earlier one is closed). OSError if it cannot be opened."""
    close_log()
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(_Stamped())
    LOG.addHandler(handler)


def close_log() -> None:
    for h in [h for h in LOG.handlers if isinstance(h, logging.FileHandler)]:
        LOG.removeHandler(h)
        h.close()


def note(msg: str) -> None:
    """One line into the log, if one is open (each line is flushed as written)."""
    LOG.info(msg)
