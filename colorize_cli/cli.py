"""The `colorize` command: options, help and exit codes only. torch is imported inside the commands that need it,
so `colorize --help` answers at once.

Exit codes: 0 all succeeded, 1 some inputs failed, 2 usage error (bad option, unknown model, missing folder, no such
device), 3 nothing failed but some outputs are being made by another run right now (claimed), so not known done.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import typer

from colorize_cli import __version__
from colorize_cli.registry import DEFAULT_RENDER_SIZE

if TYPE_CHECKING:  # torch stays out of --help
    from colorize_cli.batch import InPlaceJournal
    from colorize_cli.pipeline import Options
    from colorize_cli.train import Blend

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Bring colour to black-and-white photographs and film. `colorize models` lists the models.",
)

DEFAULT_MODEL = "unet-lab"


class Fmt(str, Enum):
    same = "same"
    png = "png"
    jpg = "jpg"


class GroupBy(str, Enum):
    prefix = "prefix"  # the file name up to the first "_"


def fail(msg: str, code: int = 2) -> None:
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


def _version(value: bool) -> None:
    if value:
        print(f"colorize {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    """Bring colour to black-and-white photographs and film. Defaults for any command's options can be set in
    ~/.config/colorize/config.toml or ./colorize.toml (a [dir], [image], ... table each; the command line wins)."""
    from colorize_cli import config, runlog

    ctx.call_on_close(runlog.close_log)
    try:
        ctx.default_map = config.default_map(config.config_files(), _option_names(ctx))
    except config.ConfigError as e:
        fail(str(e))


def _option_names(ctx: typer.Context) -> dict[str, dict[str, str]]:
    """{command: {option name without dashes, and parameter name: parameter name}} for the config file's keys."""
    names = {}
    group: Any = ctx.command  # the app's group: click types it as a plain Command
    for cmd_name in group.list_commands(ctx):
        params = [p for p in group.get_command(ctx, cmd_name).params if p.param_type_name == "option"]
        names[cmd_name] = {alias: p.name for p in params for alias in (p.name, *(o.lstrip("-") for o in p.opts))}
    return names


def check_model(name: str) -> str:
    from colorize_cli.zoo import available_models

    valid = available_models()
    if name not in valid:
        fail(f"unknown model {name!r}; valid models: {', '.join(valid)}")
    return name


def check_loss(name: str) -> str:
    from colorize_cli.losses import LOSSES

    if name and name not in LOSSES:
        fail(f"unknown loss {name!r}; valid losses: {', '.join(sorted(LOSSES))}")
    return name


# ------------------------------------------------------------------------------------------------------- photos
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
    help="CPU threads for the network and the colour merge (0: every core; 1 can be faster "
    "when other jobs keep the CPU busy).",
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


def check_device(name: str) -> str:
    """--device as a one-line usage error (2) before any work: an unknown name, or a GPU this machine lacks."""
    from colorize_cli.zoo import pick_device

    try:
        pick_device(name)
    except ValueError as e:
        fail(str(e))
    return name


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


def _options(
    *,
    render_size: int,
    batch_size: int,
    workers: int,
    device: str,
    max_pixels: int,
    jpeg_quality: int,
    precision: str,
    compile: bool,
    keep_tones: bool,
    threads: int,
) -> Options:
    from colorize_cli.pipeline import Options, check_precision

    try:
        checked = check_precision(precision)
    except ValueError as e:
        fail(str(e))
    return Options(
        render_size=render_size,
        batch_size=batch_size,
        workers=workers,
        device=device,
        max_pixels=max_pixels,
        jpeg_quality=jpeg_quality,
        precision=checked,
        compile=compile,
        stretch_tones=not keep_tones,
        threads=threads,
    )


