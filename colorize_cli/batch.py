"""Planning a batch of (input, output) pairs before anything is written, and the in-place journal.

The rules, for each pair in input order:
- an output that is another input's file (same path, or the same file through a link) is refused, naming both:
  it is never written, and the run's exit code says a file failed;
- an output that is the input itself is allowed only in place (`--in-place`), and there it is done unless the
  in-place journal shows this very file was written by an earlier run and is unchanged since;
- a second input whose output is the same as an earlier one's is refused;
- an output that exists is skipped unless overwrite is asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from colorize_cli.folders import iter_images, output_path
from colorize_cli.pipeline import Result, Status

JOURNAL_NAME = ".colorize-in-place.jsonl"


def shard_of(rel: str, n: int) -> int:
    """Stable shard (0..n-1) of a relative path: the same on every machine and every run."""
    return int(hashlib.sha1(rel.encode("utf-8", "surrogateescape")).hexdigest()[:12], 16) % n


@dataclass(frozen=True)
class FileKey:
    """Identity of a file on disk: its real path, and (device, inode) where it exists, so links count too."""

    real: str
    inode: tuple[int, int] | None

    @classmethod
    def of(cls, path: Path) -> FileKey:
        try:
            st = os.stat(path)
            inode: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            inode = None
        return cls(os.path.realpath(path), inode)


class Inputs:
    """The set of a run's input files, to check every output against before anything is opened for writing."""

    def __init__(self, paths: list[Path]):
        keys = [FileKey.of(p) for p in paths]
        self.keys = dict(zip(paths, keys))
        self.reals = {k.real: p for k, p in zip(keys, paths)}
        self.inodes = {k.inode: p for k, p in zip(keys, paths) if k.inode is not None}

    def which(self, path: Path) -> Path | None:
        """The input that `path` is (by path or by inode), or None."""
        key = FileKey.of(path)
        return self.reals.get(key.real) or (self.inodes.get(key.inode) if key.inode is not None else None)


