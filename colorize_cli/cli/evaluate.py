"""`colorize eval` (colorize_cli.evaluate over a folder of colour photos: tables, JSON, CSV, grid, README table) and
`colorize models` (the registry's models with their measured figures)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from colorize_cli.cli.common import (
    BATCH,
    DEFAULT_MODEL,
    DEVICE,
    KEEP_TONES,
    RENDER,
    THREADS,
    WORKERS,
    check_device,
    check_model_or_file,
    check_not_inputs,
    fail,
    tell,
)
from colorize_cli.cli.photos import photo_options

# Names are whole in any width (a script greps them): the name column never wraps, and the table is at least this
# wide even in a pipe or a narrow terminal (rich would otherwise cut it to 80 columns).
MODELS_TABLE_WIDTH = 120


class GroupBy(str, Enum):
    prefix = "prefix"  # the file name up to the first "_"


TRUTH_DIR = typer.Argument(..., help="Folder of colour ground-truth photos.")
MODELS = typer.Option([DEFAULT_MODEL], "--model", "-m", help="Repeat to compare several models.")
JSON_OUT = typer.Option(None, "--json", help="Write the figures as JSON.")
CSV_OUT = typer.Option(None, "--csv", help="Write the figures as CSV.")
GRID = typer.Option(None, "--grid", help="Comparison grid PNG: gray | each model | truth.")
GRID_IMAGES = typer.Option(4, "--grid-images", min=1, help="Photos in the --grid.")
README = typer.Option(None, "--readme", help="Rewrite the table between eval-table markers.")
LIMIT = typer.Option(0, "--limit", min=0, help="Use only the first N images.")
GROUP_BY = typer.Option(
    None,
    "--group-by",
    help="Also break every figure down by file-name prefix (the name up to the first _), in the table and --json.",
)
CLASSIFY = typer.Option(
    True,
    "--classifier/--no-classifier",
    help="Report the share of images whose top-1 ImageNet class (EfficientNet-Lite0) on the output is the truth's.",
)
MODELS_JSON = typer.Option(
    False,
    "--json",
    help="Print every model's name, architecture, colour "
    "space, parameters, weights size, file, sha256 "
    "and measured figures as JSON, for scripts.",
)


@dataclass
class EvalArgs:
    """`colorize eval`'s options as Typer parsed them (the command's parameters, by name)."""

    truth_dir: Path
    models: list[str]
    json_out: Path | None
    csv_out: Path | None
    grid: Path | None
    grid_images: int
    readme: Path | None
    limit: int
    group_by: GroupBy | None
    classify: bool
    render_size: int
    batch_size: int
    workers: int
    threads: int
    device: str
    keep_tones: bool


def eval_cmd(
    truth_dir: Path = TRUTH_DIR,
    models: list[str] = MODELS,
    json_out: Path | None = JSON_OUT,
    csv_out: Path | None = CSV_OUT,
    grid: Path | None = GRID,
    grid_images: int = GRID_IMAGES,
    readme: Path | None = README,
    limit: int = LIMIT,
    group_by: GroupBy | None = GROUP_BY,
    classify: bool = CLASSIFY,
    render_size: int = RENDER,
    batch_size: int = BATCH,
    workers: int = WORKERS,
    threads: int = THREADS,
    device: str = DEVICE,
    keep_tones: bool = KEEP_TONES,
) -> None:
    """Measure models against ground truth: PSNR, SSIM, CIEDE2000, colourfulness and ImageNet classifier agreement,
    beside the gray baseline."""
    run_eval(EvalArgs(**locals()))


def run_eval(a: EvalArgs) -> None:
    from colorize_cli.folders import iter_images

    for m in a.models:
        check_model_or_file(m)
    check_device(a.device)
    if not a.truth_dir.is_dir():
        fail(f"{a.truth_dir}: folder not found")
    files = list(iter_images(a.truth_dir, recursive=True))[: a.limit or None]
    if not files:
        fail(f"{a.truth_dir}: no images")
    check_not_inputs(files, a.json_out, a.csv_out, a.grid, a.readme)
    report = _measure(a, files)
    _print_tables(a, report)
    _save(a, report)
    for msg in report["failed"]:
        tell(f"error: {msg}")
    raise typer.Exit(1 if report["failed"] else 0)


def _measure(a: EvalArgs, files: list[Path]) -> dict[str, Any]:
    """evaluate.evaluate on the loaded models (a usage error, 2, for weights or options that do not load)."""
    from colorize_cli import evaluate
    from colorize_cli.classifier import Classifier
    from colorize_cli.weights import WeightsError
    from colorize_cli.zoo import load_model, pick_device

    try:
        dev = pick_device(a.device)
        loaded = {m: load_model(m, dev) for m in a.models}
        opts = photo_options(
            render_size=a.render_size,
            batch_size=a.batch_size,
            workers=a.workers,
            device=a.device,
            max_pixels=10**9,
            jpeg_quality=95,
            precision="auto",
            compile=False,
            keep_tones=a.keep_tones,
            threads=a.threads,
        )
        judge = Classifier(dev) if a.classify else None
        grouping = evaluate.prefix if a.group_by is GroupBy.prefix else None
        report = evaluate.evaluate(files, loaded, opts, a.grid_images if a.grid else 0, judge, grouping)
    except (WeightsError, ValueError) as e:
        fail(str(e))
    evaluate.add_weights_sizes(report, a.models)
    return report


def _print_tables(a: EvalArgs, report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from colorize_cli import evaluate

    table = Table(*evaluate.HEADERS, title=f"{a.truth_dir} ({report['images']} colour images)")
    for row in evaluate.table_rows(report):
        table.add_row(*row)
    Console(stderr=False).print(table)
    if note := evaluate.paired_note(report):
        Console(stderr=False).print(note)
    if a.group_by is not None:
        by_group = Table(*evaluate.GROUP_HEADERS, title=f"by file-name {a.group_by.value}")
        for row in evaluate.group_rows(report):
            by_group.add_row(*row)
        Console(stderr=False).print(by_group)


def _save(a: EvalArgs, report: dict[str, Any]) -> None:
    from colorize_cli import evaluate

    if a.json_out:
        evaluate.save_json(a.json_out, report)
    if a.csv_out:
        evaluate.save_csv(a.csv_out, report)
    if a.grid:
        evaluate.save_grid(a.grid, report["grid"])
    if a.readme:
        cmd = "colorize eval " + " ".join(sys.argv[2:])
        evaluate.replace_between_markers(a.readme, evaluate.markdown(report, cmd))


def models_cmd(as_json: bool = MODELS_JSON) -> None:
    """List the models: name, architecture, colour space, parameters, weights size, measured quality."""
    import json

    from colorize_cli.zoo import describe_models, gray_baseline

    infos = describe_models()
    if as_json:
        print(json.dumps([i.as_dict() for i in infos], indent=1))
        return
    from rich.console import Console
    from rich.table import Table

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
