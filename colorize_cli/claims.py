"""Everything this tool leaves beside an output while it works: claims (lock files) and temporary files.

Both are hidden and carry a suffix no image or film has (`.colorize-lock`, `.colorize-tmp`), so they can never be an
input of `dir`, and `sweep` recognises them by that exact scheme: a user's own `.something.lock` is never touched.

A claim is `.NAME.colorize-lock` beside the output, created whole and atomically (written aside, then
hard-linked under its name, which fails if it exists), holding its owner: host, boot id, pid,
the process's start time and a random token. The start time and boot id tell a dead owner from a live process that
got the same pid later; release and takeover check the token, so a run never removes a lock it does not own.
Temporary names carry the owner's pid, start time and host hash plus a random part, so two runs never share one.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_SUFFIX = ".colorize-lock"
TEMP_SUFFIX = ".colorize-tmp"
MAGIC = "colorize-lock 1"
FOREIGN_LOCK_SECONDS = 3600  # a lock or temp file of another host counts as stale after an hour (its pid is unseen)
_NAME_MAX = 255  # bytes in one path component on every file system we meet
_HOST = os.uname().nodename if hasattr(os, "uname") else "host"
_HOST_ID = hashlib.sha1(_HOST.encode()).hexdigest()[:8]
_TEMP = re.compile(r"^\..*\.(\d+)-(\d+)-([0-9a-f]{8})\.[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX) + r"(\.[A-Za-z0-9]+)?$")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; outputs renamed from temporaries get ordinary permissions (0666 & ~umask). Read once at
# import: os.umask is process-wide, so probing it later would race threads.
FILE_MODE = 0o666 & ~_current_umask()


class ClaimError(Exception):
    """A claim could not be made or checked (name too long, permission denied, read-only folder): one line."""


def _boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), "" where unknown: a reused pid has another."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name before ")" may hold spaces


def own_start_time() -> str:
    """This process's start time, read once: inside a busy run each /proc read cost about 0.6 ms of the main thread
    and the writer (a syscall gives up the GIL and waits to get it back from the network's lanes), twice a photo.
    Keyed by pid, so a forked child reads its own."""
    return _cached_start_time(os.getpid())


@functools.cache
def _cached_start_time(pid: int) -> str:
    return start_time(pid)


_BOOT = _boot_id()


@dataclass(frozen=True)
class Owner:
    host: str
    boot: str
    pid: int
    started: str
    token: str

    @classmethod
    def me(cls) -> Owner:
        return cls(_HOST, _BOOT, os.getpid(), own_start_time(), secrets.token_hex(8))

    def text(self) -> str:
        return f"{MAGIC}\n{self.host}\n{self.boot}\n{self.pid}\n{self.started}\n{self.token}\n"

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        lines = text.split("\n")
        if len(lines) < 6 or lines[0] != MAGIC or not lines[3].isdigit():
            return None
        return cls(lines[1], lines[2], int(lines[3]), lines[4], lines[5])

    def alive(self, age_s: float) -> bool:
        if self.host != _HOST:
            return age_s <= FOREIGN_LOCK_SECONDS
        if self.boot and _BOOT and self.boot != _BOOT:
            return False  # this host has rebooted since
        return pid_alive(self.pid, self.started)


def pid_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive, check its start below
    now = start_time(pid)
    return not (started and now and now != started)


def hidden_name(name: str, kind: str) -> str:
    """`.NAME<kind>`, or for a name too long to take the suffix, a shortened name with a hash of the whole."""
    full = f".{name}{kind}"
    if len(full.encode("utf-8", "surrogateescape")) <= _NAME_MAX - 16:
        return full
    digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    head = name.encode("utf-8", "surrogateescape")[:100].decode("utf-8", "ignore")
    return f".{head}~{digest}{kind}"


def lock_path(path: Path) -> Path:
    return path.with_name(hidden_name(path.name, LOCK_SUFFIX))


def temp_file(path: Path, keep_suffix: bool = False) -> Path:
    """Create (O_EXCL, so never an existing file: never an input) a hidden temporary beside `path`, unique to this
    process and call, with a new file's usual permissions. keep_suffix ends it in path's own extension, for ffmpeg,
    which picks the container by name."""
    suffix = TEMP_SUFFIX + (path.suffix if keep_suffix else "")
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=suffix)
    try:
        os.fchmod(fd, FILE_MODE)  # the output it becomes gets the permissions of any new file
    finally:
        os.close(fd)
    return Path(name)


def _temp_prefix(path: Path) -> str:
    """`.NAME.PID-START-HOST.`: what sweep reads to tell a dead run's temporary from a live one's."""
    return hidden_name(path.name, f".{os.getpid()}-{own_start_time() or 0}-{_HOST_ID}.")


def is_temp_name(name: str) -> bool:
    return _TEMP.match(name) is not None


@dataclass(frozen=True)
class Claim:
    """A held claim on one output: what release needs to remove only its own lock."""

    path: Path
    lock: Path
    token: str


def claim(path: Path) -> Claim | None:
    """Claim an output so overlapping runs never make it twice. None: a live run holds it. ClaimError: the lock file
    cannot be made or read here."""
    lock = lock_path(path)
    owner = Owner.me()
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if _create(lock, owner):
                return Claim(path, lock, owner.token)
            seen = _read(lock)
            if seen is None:
                continue  # released this instant: try again
            if not _dead(*seen):
                return None
            _take_over(lock, seen[0])
    except OSError as e:
        raise ClaimError(f"{path}: cannot claim the output ({lock.name}): {e.strerror or e}") from e
    return None


def _create(lock: Path, owner: Owner) -> bool:
    """Make the lock whole or not at all. The owner is written to a temporary first, then hard-linked under the
    lock's name, which fails if the name exists, as O_EXCL does. A run killed between creating a lock and writing it
    used to leave an empty one that no rerun could tell from a live run's (CI: a rerun after SIGKILL reported
    "claimed by another run"); now it leaves at most a temporary, which sweep removes."""
    # Named by the owner's random token, so no second random name is drawn (this runs once a photo).
    tmp = lock.with_name(_temp_prefix(lock) + owner.token + TEMP_SUFFIX)
    _write_new(tmp, owner)
    try:
        try:
            os.link(tmp, lock)
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in _NO_HARD_LINKS:
                raise
            return _create_in_place(lock, owner)
        return True
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


# What link() says on a file system without hard links (FAT, exFAT, some network shares).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


def _create_in_place(lock: Path, owner: Owner) -> bool:
    """O_EXCL and a write: the lock is empty for an instant, which a reader takes for a live owner (see _dead)."""
    try:
        _write_new(lock, owner)
    except FileExistsError:
        return False
    return True


def _write_new(path: Path, owner: Owner) -> None:
    """Create path (O_EXCL: never an existing file) holding the owner; FileExistsError if it is there."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(owner.text())


