"""The `colorize` command: options, help and exit codes only. torch is imported inside the commands that need it,
so `colorize --help` answers at once.

Exit codes: 0 all succeeded, 1 some inputs failed, 2 usage error (bad option, unknown model, missing folder).
"""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from colorize_cli import __version__
from colorize_cli.registry import DEFAULT_RENDER_SIZE

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Bring colour to black-and-white photographs and film. `colorize models` lists the models.")

DEFAULT_MODEL = "unet-lab"


class Fmt(str, Enum):
    same = "same"
    png = "png"
    jpg = "jpg"


class GroupBy(str, Enum):
    prefix = "prefix"       # the file name up to the first "_"


def fail(msg: str, code: int = 2) -> None:
    """One clear line on stderr, then exit: never a traceback for a user's mistake."""
    print(f"colorize: error: {msg}", file=sys.stderr)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        print(f"colorize {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version.")):
    """Bring colour to black-and-white photographs and film."""


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
RENDER = typer.Option(DEFAULT_RENDER_SIZE, "--render-size", min=16, max=4096, help="Short side at which colour is predicted.")
BATCH = typer.Option(8, "--batch-size", min=1, help="Images per model call.")
WORKERS = typer.Option(2, "--workers", min=0, help="Decoding processes.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu or cuda.")
OVERWRITE = typer.Option(False, "--overwrite/--skip-existing",
                         help="Redo outputs that exist (default: skip them, so a rerun resumes).")
REPORT = typer.Option(None, "--report", help="Write a JSON record per file (status, time, error).")
QUIET = typer.Option(False, "--quiet", "-q", help="Only errors and the final summary.")
MAX_PIXELS = typer.Option(100_000_000, "--max-pixels", min=1, help="Refuse larger images (decompression bombs).")
QUALITY = typer.Option(95, "--jpeg-quality", min=1, max=100)
PRECISION = typer.Option("auto", "--precision", help="auto (fp16 on CUDA, fp32 on CPU), fp32, bf16 or fp16.")
COMPILE = typer.Option(False, "--compile", help="torch.compile the network: slower start, faster long GPU runs.")
KEEP_TONES = typer.Option(False, "--keep-tones", help="Show the network the tonal range as it is (by default a faded "
                                                     "print's lifted blacks and dull whites are stretched for it; the "
                                                     "output keeps the input's lightness either way).")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """"K/N" (1-based) -> (K-1, N); under torchrun each rank takes its own shard."""
    import os
    if text is None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return (int(os.environ.get("RANK", "0")), world) if world > 1 else None
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        fail(f"--shard wants K/N with 1 <= K <= N, got {text!r}")
    return k - 1, n


def run_photos(pairs: list[tuple[Path, Path]], rel, model: str, opts, overwrite: bool, shard, report: Path | None,
               quiet: bool) -> None:
    """Shared by `dir` and `image`: load the model, colorize, summarise, exit 0/1."""
    import time

    from colorize_cli import pipeline
    from colorize_cli.weights import WeightsError
    from colorize_cli.zoo import load_model, pick_device

    t0 = time.perf_counter()
    opts.overwrite = overwrite
    jobs, settled = pipeline.plan(pairs, overwrite, shard, rel)
    try:
        device = pick_device(opts.device)
        colorizer = pipeline.Colorizer(load_model(model), device, opts.precision, opts.compile) if jobs else None
    except (WeightsError, ValueError) as e:
        fail(str(e))
    try:
        results = pipeline.run_jobs(jobs, settled, colorizer, opts, quiet) if jobs else settled
    except KeyboardInterrupt:
        print("colorize: interrupted; finished files are kept, rerun to resume", file=sys.stderr)
        raise typer.Exit(130)
    print(pipeline.summary(results, time.perf_counter() - t0), file=sys.stderr)
    if report is not None:
        pipeline.write_report(report, results)
    raise typer.Exit(1 if any(r.status == "failed" for r in results) else 0)


def _options(render_size, batch_size, workers, device, max_pixels, jpeg_quality, precision="auto", compile=False,
             keep_tones=False):
    from colorize_cli.pipeline import Options, check_precision
    try:
        check_precision(precision)
    except ValueError as e:
        fail(str(e))
    return Options(render_size=render_size, batch_size=batch_size, workers=workers, device=device,
                   max_pixels=max_pixels, jpeg_quality=jpeg_quality, precision=precision, compile=compile,
                   stretch_tones=not keep_tones)


