"""What every command shares: one-line errors and exit codes, the --log file, the usage checks made before any work,
and the options several commands declare alike. Nothing here imports torch."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import NoReturn

import typer

from colorize_cli.registry import DEFAULT_MODEL, DEFAULT_RENDER_SIZE

DEFAULT_ARCH = "unet-lab"  # what `colorize train` trains unless told: the fast single network


class Fmt(str, Enum):
    same = "same"
    png = "png"
    jpg = "jpg"


def fail(msg: str, code: int = 2) -> NoReturn:
    """One clear line on stderr (and in the --log file), then exit: never a traceback for a user's mistake."""
    tell(f"colorize: error: {msg}")
    raise typer.Exit(code)


def tell(msg: str) -> None:
    """A line for the user on stderr, also appended to the --log file when there is one."""
    from colorize_cli import runlog

    print(msg, file=sys.stderr)
    runlog.note(msg)


def start_log(path: Path | None, what: str) -> None:
    """--log FILE: from here on the plain progress lines and every error are appended to it (closed with the run)."""
    if path is None:
        return
    from colorize_cli import runlog

    try:
        runlog.open_log(path)
    except OSError as e:
        fail(f"{path}: cannot open log ({e.strerror})")
    runlog.note(f"colorize {what}: started")


# ------------------------------------------------------------------------------------------------ usage checks
def check_model(name: str) -> str:
    from colorize_cli.zoo import available_models

    valid = available_models()
    if name not in valid:
        fail(f"unknown model {name!r}; valid models: {', '.join(valid)}")
    return name


def check_model_or_file(model: str) -> None:
    if model.endswith(".safetensors"):
        if not Path(model).is_file():
            fail(f"{model}: weights file not found")
        return
    check_model(model)


def check_loss(name: str) -> str:
    from colorize_cli.losses import LOSSES

    if name and name not in LOSSES:
        fail(f"unknown loss {name!r}; valid losses: {', '.join(sorted(LOSSES))}")
    return name


def check_device(name: str) -> str:
    """--device as a one-line usage error (2) before any work: an unknown name, or a GPU this machine lacks."""
    from colorize_cli.zoo import pick_device

    try:
        pick_device(name)
    except ValueError as e:
        fail(str(e))
    return name


def check_writable(folder: Path) -> None:
    """Create the output folder now so a permission problem is one line before any work starts."""
    import os

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"{folder}: cannot create output folder ({e.strerror})")
    if not os.access(folder, os.W_OK):
        fail(f"{folder}: output folder is not writable")


def check_not_inputs(inputs: list[Path], *outputs: Path | None) -> None:
    """An output file (report, grid, export) that is one of the run's inputs is a usage error: never written over."""
    from colorize_cli.batch import Inputs

    known = Inputs(inputs)
    for out in outputs:
        if out is not None and (other := known.which(out)) is not None:
            fail(f"{out}: is an input ({other}); choose another output file")


# ---------------------------------------------------------------------------------------------- shared options
MODEL = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model name (see `colorize models`) or a .safetensors file.")
FORMAT = typer.Option(Fmt.same, "--format", help="Output format: same as the input, png or jpg.")
RENDER = typer.Option(
    DEFAULT_RENDER_SIZE, "--render-size", min=16, max=4096, help="Short side at which colour is predicted."
)
BATCH = typer.Option(8, "--batch-size", min=1, help="Images per model call.")
WORKERS = typer.Option(2, "--workers", min=0, help="Decoding processes.")
THREADS = typer.Option(
    0,
    "--threads",
    min=0,
    help="CPU threads for the network and the colour merge (0: every core). On a CPU a batch runs as one "
    "network call per thread, side by side.",
)
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
OVERWRITE = typer.Option(
    False, "--overwrite/--skip-existing", help="Redo outputs that exist (default: skip them, so a rerun resumes)."
)
REPORT = typer.Option(None, "--report", help="Write a JSON record per file (status, time, error).")
QUIET = typer.Option(False, "--quiet/--no-quiet", "-q", help="Only errors and the final summary.")
MAX_PIXELS = typer.Option(100_000_000, "--max-pixels", min=1, help="Refuse larger images (decompression bombs).")
QUALITY = typer.Option(95, "--jpeg-quality", min=1, max=100, help="Quality of JPEG outputs (1-100).")
PRECISION = typer.Option("auto", "--precision", help="auto (fp16 on CUDA, fp32 on CPU), fp32, bf16 or fp16.")
COMPILE = typer.Option(
    False, "--compile/--no-compile", help="torch.compile the network: slower start, faster long GPU runs."
)
VIVIDNESS = typer.Option(
    1.0,
    "--vividness",
    min=0.0,
    max=2.0,
    help="Colour strength of the classification models (unet-lab), 0 to 2: 1 as trained, "
    "0.5 quieter, 1.5 bolder (shifts the readout's prior correction by 1 - VIVIDNESS).",
)
LOG = typer.Option(
    None,
    "--log",
    help="Append the plain progress lines and every error to this file, each with a "
    "timestamp and host:pid (for cron and cluster jobs).",
)
KEEP_TONES = typer.Option(
    False,
    "--keep-tones/--stretch-tones",
    help="Show the network the tonal range as it is (by default a faded print's lifted "
    "blacks and dull whites are stretched for it; the output keeps the input's lightness "
    "either way).",
)
