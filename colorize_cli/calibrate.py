"""The readout's calibration for a classification model (models/unet_lab.py): a log-odds offset per ab bin, fitted on
photos the model trained on, that lowers the CIEDE2000 of the colour the readout shows while keeping its
colourfulness.

Why: the network learns a rebalanced posterior, and the readout's one knob (the prior correction) moves every bin
alike between vivid and accurate. An offset per bin lets the data say which colours the readout shows too often and
which too rarely: held out, the shipped network read 8.07 CIEDE2000 at a colourfulness ratio of 0.93 calibrated,
against 8.26 at 0.92 plain (benchmarks/RESULTS.md, 2026-12-05).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from colorize_cli import pipeline
from colorize_cli.evaluate import is_gray
from colorize_cli.losses import ciede2000_ab
from colorize_cli.models.unet_lab import EffUNetLab

CELLS_PER_PHOTO = 300  # logit cells drawn from each photo: many photos, few cells each, so no photo dominates
STEPS, BATCH, LR = 300, 50_000, 0.03  # Adam over the offsets (224 numbers): converged by ~100 steps
CHROMA_PENALTY = 10.0  # the colourfulness floor's weight: the fit may not buy accuracy with gray


@dataclass(frozen=True)
class Cells:
    logits: torch.Tensor  # (M, Q) float16: the network's raw logits at logit cells of training photos
    ab: torch.Tensor  # (M, 2): the truth's ab averaged over each cell, as the training target is


@dataclass(frozen=True)
class Calibration:
    bias: torch.Tensor  # (Q,) the per-bin offset
    error_before: float  # mean CIEDE2000 over the cells, plain readout
    error_after: float
    chroma_before: float  # mean |ab| of the readout over the cells
    chroma_after: float


def photo_cells(
    model: EffUNetLab, files: list[Path], opts: pipeline.Options, per_photo: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(logits (k,Q), truth ab (k,2)) of up to per_photo random cells of each readable colour photo."""
    opts.keep_input = True
    engine = pipeline.Engine(model, next(model.parameters()).device)
    gen = torch.Generator().manual_seed(seed)
    for _, item in pipeline.stream(files, engine, opts, merge=False):
        if item.error is not None or item.rgb is None or item.small is None or is_gray(item.rgb):
            continue
        h, w = item.small.shape
        truth = cv2.resize(item.rgb.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        with torch.inference_mode():
            raw = engine.model(item.small[None, None].to(engine.device)).float().cpu()[0]
            ab = model.target(torch.from_numpy(truth).permute(2, 0, 1)[None])[0]
        pick = torch.randperm(raw.shape[1] * raw.shape[2], generator=gen)[:per_photo]
        yield raw.flatten(1)[:, pick].T.half(), ab.flatten(1)[:, pick].T


def cells(model: EffUNetLab, files: list[Path], opts: pipeline.Options, per_photo: int = CELLS_PER_PHOTO) -> Cells:
    rows = list(photo_cells(model, files, opts, per_photo, seed=0))
    if len(rows) < 20:
        raise ValueError(f"the calibration needs at least 20 readable colour photos, got {len(rows)}")
    return Cells(torch.cat([x for x, _ in rows]), torch.cat([y for _, y in rows]))


def _shown(model: EffUNetLab, logits: torch.Tensor) -> torch.Tensor:
    """The readout's ab (M,2) for rows of logits, through the model's own readout (its bias buffer included)."""
    return model.readout(logits.float().T[None, :, :, None])[0, :, :, 0].T


def _measure(model: EffUNetLab, data: Cells) -> tuple[float, float]:
    with torch.no_grad():
        shown = torch.cat([_shown(model, data.logits[k : k + BATCH]) for k in range(0, len(data.ab), BATCH)])
        return float(ciede2000_ab(shown[..., None], data.ab[..., None]).mean()), float(shown.norm(dim=1).mean())


def fit(model: EffUNetLab, data: Cells, steps: int = STEPS, seed: int = 0) -> Calibration:
    """The per-bin offset minimising mean CIEDE2000 over the cells, with the mean chroma held at the plain readout's
    (a squared penalty below it). The model's own offset is reset first and left at the fitted one."""
    model.bin_bias.zero_()
    error_before, chroma_before = _measure(model, data)
    bias = torch.zeros_like(model.bin_bias, requires_grad=True)
    opt = torch.optim.Adam([bias], lr=LR)
    gen = torch.Generator().manual_seed(seed)
    buffer = model.bin_bias
    try:
        model.bin_bias = bias  # the readout reads its offset from here: one formula for the fit and for inference
        for _ in range(steps):
            pick = torch.randint(0, len(data.ab), (min(BATCH, len(data.ab)),), generator=gen)
            shown = _shown(model, data.logits[pick])
            error = ciede2000_ab(shown[..., None], data.ab[pick][..., None]).mean()
            short = torch.relu(chroma_before - shown.norm(dim=1).mean())
            loss = error + CHROMA_PENALTY * short**2 / chroma_before
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        model.bin_bias = buffer
    model.bin_bias.copy_(bias.detach())
    error_after, chroma_after = _measure(model, data)
    return Calibration(model.bin_bias.clone(), error_before, error_after, chroma_before, chroma_after)