@app.command("dir")
def dir_cmd(
    input_dir: Path = typer.Argument(..., help="Folder of black-and-white photos."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output folder (default: INPUT_colorized)."),
    model: str = MODEL,
    recursive: bool = typer.Option(False, "--recursive/--no-recursive", "-r", help="Mirror subfolders too."),
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
    shard: str = typer.Option(
        "auto",
        "--shard",
        help="K/N: take the K-th of N deterministic shards of the folder. auto (default): "
        "from a Slurm array job, a Kubernetes Indexed Job (JOB_COMPLETION_INDEX with "
        "COLORIZE_SHARDS) or torchrun (RANK, WORLD_SIZE) when their variables are set. "
        "none: the whole folder.",
    ),
    in_place: bool = typer.Option(
        False,
        "--in-place",
        help="Replace each input with its own result (explicit opt-in; "
        "a rerun skips files it already replaced, an output that "
        "would land on another input is refused).",
    ),
    contact_sheet: Path | None = typer.Option(
        None,
        "--contact-sheet",
        help="Write a review sheet of before / after thumbnails, failed "
        "files marked with their error: .html (one page) or .jpg/.png "
        "(pages of 100 files: NAME.jpg, NAME-2.jpg, ...).",
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="List what would be colorized, skipped (done, or claimed "
        "by another run) or refused, with counts; write nothing.",
    ),
):
    """Colorize every photo in a folder; reruns skip what is done."""
    from colorize_cli.batch import InPlaceJournal
    from colorize_cli.claims import sweep
    from colorize_cli.imaging import iter_images, output_path

    start_log(log, f"dir {input_dir}")
    check_model_or_file(model)
    if contact_sheet is not None:
        from colorize_cli.contact_sheet import SUFFIXES

        if contact_sheet.suffix.lower() not in SUFFIXES:
            fail(f"{contact_sheet}: --contact-sheet wants a file ending {', '.join(SUFFIXES)}")
    check_device(device)
    shards = parse_shard(shard, quiet)
    if not input_dir.is_dir():
        fail(f"{input_dir}: input folder not found")
    output = input_dir if in_place else output or input_dir.resolve().with_name(input_dir.resolve().name + "_colorized")
    if output.resolve() == input_dir.resolve() and not in_place:
        fail(f"{output}: output folder is the input folder; choose another with -o, or say --in-place")
    if not dry_run:
        _check_writable(output)
        sweep(output)
    journal = InPlaceJournal(input_dir) if in_place else None
    srcs = [
        s
        for s in iter_images(input_dir, recursive, exclude=None if in_place else output)
        if journal is None or not journal.is_result_of_another(s)
    ]
    pairs = [(s, output_path(s, input_dir, output, fmt.value)) for s in srcs]
    if dry_run:
        show_dry_run(pairs, overwrite, shards, lambda s: str(s.relative_to(input_dir)), journal)
    opts = _options(
        render_size=render_size,
        batch_size=batch_size,
        workers=workers,
        device=device,
        max_pixels=max_pixels,
        jpeg_quality=jpeg_quality,
        precision=precision,
        compile=compile,
        keep_tones=keep_tones,
        threads=threads,
    )
    run_photos(
        PhotoRun(
            pairs,
            lambda s: str(s.relative_to(input_dir)),
            model,
            opts,
            overwrite,
            quiet,
            vividness,
            shards,
            report,
            journal,
            contact_sheet,
        )
    )


@app.command("image")
def image_cmd(
    files: list[Path] = typer.Argument(..., help="Photos to colorize."),
    output: Path = typer.Option(Path("colorized"), "--output", "-o", help="Output folder."),
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
):
    """Colorize the given photos into an output folder."""
    from colorize_cli.imaging import output_path

    start_log(log, f"image ({len(files)} files)")
    check_model_or_file(model)
    check_device(device)
    _check_writable(output)
    pairs = [(f, output_path(f, None, output, fmt.value)) for f in files]
    for src, dst in pairs:
        if dst.resolve() == src.resolve():
            fail(f"{src}: output would overwrite the input; choose another -o")
    opts = _options(
        render_size=render_size,
        batch_size=batch_size,
        workers=workers,
        device=device,
        max_pixels=max_pixels,
        jpeg_quality=jpeg_quality,
        precision=precision,
        compile=compile,
        keep_tones=keep_tones,
        threads=threads,
    )
    run_photos(PhotoRun(pairs, lambda s: s.name, model, opts, overwrite, quiet, vividness, report=report))


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


def check_model_or_file(model: str) -> None:
    if model.endswith(".safetensors"):
        if not Path(model).is_file():
            fail(f"{model}: weights file not found")
        return
    check_model(model)


def _check_writable(folder: Path) -> None:
    """Create the output folder now so a permission problem is one line before any work starts."""
    import os

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"{folder}: cannot create output folder ({e.strerror})")
    if not os.access(folder, os.W_OK):
        fail(f"{folder}: output folder is not writable")