class InPlaceJournal:
    """What `--in-place` runs over a folder have written: one JSON line per finished file (its path relative to the
    folder, its source's, and the file's size and mtime after the rename). An entry counts only while the file is
    unchanged, so a rerun neither colorizes its own results again nor takes them (with --format png, new files beside
    the originals) for originals. Lines are appended (O_APPEND, one write each), so shards and a torn last line after
    a crash are harmless."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / JOURNAL_NAME
        self.entries: dict[str, dict] = {}
        self.offset = 0  # bytes of the journal read so far: later reads take only what was appended
        self._refresh()

    def _refresh(self) -> None:
        """Read lines appended since the last look (by this run's shards or an overlapping run)."""
        with contextlib.suppress(OSError), open(self.path, "rb") as f:
            f.seek(self.offset)
            tail = f.read()
            complete = tail[: tail.rfind(b"\n") + 1]  # a line still being written is read next time
            self.offset += len(complete)
            for line in complete.decode(errors="replace").splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    entry = json.loads(line)
                    self.entries[str(entry["out"])] = entry

    def _rel(self, path: Path) -> str:
        return os.path.relpath(os.path.realpath(path), os.path.realpath(self.root))

    def written(self, path: Path) -> bool:
        """True when `path` is a result an earlier in-place run wrote and nobody has changed since."""
        rel = self._rel(path)
        if rel not in self.entries:
            self._refresh()
        entry = self.entries.get(rel)
        try:
            st = os.stat(path)
        except OSError:
            return False
        return entry is not None and (entry["size"], entry["mtime_ns"]) == (st.st_size, st.st_mtime_ns)

    def is_result_of_another(self, path: Path) -> bool:
        """A file of ours made from a different input (a.jpg -> a.png): not an original to colorize."""
        entry = self.entries.get(self._rel(path))
        return entry is not None and entry["src"] != entry["out"] and self.written(path)

    def record(self, src: Path, dst: Path) -> None:
        st = os.stat(dst)
        entry: dict[str, Any] = {
            "out": self._rel(dst),
            "src": self._rel(src),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        }
        line = (json.dumps(entry) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        self.entries[entry["out"]] = entry


# ------------------------------------------------------------------------------------- pairs for dir and image
def folder_output(input_dir: Path, output: Path | None, in_place: bool) -> Path:
    """`dir`'s output folder: the input itself in place, else -o or INPUT_colorized beside it; never the input
    folder by accident (ValueError)."""
    if in_place:
        return input_dir
    out = output or input_dir.resolve().with_name(input_dir.resolve().name + "_colorized")
    if out.resolve() == input_dir.resolve():
        raise ValueError(f"{out}: output folder is the input folder; choose another with -o, or say --in-place")
    return out


def folder_pairs(
    input_dir: Path, output: Path, recursive: bool, fmt: str, journal: InPlaceJournal | None = None
) -> list[tuple[Path, Path]]:
    """(photo, result) for every photo in the folder, mirrored under `output` (skipped when inside it), in walking
    order; in place (`journal`), our own results from other inputs are not taken for originals."""
    srcs = [
        s
        for s in iter_images(input_dir, recursive, exclude=None if journal is not None else output)
        if journal is None or not journal.is_result_of_another(s)
    ]
    return [(s, output_path(s, input_dir, output, fmt)) for s in srcs]


def file_pairs(files: list[Path], output: Path, fmt: str) -> list[tuple[Path, Path]]:
    """(photo, result) for photos named one by one, all into `output`; ValueError when a result is its own input."""
    pairs = [(f, output_path(f, None, output, fmt)) for f in files]
    for src, dst in pairs:
        if dst.resolve() == src.resolve():
            raise ValueError(f"{src}: output would overwrite the input; choose another -o")
    return pairs


def relative_to(root: Path) -> Callable[[Path], str]:
    """An input's name under `root`, as shards and the dry run know it."""
    return lambda src: str(src.relative_to(root))


def plan(
    pairs: list[tuple[Path, Path]],
    overwrite: bool,
    shard: tuple[int, int] | None,
    rel: Callable[[Path], str],
    journal: InPlaceJournal | None = None,
) -> tuple[list[tuple[Path, Path]], list[Result]]:
    """Split (src, dst) pairs into work to do and results already settled (skipped, refused); see the module doc.
    `journal` given means in place: an output may be its own input."""
    inputs = Inputs([s for s, _ in pairs])
    todo: list[tuple[Path, Path]] = []
    settled: list[Result] = []
    seen: set[str] = set()
    for src, dst in pairs:
        if shard and shard_of(rel(src), shard[1]) != shard[0]:
            continue
        verdict = _verdict(src, dst, inputs, seen, overwrite, journal)
        if verdict is None:
            todo.append((src, dst))
        else:
            settled.append(verdict)
        if verdict is None or verdict.status != Status.FAILED:  # a refused pair claims no output
            seen.add(os.path.realpath(dst))
    return todo, settled


def _verdict(
    src: Path, dst: Path, inputs: Inputs, seen: set[str], overwrite: bool, journal: InPlaceJournal | None
) -> Result | None:
    """None: to do; else the settled Result."""
    other = inputs.which(dst)
    if other is not None and inputs.keys[other] != inputs.keys[src]:
        return Result(
            src,
            dst,
            Status.FAILED,
            error=f"{src}: refused: its output {dst} is another input, {other}; nothing written",
        )
    if other is not None and journal is None:
        return Result(src, dst, Status.FAILED, error=f"{src}: refused: the output would overwrite the input")
    if os.path.realpath(dst) in seen:
        return Result(src, dst, Status.FAILED, error=f"{src}: output {dst} would collide with another input's")
    if other is not None:  # in place, onto itself
        if overwrite or journal is None or not journal.written(dst):
            return None
        return Result(src, dst, Status.SKIPPED, warning="colorized by an earlier --in-place run")
    if dst.exists() and not overwrite:
        return Result(src, dst, Status.SKIPPED)
    return None
