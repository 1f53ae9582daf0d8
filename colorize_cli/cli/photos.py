"""`colorize dir` and `colorize image`: parse the options, check them, and hand the (input, output) pairs that
batch.py plans to the Python API (colorizer.Colorizer.run_planned); then the summary, report, sheet and exit code."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import typer

from colorize_cli.cli.common import (
    BATCH,
    COMPILE,
    DEVICE,
    FORMAT,
    KEEP_TONES,
    LOG,
    MAX_PIXELS,
    MODEL,
    OVERWRITE,
    PRECISION,
    QUALITY,
    QUIET,
    RENDER,
    REPORT,
    THREADS,
    VIVIDNESS,
    WORKERS,
    Fmt,
    check_device,
    check_model_or_file,
    check_writable,
    fail,
    start_log,
    tell,
)

if TYPE_CHECKING:  # torch stays out of --help
    from colorize_cli.batch import InPlaceJournal
    from colorize_cli.engine import Options

INPUT_DIR = typer.Argument(..., help="Folder of black-and-white photos.")
DIR_OUTPUT = typer.Option(None, "--output", "-o", help="Output folder (default: INPUT_colorized).")
RECURSIVE = typer.Option(False, "--recursive/--no-recursive", "-r", help="Mirror subfolders too.")
SHARD = typer.Option(
    "auto",
    "--shard",
    help="K/N: take the K-th of N deterministic shards of the folder. auto (default): "
    "from a Slurm array job, a Kubernetes Indexed Job (JOB_COMPLETION_INDEX with "
    "COLORIZE_SHARDS) or torchrun (RANK, WORLD_SIZE) when their variables are set. "
    "none: the whole folder.",
)
IN_PLACE = typer.Option(
    False,
    "--in-place",
    help="Replace each input with its own result (explicit opt-in; "
    "a rerun skips files it already replaced, an output that "
    "would land on another input is refused).",
)
CONTACT_SHEET = typer.Option(
    None,
    "--contact-sheet",
    help="Write a review sheet of before / after thumbnails, failed "
    "files marked with their error: .html (one page) or .jpg/.png "
    "(pages of 100 files: NAME.jpg, NAME-2.jpg, ...).",
)
DRY_RUN = typer.Option(
    False,
    "--dry-run",
    help="List what would be colorized, skipped (done, or claimed "
    "by another run) or refused, with counts; write nothing.",
)
FILES = typer.Argument(..., help="Photos to colorize.")
IMAGE_OUTPUT = typer.Option(Path("colorized"), "--output", "-o", help="Output folder.")


@dataclass
class PhotoArgs:
    """The options `dir` and `image` share, as Typer parsed them (the commands' parameters, by name)."""

    model: str
    fmt: Fmt
    render_size: int
    batch_size: int
    workers: int
    threads: int
    device: str
    overwrite: bool
    report: Path | None
    quiet: bool
    max_pixels: int
    jpeg_quality: int
    precision: str
    compile: bool
    keep_tones: bool
    vividness: float
    log: Path | None

    def options(self) -> Options:
        return photo_options(
            render_size=self.render_size,
            batch_size=self.batch_size,
            workers=self.workers,
            device=self.device,
            max_pixels=self.max_pixels,
            jpeg_quality=self.jpeg_quality,
            precision=self.precision,
            compile=self.compile,
            keep_tones=self.keep_tones,
            threads=self.threads,
        )


@dataclass
class DirArgs(PhotoArgs):
    input_dir: Path
    output: Path | None
    recursive: bool
    shard: str
    in_place: bool
    contact_sheet: Path | None
    dry_run: bool


@dataclass
class ImageArgs(PhotoArgs):
    files: list[Path]
    output: Path


def photo_options(*, precision: str, keep_tones: bool, **fields: Any) -> Options:
    """engine.Options from the command line's words: --precision checked (a usage error), --keep-tones turned round."""
    from colorize_cli.engine import Options, check_precision

    try:
        checked = check_precision(precision)
    except ValueError as e:
        fail(str(e))
    return Options(precision=checked, stretch_tones=not keep_tones, **fields)


def dir_cmd(
    input_dir: Path = INPUT_DIR,
    output: Path | None = DIR_OUTPUT,
    model: str = MODEL,
    recursive: bool = RECURSIVE,
    fmt: Fmt = FORMAT,
    render_size: int = RENDER,
    batch_size: int = BATCH,
    workers: int = WORKERS,
    threads: int = THREADS,
    device: str = DEVICE,
    overwrite: bool = OVERWRITE,
    report: Path | None = REPORT,
    quiet: bool = QUIET,
    max_pixels: int = MAX_PIXELS,
    jpeg_quality: int = QUALITY,
    precision: str = PRECISION,
    compile: bool = COMPILE,
    keep_tones: bool = KEEP_TONES,
    vividness: float = VIVIDNESS,
    log: Path | None = LOG,
    shard: str = SHARD,
    in_place: bool = IN_PLACE,
    contact_sheet: Path | None = CONTACT_SHEET,
    dry_run: bool = DRY_RUN,
) -> None:
    """Colorize every photo in a folder; reruns skip what is done."""
    run_dir(DirArgs(**locals()))


def run_dir(a: DirArgs) -> None:
    from colorize_cli import batch
    from colorize_cli.claims import sweep

    start_log(a.log, f"dir {a.input_dir}")
    check_model_or_file(a.model)
    if a.contact_sheet is not None:
        check_sheet_name(a.contact_sheet)
    check_device(a.device)
    shards = parse_shard(a.shard, a.quiet)
    if not a.input_dir.is_dir():
        fail(f"{a.input_dir}: input folder not found")
    try:
        output = batch.folder_output(a.input_dir, a.output, a.in_place)
    except ValueError as e:
        fail(str(e))
    if not a.dry_run:
        check_writable(output)
        sweep(output)
    journal = batch.InPlaceJournal(a.input_dir) if a.in_place else None
    pairs = batch.folder_pairs(a.input_dir, output, a.recursive, a.fmt.value, journal)
    rel = batch.relative_to(a.input_dir)
    if a.dry_run:
        show_dry_run(pairs, a.overwrite, shards, rel, journal)
    opts = a.options()
    run_photos(
        PhotoRun(
            pairs, rel, a.model, opts, a.overwrite, a.quiet, a.vividness, shards, a.report, journal, a.contact_sheet
        )
    )


def image_cmd(
    files: list[Path] = FILES,
    output: Path = IMAGE_OUTPUT,
    model: str = MODEL,
    fmt: Fmt = FORMAT,
    render_size: int = RENDER,
    batch_size: int = BATCH,
    workers: int = WORKERS,
    threads: int = THREADS,
    device: str = DEVICE,
    overwrite: bool = OVERWRITE,
    report: Path | None = REPORT,
    quiet: bool = QUIET,
    max_pixels: int = MAX_PIXELS,
    jpeg_quality: int = QUALITY,
    precision: str = PRECISION,
    compile: bool = COMPILE,
    keep_tones: bool = KEEP_TONES,
    vividness: float = VIVIDNESS,
    log: Path | None = LOG,
) -> None:
    """Colorize the given photos into an output folder."""
    run_image(ImageArgs(**locals()))


def run_image(a: ImageArgs) -> None:
    from colorize_cli.batch import file_pairs

    start_log(a.log, f"image ({len(a.files)} files)")
    check_model_or_file(a.model)
    check_device(a.device)
    check_writable(a.output)
    try:
        pairs = file_pairs(a.files, a.output, a.fmt.value)
    except ValueError as e:
        fail(str(e))
    opts = a.options()
    run_photos(PhotoRun(pairs, lambda s: s.name, a.model, opts, a.overwrite, a.quiet, a.vividness, report=a.report))


def check_sheet_name(path: Path) -> None:
    from colorize_cli.contact_sheet import SUFFIXES

    if path.suffix.lower() not in SUFFIXES:
        fail(f"{path}: --contact-sheet wants a file ending {', '.join(SUFFIXES)}")


def parse_shard(text: str | None, quiet: bool = False) -> tuple[int, int] | None:
    """--shard's value, or the scheduler's variables (colorize_cli.shards) -> (0-based index, count) for plan."""
    from colorize_cli.shards import ShardError, resolve

    try:
        shard = resolve(text)
    except ShardError as e:
        fail(str(e))
    if shard is None:
        return None
    if not quiet:
        tell(f"colorize: shard {shard} from {shard.source}")
    return shard.index, shard.count


def show_dry_run(pairs: list[tuple[Path, Path]], overwrite: bool, shard, rel, journal=None) -> None:
    """Print each file's verdict and the counts; exit 1 when a real run would refuse some file."""
    from collections import Counter

    from colorize_cli import dryrun

    counts: Counter = Counter()
    for entry in dryrun.entries(pairs, overwrite, shard, rel, journal):
        counts[entry.verdict] += 1
        print(entry.line())
    print(dryrun.summary(counts), file=sys.stderr)
    raise typer.Exit(1 if counts[dryrun.Verdict.refused] else 0)


@dataclass
class PhotoRun:
    """What `dir` and `image` hand to run_photos: the (input, output) pairs and how to run and report them."""

    pairs: list[tuple[Path, Path]]
    rel: Callable[[Path], str]  # an input's name for shards and the dry run
    model: str
    opts: Options
    overwrite: bool
    quiet: bool
    vividness: float = 1.0
    shard: tuple[int, int] | None = None
    report: Path | None = None
    journal: InPlaceJournal | None = None  # --in-place
    sheet: Path | None = None  # --contact-sheet


def run_photos(run: PhotoRun) -> None:
    """Shared by `dir` and `image`, through the Python API's Colorizer.run_planned: load the model, colorize,
    summarise, exit 0/1/3 (pipeline.exit_code)."""
    import time

    from colorize_cli import pipeline
    from colorize_cli.batch import plan
    from colorize_cli.colorizer import Colorizer
    from colorize_cli.weights import WeightsError

    t0, opts = time.perf_counter(), run.opts
    jobs, settled = plan(run.pairs, run.overwrite, run.shard, run.rel, run.journal)
    try:  # nothing to do: no model to load
        colorizer = (
            Colorizer.from_pretrained(run.model, opts.device, opts.precision, opts.compile, run.vividness, options=opts)
            if jobs
            else None
        )
    except (WeightsError, ValueError) as e:
        fail(str(e))
    try:
        results = colorizer.run_planned(jobs, settled, run.overwrite, run.journal, run.quiet) if colorizer else settled
    except KeyboardInterrupt:
        tell("colorize: interrupted; finished files are kept, rerun to resume")
        raise typer.Exit(130) from None
    except pipeline.WriterDied as e:
        fail(str(e), 1)
    tell(pipeline.summary(results, time.perf_counter() - t0))
    if run.report is not None:
        pipeline.write_report(run.report, results)
    if run.sheet is not None:
        _contact_sheet(run.sheet, results, opts.max_pixels)
    raise typer.Exit(pipeline.exit_code(results))


def _contact_sheet(path: Path, results, max_pixels: int) -> None:
    from colorize_cli import contact_sheet
    from colorize_cli.imaging import ImageError

    try:
        pages = contact_sheet.write(path, results, max_pixels)
    except (ImageError, OSError) as e:
        fail(f"{path}: cannot write the contact sheet ({e})", 1)
    tell(f"contact sheet: {', '.join(map(str, pages))}")