# -------------------------------------------------------------------------------------------------------- video
@app.command("video")
def video_cmd(
    source: Path = typer.Argument(..., help="A video file, or a folder of frames (images, in name order)."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Output video (.mp4, .mkv, .mov, .webm) or frame folder (default: NAME_colorized beside the input).",
    ),
    model: str = MODEL,
    render_size: int = RENDER,
    batch_size: int = BATCH,
    threads: int = THREADS,
    device: str = DEVICE,
    strength: float = typer.Option(
        0.7,
        "--strength",
        min=0.0,
        max=1.0,
        help="Temporal stabilisation: 0 colours each frame on its own, 1 is strongest.",
    ),
    key_every: int = typer.Option(
        4,
        "--key-every",
        min=1,
        help="Run the model on every K-th frame (and at scene cuts) and carry the colour "
        "along optical flow between: faster on a CPU (1: every frame).",
    ),
    crf: int = typer.Option(18, "--crf", min=0, max=63, help="Quality for x264/x265/VP9: lower is better and bigger."),
    codec: str | None = typer.Option(
        None, "--codec", help="ffmpeg video encoder (default: libx264; libvpx-vp9 for .webm)."
    ),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="x264/x265 speed preset, ultrafast..veryslow (default medium); veryfast encodes ~2.5x faster.",
    ),
    start: str | None = typer.Option(None, "--start", help="Begin here: HH:MM:SS[.ms] or seconds."),
    end: str | None = typer.Option(None, "--end", help="Stop here: HH:MM:SS[.ms] or seconds."),
    segment_seconds: float = typer.Option(
        0.0,
        "--segment-seconds",
        min=0.0,
        help="Resumable: keep finished segments of this many seconds, so a rerun "
        "after a crash or Ctrl-C continues (0: off).",
    ),
    reference: list[str] = typer.Option(
        [],
        "--reference",
        metavar="WHEN=IMAGE",
        help="A colour image of one frame (WHEN: HH:MM:SS[.ms] or seconds, or #N for "
        "frame N from 0), carried forward and backward through its shot along "
        "the motion; the model fills in where it loses track. Repeatable.",
    ),
    overwrite: bool = OVERWRITE,
    quiet: bool = QUIET,
    jpeg_quality: int = QUALITY,
    precision: str = PRECISION,
    compile: bool = COMPILE,
    vividness: float = VIVIDNESS,
    log: Path | None = LOG,
):
    """Colorize a film: a video file (sound kept) or a folder of frames, steadied from frame to frame."""
    from colorize_cli import video
    from colorize_cli.pipeline import Engine, set_threads
    from colorize_cli.reference import parse_spec
    from colorize_cli.weights import WeightsError
    from colorize_cli.zoo import load_model, pick_device

    start_log(log, f"video {source}")
    check_model_or_file(model)
    check_device(device)
    if not source.exists():
        fail(f"{source}: file not found")
    output = output or video.default_output(source)
    try:
        opts = video.VideoOptions(
            render_size=render_size,
            batch_size=batch_size,
            strength=strength,
            key_every=key_every,
            crf=crf,
            preset=preset,
            codec=codec,
            start=video.parse_time(start),
            end=video.parse_time(end),
            segment_seconds=segment_seconds,
            overwrite=overwrite,
            jpeg_quality=jpeg_quality,
            references=tuple(parse_spec(r) for r in reference),
        )
        video.check_paths(source, output, opts)
    except ValueError as e:
        fail(str(e))
    _check_writable(output if source.is_dir() else output.parent)
    if video.is_done(source, output, opts):
        tell(f"colorize: {output} is already done; --overwrite redoes it")
        raise typer.Exit(0)
    set_threads(threads)
    try:
        dev = pick_device(device)
        colorizer = Engine(load_model(model, dev, vividness), dev, precision, compile)
    except (WeightsError, ValueError) as e:
        fail(str(e))
    from colorize_cli.progress import FRAMES, Reporter

    progress = Reporter("colorize", quiet=quiet)
    try:
        result = video.run(source, output, colorizer, opts, progress.counting(FRAMES))
    except video.VideoClaimed as e:
        print(f"colorize: claimed: {e}", file=sys.stderr)
        raise typer.Exit(3) from None
    except video.VideoError as e:
        fail(str(e), 1)
    except KeyboardInterrupt:
        if source.is_dir() or segment_seconds:
            done = "frames" if source.is_dir() else "segments"
            tell(f"colorize: interrupted; finished {done} are kept, rerun to resume")
        else:
            tell(f"colorize: interrupted; {output} was not written (--segment-seconds makes long runs resumable)")
        raise typer.Exit(130) from None
    finally:
        progress.close()
    for msg in result.failed:
        tell(f"error: {msg}")
    for msg in result.warnings:
        tell(f"warning: {msg}")
    tell(video.summary(result))
    raise typer.Exit(1 if result.failed else 0)