def _read(lock: Path) -> tuple[str, float] | None:
    """(text, age in seconds) of a lock file; None when it is gone."""
    try:
        return lock.read_text(errors="replace"), time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return None


def _dead(text: str, age: float) -> bool:
    """A lock whose owner has gone. One that is not ours in form is never dead, except an empty one older than a
    minute: a process that died between creating and writing it."""
    owner = Owner.parse(text)
    if owner is None:
        return text == "" and age > 60
    return not owner.alive(age)


def _take_over(lock: Path, seen: str) -> None:
    """Remove a dead owner's lock, but only if it still is that one: it is renamed aside first (atomic), and put
    back if another run replaced it meanwhile."""
    aside = lock.with_name(hidden_name(lock.name, f".{secrets.token_hex(4)}.aside"))
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    moved = _read(aside)
    if moved is not None and moved[0] != seen:
        with contextlib.suppress(FileExistsError):
            os.link(aside, lock)  # someone's fresh lock: back under its name, unless a third run took it
    with contextlib.suppress(FileNotFoundError):
        aside.unlink()


def release(held: Claim | None) -> None:
    """Remove the lock if it is still this claim's (a lock another run took over is left to it)."""
    if held is None:
        return
    with contextlib.suppress(OSError):
        owner = Owner.parse(held.lock.read_text())
        if owner is not None and owner.token == held.token:
            held.lock.unlink()


def holder(path: Path) -> Owner | None:
    """The live owner of an output's claim, if any (for reports and --dry-run)."""
    seen = _read(lock_path(path))
    if seen is None or _dead(*seen):
        return None
    return Owner.parse(seen[0]) or Owner("?", "", 0, "", "")


def sweep(folder: Path, recursive: bool = True) -> int:
    """Remove this tool's temporary and lock files left in an output tree (or one folder) by runs that died (crash,
    SIGKILL); returns the count. Only names of this tool's exact scheme are looked at; live runs' files stay."""
    removed = 0
    for dirpath, subdirs, names in os.walk(folder):
        if not recursive:
            subdirs.clear()
        for name in names:
            path = Path(dirpath) / name
            if _dead_leftover(path, name):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
    return removed


def _dead_leftover(path: Path, name: str) -> bool:
    if name.startswith(".") and name.endswith(LOCK_SUFFIX):
        try:
            seen = _read(path)
        except OSError:
            return False
        return seen is not None and _dead(*seen)
    m = _TEMP.match(name)
    if m is None:
        return False
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    if m.group(3) != _HOST_ID:
        return age > FOREIGN_LOCK_SECONDS
    return not pid_alive(int(m.group(1)), "" if m.group(2) == "0" else m.group(2))
