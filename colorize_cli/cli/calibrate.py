"""`colorize calibrate` (colorize_cli.calibrate: fit a classification model's per-bin readout offset on its training
photos, write the weights with it)."""

from __future__ import annotations

from pathlib import Path

import typer

from colorize_cli.cli.common import DEFAULT_MODEL, THREADS, check_model_or_file, fail, tell

MODEL = typer.Argument(
    DEFAULT_MODEL, help="Weights to calibrate: a model name or a .safetensors file (unet-lab family)."
)
DATA = typer.Option(
    ..., "--data", help="The folder the model trained on; its training split is used (not the 2% held out)."
)
DEST = typer.Option(..., "--out", "-o", help="Output .safetensors: the model's weights with the calibration set.")
EVERY = typer.Option(12, "--every", min=1, help="Fit on every Nth photo of the training split.")


def calibrate_cmd(
    model: str = MODEL,
    data: Path = DATA,
    dest: Path = DEST,
    every: int = EVERY,
    threads: int = THREADS,
) -> None:
    """Fit the readout's per-bin offset on the model's own training photos: lower CIEDE2000 at the same
    colourfulness. Held out, the shipped network went from 8.26 to 8.07 at a colourfulness ratio of about 0.92."""
    check_model_or_file(model)
    if not data.is_dir():
        fail(f"{data}: no such folder")
    from colorize_cli import calibrate
    from colorize_cli.models.unet_lab import EffUNetLab
    from colorize_cli.pipeline import Options
    from colorize_cli.train import TrainConfig
    from colorize_cli.train_data import split_files
    from colorize_cli.weights import WeightsError, save_weights
    from colorize_cli.zoo import load_model

    try:
        net = load_model(model)
    except WeightsError as e:
        fail(str(e))
    if not isinstance(net, EffUNetLab):
        fail(f"{model}: only the unet-lab family has a calibrated readout")
    files = split_files(data, TrainConfig.val_percent)[0][::every]
    try:
        cal = calibrate.fit(net, calibrate.cells(net, files, Options(workers=1, threads=threads)))
    except ValueError as e:
        fail(str(e))
    record = {"data": str(data), "every": every, "photos": len(files)}
    record |= {k: round(v, 3) for k, v in vars(cal).items() if isinstance(v, float)}
    save_weights(dest, net.own_state(), {**net.meta, "calibration": record})
    tell(
        f"calibrated on {len(files)} photos: CIEDE2000 {cal.error_before:.2f} -> {cal.error_after:.2f}, mean chroma "
        f"{cal.chroma_before:.1f} -> {cal.chroma_after:.1f}; wrote {dest}"
    )