# --------------------------------------------------------------------------------------------------------- eval
@app.command("eval")
def eval_cmd(
    truth_dir: Path = typer.Argument(..., help="Folder of colour ground-truth photos."),
    models: list[str] = typer.Option([DEFAULT_MODEL], "--model", "-m", help="Repeat to compare several models."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the figures as JSON."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write the figures as CSV."),
    grid: Path | None = typer.Option(None, "--grid", help="Comparison grid PNG: gray | each model | truth."),
    grid_images: int = typer.Option(4, "--grid-images", min=1, help="Photos in the --grid."),
    readme: Path | None = typer.Option(None, "--readme", help="Rewrite the table between eval-table markers."),
    limit: int = typer.Option(0, "--limit", min=0, help="Use only the first N images."),
    group_by: GroupBy | None = typer.Option(
        None,
        "--group-by",
        help="Also break every figure down by file-name prefix (the name up to the first _), in the table and --json.",
    ),
    classify: bool = typer.Option(
        True,
        "--classifier/--no-classifier",
        help="Report the share of images whose top-1 ImageNet class (EfficientNet-Lite0) on the output is the truth's.",
    ),
    render_size: int = RENDER,
    batch_size: int = BATCH,
    workers: int = WORKERS,
    threads: int = THREADS,
    device: str = DEVICE,
    keep_tones: bool = KEEP_TONES,
):
    """Measure models against ground truth: PSNR, SSIM, CIEDE2000, colourfulness and ImageNet classifier agreement,
    beside the gray baseline."""
    from rich.console import Console
    from rich.table import Table

    from colorize_cli import evaluate
    from colorize_cli.classifier import Classifier
    from colorize_cli.imaging import iter_images
    from colorize_cli.weights import WeightsError
    from colorize_cli.zoo import load_model, pick_device, weights_for

    for m in models:
        check_model_or_file(m)
    check_device(device)
    if not truth_dir.is_dir():
        fail(f"{truth_dir}: folder not found")
    files = list(iter_images(truth_dir, recursive=True))[: limit or None]
    if not files:
        fail(f"{truth_dir}: no images")
    _check_not_inputs(files, json_out, csv_out, grid, readme)
    try:
        dev = pick_device(device)
        loaded = {m: load_model(m, dev) for m in models}
        opts = _options(
            render_size=render_size,
            batch_size=batch_size,
            workers=workers,
            device=device,
            max_pixels=10**9,
            jpeg_quality=95,
            precision="auto",
            compile=False,
            keep_tones=keep_tones,
            threads=threads,
        )
        judge = Classifier(dev) if classify else None
        grouping = evaluate.prefix if group_by is GroupBy.prefix else None
        report = evaluate.evaluate(files, loaded, opts, grid_images if grid else 0, judge, grouping)
    except (WeightsError, ValueError) as e:
        fail(str(e))
    for m in models:
        report["results"][m]["weights_mb"] = weights_for(m).stat().st_size / 1e6
    table = Table(*evaluate.HEADERS, title=f"{truth_dir} ({report['images']} colour images)")
    for row in evaluate.table_rows(report):
        table.add_row(*row)
    Console(stderr=False).print(table)
    if group_by is not None:
        by_group = Table(*evaluate.GROUP_HEADERS, title=f"by file-name {group_by.value}")
        for row in evaluate.group_rows(report):
            by_group.add_row(*row)
        Console(stderr=False).print(by_group)
    if json_out:
        evaluate.save_json(json_out, report)
    if csv_out:
        evaluate.save_csv(csv_out, report)
    if grid:
        evaluate.save_grid(grid, report["grid"])
    if readme:
        cmd = "colorize eval " + " ".join(sys.argv[2:])
        evaluate.replace_between_markers(readme, evaluate.markdown(report, cmd))
    for msg in report["failed"]:
        tell(f"error: {msg}")
    raise typer.Exit(1 if report["failed"] else 0)