@app.command("dir")
def dir_cmd(
    input_dir: Path = typer.Argument(..., help="Folder of black-and-white photos."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output folder (default: INPUT_colorized)."),
    model: str = MODEL, recursive: bool = typer.Option(False, "--recursive", "-r", help="Mirror subfolders too."),
    fmt: Fmt = FORMAT, render_size: int = RENDER, batch_size: int = BATCH, workers: int = WORKERS,
    device: str = DEVICE, overwrite: bool = OVERWRITE, report: Optional[Path] = REPORT, quiet: bool = QUIET,
    max_pixels: int = MAX_PIXELS, jpeg_quality: int = QUALITY, precision: str = PRECISION, compile: bool = COMPILE,
    keep_tones: bool = KEEP_TONES,
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: take the K-th of N deterministic shards."),
    in_place: bool = typer.Option(False, "--in-place", help="Write over the inputs themselves (explicit opt-in)."),
):
    """Colorize every photo in a folder; reruns skip what is done."""
    from colorize_cli.imaging import iter_images, output_path, sweep

    check_model_or_file(model)
    shards = parse_shard(shard)
    if not input_dir.is_dir():
        fail(f"{input_dir}: input folder not found")
    output = input_dir if in_place else output or input_dir.resolve().with_name(input_dir.resolve().name + "_colorized")
    if output.resolve() == input_dir.resolve() and not in_place:
        fail(f"{output}: output folder is the input folder; choose another with -o, or say --in-place")
    _check_writable(output)
    sweep(output)
    overwrite = overwrite or in_place
    srcs = iter_images(input_dir, recursive, exclude=None if in_place else output)
    pairs = [(s, output_path(s, input_dir, output, fmt.value)) for s in srcs]
    run_photos(pairs, lambda s: str(s.relative_to(input_dir)), model,
               _options(render_size, batch_size, workers, device, max_pixels, jpeg_quality, precision, compile,
                        keep_tones),
               overwrite, shards, report, quiet)


@app.command("image")
def image_cmd(
    files: List[Path] = typer.Argument(..., help="Photos to colorize."),
    output: Path = typer.Option(Path("colorized"), "--output", "-o", help="Output folder."),
    model: str = MODEL, fmt: Fmt = FORMAT, render_size: int = RENDER, batch_size: int = BATCH,
    workers: int = WORKERS, device: str = DEVICE, overwrite: bool = OVERWRITE, report: Optional[Path] = REPORT,
    quiet: bool = QUIET, max_pixels: int = MAX_PIXELS, jpeg_quality: int = QUALITY, precision: str = PRECISION,
    compile: bool = COMPILE, keep_tones: bool = KEEP_TONES,
):
    """Colorize the given photos into an output folder."""
    from colorize_cli.imaging import output_path

    check_model_or_file(model)
    _check_writable(output)
    pairs = [(f, output_path(f, None, output, fmt.value)) for f in files]
    for src, dst in pairs:
        if dst.resolve() == src.resolve():
            fail(f"{src}: output would overwrite the input; choose another -o")
    run_photos(pairs, lambda s: s.name, model,
               _options(render_size, batch_size, workers, device, max_pixels, jpeg_quality, precision, compile,
                        keep_tones),
               overwrite, None, report, quiet)


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
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Output video (.mp4, .mkv, .mov, .webm) or frame folder "
                                               "(default: NAME_colorized beside the input)."),
    model: str = MODEL, render_size: int = RENDER, batch_size: int = BATCH, device: str = DEVICE,
    strength: float = typer.Option(0.7, "--strength", min=0.0, max=1.0,
                                   help="Temporal stabilisation: 0 colours each frame on its own, 1 is strongest."),
    key_every: int = typer.Option(1, "--key-every", min=1,
                                  help="Run the model on every K-th frame (and at scene cuts) and carry the colour "
                                       "along optical flow between: faster on a CPU (1: every frame)."),
    crf: int = typer.Option(18, "--crf", min=0, max=63, help="Quality for x264/x265/VP9: lower is better and bigger."),
    codec: Optional[str] = typer.Option(None, "--codec", help="ffmpeg video encoder (default: libx264; libvpx-vp9 "
                                                              "for .webm)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="x264/x265 speed preset, ultrafast..veryslow "
                                                                "(default medium); veryfast encodes ~2.5x faster."),
    start: Optional[str] = typer.Option(None, "--start", help="Begin here: HH:MM:SS[.ms] or seconds."),
    end: Optional[str] = typer.Option(None, "--end", help="Stop here: HH:MM:SS[.ms] or seconds."),
    segment_seconds: float = typer.Option(0.0, "--segment-seconds", min=0.0,
                                          help="Resumable: keep finished segments of this many seconds, so a rerun "
                                               "after a crash or Ctrl-C continues (0: off)."),
    overwrite: bool = OVERWRITE, quiet: bool = QUIET, jpeg_quality: int = QUALITY, precision: str = PRECISION,
    compile: bool = COMPILE,
):
    """Colorize a film: a video file (sound kept) or a folder of frames, steadied from frame to frame."""
    from colorize_cli import video
    from colorize_cli.pipeline import Colorizer
    from colorize_cli.weights import WeightsError
    from colorize_cli.zoo import load_model, pick_device

    check_model_or_file(model)
    if not source.exists():
        fail(f"{source}: file not found")
    output = output or video.default_output(source)
    try:
        opts = video.VideoOptions(render_size=render_size, batch_size=batch_size, strength=strength,
                                  key_every=key_every, crf=crf, preset=preset, codec=codec,
                                  start=video.parse_time(start), end=video.parse_time(end),
                                  segment_seconds=segment_seconds, overwrite=overwrite, jpeg_quality=jpeg_quality)
        video.check_paths(source, output, opts)
    except ValueError as e:
        fail(str(e))
    _check_writable(output if source.is_dir() else output.parent)
    if video.is_done(source, output, opts):
        print(f"colorize: {output} is already done; --overwrite redoes it", file=sys.stderr)
        raise typer.Exit(0)
    try:
        dev = pick_device(device)
        colorizer = Colorizer(load_model(model, dev), dev, precision, compile)
    except (WeightsError, ValueError) as e:
        fail(str(e))
    progress = video.ProgressPrinter(quiet)
    try:
        result = video.run(source, output, colorizer, opts, progress)
    except video.VideoError as e:
        fail(str(e), 1)
    except KeyboardInterrupt:
        if source.is_dir() or segment_seconds:
            done = "frames" if source.is_dir() else "segments"
            print(f"colorize: interrupted; finished {done} are kept, rerun to resume", file=sys.stderr)
        else:
            print(f"colorize: interrupted; {output} was not written (--segment-seconds makes long runs resumable)",
                  file=sys.stderr)
        raise typer.Exit(130)
    finally:
        progress.close()
    for msg in result.failed:
        print(f"error: {msg}", file=sys.stderr)
    for msg in result.warnings:
        print(f"warning: {msg}", file=sys.stderr)
    print(video.summary(result), file=sys.stderr)
    raise typer.Exit(1 if result.failed else 0)


