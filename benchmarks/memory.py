"""Does `colorize dir` keep memory flat whatever the folder size, and does a 50-megapixel scan fit in 2 GB?
Runs the real command as a subprocess over 1,000 and 5,000 small gray photos (real val/ photos, 256x256 PNG) and over
one 8660x5773 (50 MP) gray 8-bit TIFF, and reports each run's peak RSS two ways:

- largest process: exact, from the kernel (os.wait4's rusage: the largest of colorize and its reaped decode workers);
- all processes: the sum of VmRSS over colorize and its workers, sampled every 20 ms (counts shared pages once per
  process, so it overstates; together the two bracket the true footprint).

    python benchmarks/memory.py [--small 1000] [--large 5000] [--side 256] [--tiff-size 8660x5773] [--workers 2]
                                [--tiff-only]

Prints one Markdown table; paste it with the date and machine into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import cv2
import torch
from _common import VAL, gray_photos, header, square

from colorize_cli.imaging import DEFAULT_MAX_PIXELS

LIMIT_MB = 2048


def tree_rss_mb(pid: int) -> float:
    """VmRSS of pid and all its descendants now, in MB (0 for processes that are gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, StopIteration):  # exited meanwhile, or a zombie without VmRSS
            continue
    return total / 1024


def peak_rss(cmd: list[str]) -> tuple[float, float]:
    """Run cmd; (peak MB of its largest process, peak MB summed over its process tree)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tree_peak, stop = [0.0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            tree_peak[0] = max(tree_peak[0], tree_rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    err = proc.stderr.read()  # drain stderr so the child never blocks on a full pipe
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, unlike RUSAGE_CHILDREN's running maximum
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return usage.ru_maxrss / 1024, tree_peak[0]  # Linux reports ru_maxrss in KB


def colorize_dir(src: Path, out: Path, args: argparse.Namespace, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[str]:
    return [
        sys.executable,
        "-m",
        "colorize_cli",
        "dir",
        str(src),
        "-o",
        str(out),
        "--quiet",
        "--workers",
        str(args.workers),
        "--batch-size",
        str(args.batch_size),
        "--max-pixels",
        str(max_pixels),
    ]


def folder_rows(tmp: Path, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """Peak memory over the smaller and the larger folder of small photos."""
    large, small = tmp / "large", tmp / "small"
    large.mkdir(), small.mkdir()
    paths = gray_photos(args.large, large, square(args.side))
    for p in paths[: args.small]:  # the smaller folder: hard links to the first files, no copies
        os.link(p, small / p.name)
    return [
        (
            f"`colorize dir`, {n} gray PNGs of {args.side}x{args.side}",
            *peak_rss(colorize_dir(folder, tmp / f"out-{n}", args)),
        )
        for n, folder in ((args.small, small), (args.large, large))
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=1000, help="images in the smaller folder")
    ap.add_argument("--large", type=int, default=5000, help="images in the larger folder")
    ap.add_argument("--side", type=int, default=256, help="side of the small square photos")
    ap.add_argument("--tiff-size", default="8660x5773", help="WxH of the big gray TIFF (8660x5773 is 50 MP)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--tiff-only", action="store_true", help="Only the big TIFF (the folder runs take minutes).")
    args = ap.parse_args()
    w, h = (int(v) for v in args.tiff_size.lower().split("x"))

    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.tiff_only:
            rows += folder_rows(tmp, args)

        # A real photo blown up to the scan's size; the pipeline's --max-pixels guard (100 MP by default) is raised
        # when the TIFF is larger, so the run measures memory rather than the refusal.
        big = tmp / "big"
        big.mkdir()
        photo = cv2.imread(str(sorted(VAL.glob("*.png"))[0]), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(big / "scan.tif"), cv2.resize(photo, (w, h), interpolation=cv2.INTER_LINEAR))
        rows.append(
            (
                f"`colorize dir`, one {w}x{h} ({w * h / 1e6:.1f} MP) gray 8-bit TIFF",
                *peak_rss(colorize_dir(big, tmp / "out-big", args, max(DEFAULT_MAX_PIXELS, w * h))),
            )
        )

    print(header(torch.get_num_threads()))  # the subprocess's default, the same as ours
    print(
        f"| run (workers {args.workers}, batch {args.batch_size}) | peak RSS MB, largest process "
        "| peak RSS MB, all processes (sampled) |"
    )
    print("|---|---|---|")
    for name, largest, tree in rows:
        print(f"| {name} | {largest:.0f} | {tree:.0f} |")
    if not args.tiff_only:
        (_, s_l, s_t), (_, l_l, l_t) = rows[:2]
        print(
            f"| ratio {args.large} / {args.small} images (flat memory: about 1.00) | {l_l / s_l:.2f} "
            f"| {l_t / s_t:.2f} |"
        )
    _, t_l, t_t = rows[-1]
    under = ["yes" if mb < LIMIT_MB else "NO" for mb in (t_l, t_t)]
    print(f"| TIFF under {LIMIT_MB // 1024} GB? | {under[0]} | {under[1]} |")


if __name__ == "__main__":
    main()
