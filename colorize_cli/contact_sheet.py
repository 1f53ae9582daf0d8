"""--contact-sheet: before / after thumbnails of a run's files, failed ones marked with their error, so an archivist
checks a thousand outputs at a glance.

.html: one self-contained page (thumbnails inline as small JPEGs), written row by row as the files are read.
.jpg / .png: pages of PAGE_ROWS rows of COLUMNS files (review.jpg, review-2.jpg, ...).
Either way only thumbnails are held, one page at most: memory stays flat for any number of files. Each file is read
back once more for its thumbnails, by the same decoder as the run (orientation, 16-bit, size limit).
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
import textwrap
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from colorize_cli.imaging import ImageError, encode_image, read_image, write_atomic
from colorize_cli.pipeline import Result

SUFFIXES = (".html", ".jpg", ".jpeg", ".png")
THUMB = 160  # thumbnails fit a THUMB x THUMB box
COLUMNS, PAGE_ROWS = 4, 25  # per image page: 100 files, 1376 x 5600 pixels (23 MB held)
PAD, LINE = 8, 16  # pixels between thumbnails; caption line height
CAPTION_LINES = 3
BACKGROUND, PLACEHOLDER, TEXT, ERROR = 255, 200, (40, 40, 40), (200, 0, 0)


def label(r: Result) -> str:
    if r.status == "failed":
        return f"FAILED: {r.error}"
    if r.status == "skipped":
        return f"skipped: {r.warning or 'done before'}"
    return f"warning: {r.warning}" if r.warning else "ok"


def write(path: Path, entries: Iterable[Result], max_pixels: int) -> list[Path]:
    """Write the sheet (pages for an image sheet) for the entries, in path order; returns the files written."""
    ordered = sorted(entries, key=lambda e: str(e.src))
    if path.suffix.lower() == ".html":
        _write_html(path, ordered, max_pixels)
        return [path]
    return _write_pages(path, ordered, max_pixels)


def thumbnail(path: Path | None, max_pixels: int) -> np.ndarray | None:
    """RGB uint8 fitting THUMB x THUMB, or None when there is no readable image."""
    if path is None or not path.is_file():
        return None
    try:
        rgb = read_image(path, max_pixels).rgb
    except ImageError:
        return None
    h, w = rgb.shape[:2]
    s = THUMB / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return np.round(np.clip(small, 0, 1) * 255).astype(np.uint8)


Thumbs = tuple[Result, "np.ndarray | None", "np.ndarray | None"]


def _thumbs(entries: list[Result], max_pixels: int) -> Iterator[Thumbs]:
    """(result, before, after) one file at a time."""
    for e in entries:
        after = thumbnail(e.dst, max_pixels) if e.status != "failed" else None
        yield e, thumbnail(e.src, max_pixels), after


# ------------------------------------------------------------------------------------------------------- html
_HEAD = """<!doctype html><meta charset="utf-8"><title>colorize review</title>
<style>body{font:13px sans-serif;margin:12px}figure{display:inline-block;margin:6px;vertical-align:top;width:340px}
img,.none{width:160px;height:160px;object-fit:contain;background:#eee;display:inline-block;vertical-align:top}
figcaption{word-break:break-all}.failed{outline:3px solid #c00}.failed figcaption{color:#c00}</style>
"""


def _write_html(path: Path, entries: list[Result], max_pixels: int) -> None:
    """Streamed into a temp file beside the sheet, renamed over it at the end: never a half-written sheet."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(_HEAD)
            counts = {s: sum(e.status == s for e in entries) for s in ("ok", "skipped", "failed")}
            f.write(
                f"<h1>colorize review: {len(entries)} files</h1><p>{counts['ok']} colorized, "
                f"{counts['skipped']} skipped, {counts['failed']} failed</p>\n"
            )
            for e, before, after in _thumbs(entries, max_pixels):
                cls = ' class="failed"' if e.status == "failed" else ""
                f.write(
                    f"<figure{cls}>{_img(before, 'before')}{_img(after, 'after')}<figcaption>"
                    f"{html.escape(str(e.src))}<br>{html.escape(label(e))}</figcaption></figure>\n"
                )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _img(rgb: np.ndarray | None, alt: str) -> str:
    if rgb is None:
        return f'<span class="none" title="no {alt} image"></span>'
    data = base64.b64encode(encode_image(rgb, None, ".jpg", 8, 80)).decode()
    return f'<img alt="{alt}" src="data:image/jpeg;base64,{data}">'


# ------------------------------------------------------------------------------------------------------ pages
CELL_W, CELL_H = 2 * THUMB + 3 * PAD, THUMB + 2 * PAD + CAPTION_LINES * LINE


def _write_pages(path: Path, entries: list[Result], max_pixels: int) -> list[Path]:
    per_page = COLUMNS * PAGE_ROWS
    written: list[Path] = []
    thumbs = _thumbs(entries, max_pixels)
    for start in range(0, max(1, len(entries)), per_page):
        count = min(per_page, len(entries) - start)
        rows = max(1, -(-count // COLUMNS))
        page = np.full((rows * CELL_H, COLUMNS * CELL_W, 3), BACKGROUND, np.uint8)
        for k in range(count):
            e, before, after = next(thumbs)
            _draw_cell(page, (k // COLUMNS) * CELL_H, (k % COLUMNS) * CELL_W, e, before, after)
        name = path if not written else path.with_name(f"{path.stem}-{len(written) + 1}{path.suffix}")
        write_atomic(name, encode_image(page, None, path.suffix.lower(), 8, 85))
        written.append(name)
    return written


def _draw_cell(
    page: np.ndarray, y: int, x: int, e: Result, before: np.ndarray | None, after: np.ndarray | None
) -> None:
    for i, thumb in enumerate((before, after)):
        x0, y0 = x + PAD + i * (THUMB + PAD), y + PAD
        if thumb is None:
            page[y0 : y0 + THUMB, x0 : x0 + THUMB] = PLACEHOLDER
            continue
        h, w = thumb.shape[:2]
        oy, ox = y0 + (THUMB - h) // 2, x0 + (THUMB - w) // 2
        page[oy : oy + h, ox : ox + w] = thumb
    failed = e.status == "failed"
    if failed:
        cv2.rectangle(page, (x + 2, y + 2), (x + CELL_W - 3, y + CELL_H - 3), ERROR, 3)
    text = f"{e.src.name}  {label(e)}"
    lines = textwrap.wrap(text.encode("ascii", "replace").decode(), width=(CELL_W - 2 * PAD) // 7)[:CAPTION_LINES]
    for n, line in enumerate(lines):
        cv2.putText(
            page,
            line,
            (x + PAD, y + THUMB + PAD + (n + 1) * LINE - 3),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            ERROR if failed else TEXT,
            1,
            cv2.LINE_AA,
        )
