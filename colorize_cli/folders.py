"""Folders of photos: which files a run takes (walking a folder, deterministically) and where each result goes
(output names). No decoding and no torch, so planning a run, a dry run and `--help` stay cheap."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from colorize_cli.imaging import IMAGE_EXTENSIONS

_WRITABLE_EXTS = IMAGE_EXTENSIONS
_OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg"}


def iter_images(root: Path, recursive: bool, exclude: Path | None = None) -> Iterator[Path]:
    """Image files under `root`, sorted by path components; deterministic.

    Hidden files (".*", which covers our temporary and lock files and macOS "._*") are
    skipped. Recursion follows symlinks but visits each real directory once.
    Everything inside `exclude` is skipped (if `root` itself is inside it, nothing
    is yielded). Unreadable folders are skipped silently.
    """
    ex = os.path.realpath(exclude) if exclude is not None else None
    visited: set[tuple[int, int]] = set()
    stack = [_sorted_entries(str(root), visited, ex)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
        elif _is_dir(entry):
            if recursive:
                stack.append(_sorted_entries(entry.path, visited, ex))
        elif _is_image_name(entry.name) and _is_file(entry):
            yield Path(entry.path)


def _sorted_entries(d: str, visited: set[tuple[int, int]], ex: str | None) -> Iterator[os.DirEntry[str]]:
    """Entries of `d` by name, or nothing if excluded, already visited (loop) or unreadable."""
    if ex is not None and _is_within(os.path.realpath(d), ex):
        return iter(())
    try:
        st = os.stat(d)
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return iter(())
    key = (st.st_dev, st.st_ino)
    if key in visited:
        return iter(())
    visited.add(key)
    return iter(entries)


def _is_within(p: str, parent: str) -> bool:
    return p == parent or p.startswith(parent.rstrip(os.sep) + os.sep)


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()  # follows symlinks; broken links are skipped
    except OSError:
        return False


def output_path(src: Path, in_root: Path | None, out_dir: Path, fmt: str) -> Path:
    """Where the result for `src` goes: src's path relative to in_root, under out_dir.

    fmt "same" keeps the source suffix when we can write it (else ".png"),
    "png"/"jpg" force that format.
    """
    src = Path(src)
    rel = Path(src.name)
    if in_root is not None:
        with contextlib.suppress(ValueError):  # not under in_root: fall back to the name
            rel = src.relative_to(in_root)
    if fmt == "same":
        suffix = src.suffix if src.suffix.lower() in _WRITABLE_EXTS else ".png"
    elif fmt in _OUTPUT_FORMATS:
        suffix = _OUTPUT_FORMATS[fmt]
    else:
        raise ValueError(f"unknown output format {fmt!r}; expected same, png or jpg")
    return Path(out_dir) / rel.with_suffix(suffix)