def _check_not_inputs(inputs: list[Path], *outputs: Path | None) -> None:
    """An output file (report, grid, export) that is one of the run's inputs is a usage error: never written over."""
    from colorize_cli.batch import Inputs

    known = Inputs(inputs)
    for out in outputs:
        if out is not None and (other := known.which(out)) is not None:
            fail(f"{out}: is an input ({other}); choose another output file")


# ------------------------------------------------------------------------------------------------------- models
@app.command("models")
def models_cmd(
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print every model's name, architecture, colour "
        "space, parameters, weights size, file, sha256 "
        "and measured figures as JSON, for scripts.",
    ),
):
    """List the models: name, architecture, colour space, parameters, weights size, measured quality."""
    import json

    from colorize_cli.zoo import describe_models, gray_baseline

    infos = describe_models()
    if as_json:
        print(json.dumps([i.as_dict() for i in infos], indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    # Names are whole in any width (a script greps them): the name column never wraps, and the table is at least
    # MODELS_TABLE_WIDTH wide even in a pipe or a narrow terminal (rich would otherwise cut it to 80 columns).
    table = Table(title="measured on ../shared/data/val by colorize eval (weights/metrics.json)")
    table.add_column("name", no_wrap=True, min_width=max((len(i.name) for i in infos), default=4))
    for col in ("architecture", "space", "params", "weights", "val PSNR dB", "colourfulness ratio"):
        table.add_column(col, overflow="fold")
    gray = gray_baseline()
    for info in infos:
        table.add_row(*info.row(gray))
    console = Console()
    console.width = max(console.width, MODELS_TABLE_WIDTH)
    console.print(table)


MODELS_TABLE_WIDTH = 120


# -------------------------------------------------------------------------------------------------------- train
@app.command("train")
def train_cmd(
    data: Path | None = typer.Argument(None, help="Folder of colour photos (searched recursively)."),
    arch: str = typer.Option(DEFAULT_MODEL, "--arch", help="Architecture to train (see `colorize models`)."),
    name: str = typer.Option("", "--name", help="Name recorded in the exported weights."),
    out: Path = typer.Option(
        Path("runs/run"), "--out", help="Run folder: checkpoints, metrics.jsonl, grids, loss.png."
    ),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Passes over the training photos."),
    steps: int = typer.Option(0, "--steps", min=0, help="Total optimizer steps (overrides --epochs)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Crops per optimizer step, on each rank."),
    crop: int = typer.Option(0, "--crop", min=0, help="Training crop size (0: the architecture's default)."),
    lr: float = typer.Option(0.0, "--lr", min=0.0, help="Learning rate (0: the architecture's default)."),
    loss: str = typer.Option(
        "", "--loss", help="Training loss (default: the architecture's), e.g. ab-classification-readout."
    ),
    val: Path | None = typer.Option(None, "--val", help="Validation folder (default: 2% held out by hash)."),
    val_every: int = typer.Option(500, "--val-every", min=1, help="Validate (metrics, grid) every this many steps."),
    ckpt_every: int = typer.Option(500, "--ckpt-every", min=1, help="Save last.ckpt every this many steps."),
    limit: int = typer.Option(0, "--limit", min=0, help="Use at most this many training images."),
    keep_muted: bool = typer.Option(
        False,
        "--keep-muted",
        help="Keep colour photos with muted palettes; drop only "
        "grayscale and toned (sepia) ones, of a single hue (default: drop mean |ab| < 4).",
    ),
    group_balance: float = typer.Option(
        1.0,
        "--group-balance",
        min=0.0,
        max=1.0,
        help="Sample each file-name group "
        "(prefix up to the first _) in proportion to its size to this power: 1 as the "
        "data, 0.5 the square root, 0 every group equally often.",
    ),
    workers: int = typer.Option(2, "--workers", min=0, help="Decoding processes."),
    seed: int = typer.Option(0, "--seed", help="Seed for crops, order and initial weights."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    no_pretrained: bool = typer.Option(False, "--no-pretrained", help="Start the encoder from random weights."),
    init: str | None = typer.Option(
        None,
        "--init",
        help="Fine-tune from these weights (a model name or a .safetensors file), e.g. the shipped unet-lab.",
    ),
    resume: Path | None = typer.Option(None, "--resume", help="Continue from a checkpoint (last.ckpt)."),
    export: Path | None = typer.Option(None, "--export", help="Write the trained model as safetensors here."),
    quiet: bool = typer.Option(False, "--quiet/--no-quiet", "-q", help="Only errors and the final line."),
):
    """Train a model on a folder of colour photos; Ctrl-C saves a checkpoint that --resume continues."""
    from colorize_cli.train import TrainConfig, Trainer, check_outside_data
    from colorize_cli.weights import WeightsError, load_checkpoint

    if resume is not None:
        try:
            ck = load_checkpoint(resume)
        except WeightsError as e:
            fail(str(e))
        known = TrainConfig.__dataclass_fields__  # tolerate checkpoints from other versions
        cfg = TrainConfig(**{k: v for k, v in ck["config"].items() if k in known})
        cfg.steps = steps or cfg.steps
        cfg.out, cfg.quiet = str(resume.parent), quiet
    else:
        if data is None:
            fail("give a training folder, or --resume a checkpoint")
        check_model(arch)
        check_loss(loss)
        cfg = TrainConfig(
            data=str(data),
            arch=arch,
            name=name or arch,
            out=str(out),
            epochs=epochs,
            steps=steps,
            batch_size=batch_size,
            crop=crop,
            lr=lr,
            loss=loss,
            val=str(val or ""),
            val_every=val_every,
            ckpt_every=ckpt_every,
            limit=limit,
            keep_muted=keep_muted,
            group_balance=group_balance,
            workers=workers,
            seed=seed,
            device=device,
            pretrained_backbone=not no_pretrained,
            init=init or "",
            quiet=quiet,
        )
        ck = None
    try:
        if export is not None:
            check_outside_data(cfg, export)
        trainer = Trainer(cfg, resume=ck)
    except (FileNotFoundError, ValueError, WeightsError) as e:
        fail(str(e))
    try:
        last = trainer.run()
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if export is not None and trainer.dist.main:
        _export(last, export)


def _export(ckpt: Path, dest: Path, readout: dict[str, float] | None = None, blend: Blend | None = None) -> None:
    from colorize_cli.train import export
    from colorize_cli.weights import WeightsError

    try:
        meta = export(ckpt, dest, readout=readout, blend=blend)
    except WeightsError as e:
        fail(str(e))
    print(f"exported {meta['architecture']} (step {meta['step']}) to {dest}", file=sys.stderr)


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Argument(..., help="A training checkpoint (last.ckpt)."),
    dest: Path = typer.Argument(..., help="Output .safetensors file, e.g. weights/NAME.safetensors."),
    temperature: float | None = typer.Option(
        None,
        "--temperature",
        min=0.01,
        max=10.0,
        help="Annealed-mean readout temperature (classification models; see benchmarks/temperature.py).",
    ),
    prior_correction: float | None = typer.Option(
        None,
        "--prior-correction",
        min=0.0,
        max=2.0,
        help="How much of the class rebalancing the readout "
        "divides back out (classification models; above "
        "1 leans towards common, duller colours).",
    ),
    blend_with: str | None = typer.Option(
        None,
        "--blend-with",
        help="Interpolate the checkpoint's weights with this model's (a name or .safetensors path of the same "
        "architecture, usually the --init it was fine-tuned from): keeps more of the base's colour on photos unlike "
        "the fine-tuning set.",
    ),
    blend: float = typer.Option(
        0.5, "--blend", min=0.0, max=1.0, help="The checkpoint's share of the weights with --blend-with (1: no blend)."
    ),
):
    """Turn a training checkpoint into a safetensors weights file with metadata."""
    from colorize_cli.train import Blend

    readout = {k: v for k, v in (("temperature", temperature), ("prior_correction", prior_correction)) if v is not None}
    _export(checkpoint, dest, readout, Blend(blend_with, blend) if blend_with else None)


def main() -> None:
    app(prog_name="colorize")  # also under `python -m colorize_cli`, so completion scripts name `colorize`


if __name__ == "__main__":
    main()
