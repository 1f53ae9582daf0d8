"""How long before `colorize` answers: wall time of `colorize --help` (a fresh process each run), and of loading the
default model, timed inside a fresh process around `load_model` alone (the imports before it are shown apart).
Median of N runs each, beside the targets (0.3 s and 1 s). Run it twice if the first run read a cold disk cache.

    python benchmarks/startup.py [--runs 10] [--model unet-lab]

Prints one Markdown table; paste it with the date and machine into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import header

HELP_TARGET_S, LOAD_TARGET_S = 0.3, 1.0

# Runs in the fresh process: prints the import time and the load_model time, in seconds.
LOAD = """import time
t0 = time.perf_counter()
from colorize_cli.zoo import load_model
t1 = time.perf_counter()
load_model({model!r})
print(t1 - t0, time.perf_counter() - t1)
"""


def colorize_cmd() -> list[str]:
    """The installed entry point, as users run it (beside this interpreter in a virtualenv), else `python -m`."""
    exe = Path(sys.executable).parent / "colorize"
    found = str(exe) if exe.is_file() else shutil.which("colorize")
    return [found] if found else [sys.executable, "-m", "colorize_cli"]


def wall_s(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--model", default="unet-lab")
    args = ap.parse_args()

    help_cmd = colorize_cmd() + ["--help"]
    load_cmd = [sys.executable, "-c", LOAD.format(model=args.model)]
    wall_s(help_cmd), wall_s(load_cmd)  # one untimed run each, so every timed run finds the files cached
    help_s = [wall_s(help_cmd)[0] for _ in range(args.runs)]
    loads = []  # (import s, load_model s, whole process s) per run
    for _ in range(args.runs):
        seconds, out = wall_s(load_cmd)
        loads.append((*(float(v) for v in out.split()), seconds))
    imports, load_s, whole = zip(*loads)

    def row(step: str, times: tuple[float, ...] | list[float], target: float | None = None) -> str:
        median = statistics.median(times)
        met = "-" if target is None else "yes" if median <= target else "no"
        return f"| {step} | {median:.3f} | {target or '-'} | {met} |"

    label = "colorize --help" if len(help_cmd) == 2 else "python -m colorize_cli --help"
    print(header(torch.get_num_threads()))
    print(f"| step (median of {args.runs}, fresh process each) | seconds | target s | met |")
    print("|---|---|---|---|")
    print(row(f"`{label}` (whole process)", help_s, HELP_TARGET_S))
    print(row(f"`load_model({args.model!r})` (the call only)", load_s, LOAD_TARGET_S))
    print(row("`from colorize_cli.zoo import load_model` before it (torch included)", imports))
    print(row("the whole `python -c` process (start, imports, load)", whole))


if __name__ == "__main__":
    main()