# --------------------------------------------------------------------------------------------------------- eval
@app.command("eval")
def eval_cmd(
    truth_dir: Path = typer.Argument(..., help="Folder of colour ground-truth photos."),
    models: List[str] = typer.Option([DEFAULT_MODEL], "--model", "-m", help="Repeat to compare several models."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the figures as JSON."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write the figures as CSV."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Comparison grid PNG: gray | each model | truth."),
    grid_images: int = typer.Option(4, "--grid-images", min=1),
    readme: Optional[Path] = typer.Option(None, "--readme", help="Rewrite the table between eval-table markers."),
    limit: int = typer.Option(0, "--limit", min=0, help="Use only the first N images."),
    group_by: Optional[GroupBy] = typer.Option(None, "--group-by", help="Also break every figure down by file-name "
                                               "prefix (the name up to the first _), in the table and --json."),
    classify: bool = typer.Option(True, "--classifier/--no-classifier", help="Report the share of images whose "
                                  "top-1 ImageNet class (EfficientNet-Lite0) on the output is the truth's."),
    render_size: int = RENDER, batch_size: int = BATCH, workers: int = WORKERS, device: str = DEVICE,
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
    if not truth_dir.is_dir():
        fail(f"{truth_dir}: folder not found")
    files = list(iter_images(truth_dir, recursive=True))[: limit or None]
    if not files:
        fail(f"{truth_dir}: no images")
    try:
        dev = pick_device(device)
        loaded = {m: load_model(m, dev) for m in models}
        opts = _options(render_size, batch_size, workers, device, 10**9, 95, keep_tones=keep_tones)
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


# ------------------------------------------------------------------------------------------------------- models
@app.command("models")
def models_cmd():
    """List the models: name, architecture, colour space, parameters, weights size, measured quality."""
    from rich.console import Console
    from rich.table import Table

    from colorize_cli.zoo import describe_models
    table = Table("name", "architecture", "space", "params", "weights", "val PSNR dB", "colourfulness ratio",
                  title="measured on ../shared/data/val by colorize eval (weights/metrics.json)")
    for row in describe_models():
        table.add_row(*[str(row[k]) for k in ("name", "description", "color_space", "params", "size", "psnr", "cf_ratio")])
    Console().print(table)


# -------------------------------------------------------------------------------------------------------- train
@app.command("train")
def train_cmd(
    data: Optional[Path] = typer.Argument(None, help="Folder of colour photos (searched recursively)."),
    arch: str = typer.Option(DEFAULT_MODEL, "--arch", help="Architecture to train (see `colorize models`)."),
    name: str = typer.Option("", "--name", help="Name recorded in the exported weights."),
    out: Path = typer.Option(Path("runs/run"), "--out", help="Run folder: checkpoints, metrics.jsonl, grids, loss.png."),
    epochs: int = typer.Option(1, "--epochs", min=1),
    steps: int = typer.Option(0, "--steps", min=0, help="Total optimizer steps (overrides --epochs)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    crop: int = typer.Option(0, "--crop", min=0, help="Training crop size (0: the architecture's default)."),
    lr: float = typer.Option(0.0, "--lr", min=0.0, help="Learning rate (0: the architecture's default)."),
    loss: str = typer.Option("", "--loss", help="Training loss (default: the architecture's), e.g. "
                                                "ab-classification-readout."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation folder (default: 2% held out by hash)."),
    val_every: int = typer.Option(500, "--val-every", min=1),
    ckpt_every: int = typer.Option(500, "--ckpt-every", min=1),
    limit: int = typer.Option(0, "--limit", min=0, help="Use at most this many training images."),
    keep_muted: bool = typer.Option(False, "--keep-muted", help="Keep colour photos with muted palettes; drop only "
                                    "grayscale and toned (sepia) ones, of a single hue (default: drop mean |ab| < 4)."),
    group_balance: float = typer.Option(1.0, "--group-balance", min=0.0, max=1.0, help="Sample each file-name group "
                                        "(prefix up to the first _) in proportion to its size to this power: 1 as the "
                                        "data, 0.5 the square root, 0 every group equally often."),
    workers: int = typer.Option(2, "--workers", min=0),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    no_pretrained: bool = typer.Option(False, "--no-pretrained", help="Start the encoder from random weights."),
    init: Optional[str] = typer.Option(None, "--init", help="Fine-tune from these weights (a model name or a "
                                                            ".safetensors file), e.g. the shipped unet-lab."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue from a checkpoint (last.ckpt)."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write the trained model as safetensors here."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Train a model on a folder of colour photos; Ctrl-C saves a checkpoint that --resume continues."""
    from colorize_cli.train import TrainConfig, Trainer
    from colorize_cli.weights import WeightsError, load_checkpoint

    if resume is not None:
        try:
            ck = load_checkpoint(resume)
        except WeightsError as e:
            fail(str(e))
        known = TrainConfig.__dataclass_fields__         # tolerate checkpoints from other versions
        cfg = TrainConfig(**{k: v for k, v in ck["config"].items() if k in known})
        cfg.steps = steps or cfg.steps
        cfg.out, cfg.quiet = str(resume.parent), quiet
    else:
        if data is None:
            fail("give a training folder, or --resume a checkpoint")
        check_model(arch)
        check_loss(loss)
        cfg = TrainConfig(data=str(data), arch=arch, name=name or arch, out=str(out), epochs=epochs, steps=steps,
                          batch_size=batch_size, crop=crop, lr=lr, loss=loss, val=str(val or ""), val_every=val_every,
                          ckpt_every=ckpt_every, limit=limit, keep_muted=keep_muted, group_balance=group_balance,
                          workers=workers, seed=seed, device=device,
                          pretrained_backbone=not no_pretrained, init=init or "", quiet=quiet)
        ck = None
    try:
        trainer = Trainer(cfg, resume=ck)
    except (FileNotFoundError, ValueError, WeightsError) as e:
        fail(str(e))
    try:
        last = trainer.run()
    except KeyboardInterrupt:
        raise typer.Exit(130)
    if export is not None and trainer.dist.main:
        _export(last, export)


def _export(ckpt: Path, dest: Path, readout: dict[str, float] | None = None) -> None:
    from colorize_cli.train import export
    from colorize_cli.weights import WeightsError
    try:
        meta = export(ckpt, dest, readout=readout)
    except WeightsError as e:
        fail(str(e))
    print(f"exported {meta['architecture']} (step {meta['step']}) to {dest}", file=sys.stderr)


@app.command("export")
def export_cmd(checkpoint: Path = typer.Argument(..., help="A training checkpoint (last.ckpt)."),
               dest: Path = typer.Argument(..., help="Output .safetensors file, e.g. weights/NAME.safetensors."),
               temperature: Optional[float] = typer.Option(None, "--temperature", min=0.01, max=10.0,
                                                           help="Annealed-mean readout temperature (classification "
                                                                "models; see benchmarks/temperature.py)."),
               prior_correction: Optional[float] = typer.Option(None, "--prior-correction", min=0.0, max=2.0,
                                                                help="How much of the class rebalancing the readout "
                                                                     "divides back out (classification models; above "
                                                                     "1 leans towards common, duller colours).")):
    """Turn a training checkpoint into a safetensors weights file with metadata."""
    readout = {k: v for k, v in (("temperature", temperature), ("prior_correction", prior_correction)) if v is not None}
    _export(checkpoint, dest, readout)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
