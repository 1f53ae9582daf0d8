"""`colorize eval`: colour ground truth -> gray input -> the same stream as `colorize dir` -> metrics per model,
with the gray baseline (output = input) beside every figure so each number has its reference.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from colorize_cli import metrics, pipeline
from colorize_cli.imaging import encode_image, write_atomic

GRAY = "gray (input)"
KEYS = ("psnr", "ssim", "ciede2000", "colorfulness")


@dataclass
class Scores:
    rows: list[dict[str, float]] = field(default_factory=list)

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        self.rows.append(metrics.image_metrics(quantize8(pred), truth))

    def summary(self, truth_colorfulness: float) -> dict[str, float]:
        out = {k: float(np.mean([r[k] for r in self.rows])) for k in KEYS}
        out["colorfulness_ratio"] = out["colorfulness"] / max(1e-9, truth_colorfulness)
        out["images"] = len(self.rows)
        return out


def is_gray(rgb: np.ndarray, tol: float = 0.01) -> bool:
    """A "ground truth" whose channels are equal has no colour to recover (and the gray baseline would score a
    perfect, infinite PSNR on it): such images are left out of the figures and listed instead."""
    return float(np.abs(rgb - rgb.mean(2, keepdims=True)).max()) < tol


def quantize8(rgb: np.ndarray) -> np.ndarray:
    """What a user gets from an 8-bit output file."""
    return np.round(np.clip(rgb, 0, 1) * 255) / 255


@torch.inference_mode()
def network_ms(model: torch.nn.Module, runs: int = 10, size: int = 256) -> float:
    """Median ms of one size x size image through the network (batch 1, on the model's device): the same input for
    every model, so the speed column compares architectures, not the test images' shapes."""
    dev = next(model.parameters()).device
    lum = torch.rand(1, 1, size, size, device=dev)
    times = []
    for _ in range(runs + 2):                       # two warm-up calls pay lazy initialisation out of the figure
        t0 = time.perf_counter()
        model.chroma(lum)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times[2:]))


def evaluate(files: list[Path], models: dict[str, torch.nn.Module], opts: pipeline.Options,
             grid_count: int = 0) -> dict[str, Any]:
    """Metrics per model and for the gray baseline; grid_count first images kept for a comparison grid."""
    opts.keep_input = True
    device = torch.device(opts.device) if opts.device != "auto" else None
    truth_cf, gray, scores = [], Scores(), {name: Scores() for name in models}
    skipped: set[int] = set()
    failed: dict[int, str] = {}                     # unreadable truth images: left out of every row, reported
    grid: dict[int, dict[str, np.ndarray]] = {}
    for idx, (name, model) in enumerate(models.items()):
        colorizer = pipeline.Colorizer(model, device or next(model.parameters()).device)
        for i, item in pipeline.stream(files, colorizer, opts):
            if "error" in item:
                failed[i] = item["error"]
                continue
            if i in failed:
                continue
            truth = item["rgb"]
            if idx == 0 and is_gray(truth):
                skipped.add(i)
            if i in skipped:
                continue
            scores[name].add(item["rgb_out"], truth)
            if idx == 0:
                g, _ = colorizer.merge(item["lum"], torch.zeros(2, *item["lum"].shape))
                gray.add(g, truth)
                truth_cf.append(metrics.colorfulness(truth))
                if i < grid_count:
                    grid[i] = {GRAY: g, "truth": truth}
            if i < grid_count:
                grid[i][name] = item["rgb_out"]
    cf = float(np.mean(truth_cf))
    results = {GRAY: gray.summary(cf)}
    for name, model in models.items():
        results[name] = {**scores[name].summary(cf), "params": sum(p.numel() for p in model.parameters()),
                         "ms_256": network_ms(model)}
    return {"data": str(files[0].parent) if files else "", "images": len(files) - len(skipped) - len(failed),
            "skipped_gray": [files[i].name for i in sorted(skipped)], "failed": [failed[i] for i in sorted(failed)],
            "render_size": opts.render_size,
            "truth_colorfulness": cf, "results": results, "timed_on": timed_on(models),
            "grid": [grid[i] for i in sorted(grid)]}


def timed_on(models: dict[str, torch.nn.Module]) -> str:
    """Where the speed column was measured, e.g. "cpu, 2 threads": a ms figure means nothing without it."""
    devs = sorted({str(next(m.parameters()).device) for m in models.values()})
    return ", ".join(devs) + (f", {torch.get_num_threads()} threads" if devs == ["cpu"] else "")


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """Rows for the terminal and README tables."""
    rows = []
    for name, r in report["results"].items():
        ms = f"{r['ms_256']:.0f}" if "ms_256" in r else "-"
        params = f"{r['params'] / 1e6:.1f}M" if "params" in r else "-"
        size = f"{r['weights_mb']:.1f}" if "weights_mb" in r else "-"
        rows.append([name, params, size, f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", f"{r['ciede2000']:.2f}",
                     f"{r['colorfulness']:.1f} ({r['colorfulness_ratio']:.2f})", ms])
    return rows


HEADERS = ["model", "params", "weights MB", "PSNR dB", "SSIM", "CIEDE2000", "colourfulness (ratio to truth)",
           "ms per 256x256"]


def markdown(report: dict[str, Any], command: str) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(report)]
    skipped = report.get("skipped_gray") or []
    note = f" ({len(skipped)} grayscale ground truths left out: {', '.join(skipped)})" if skipped else ""
    return (f"Made by `{command}` on {report['images']} images{note} at render size {report['render_size']}; "
            f"ground-truth colourfulness {report['truth_colorfulness']:.1f}; ms per 256x256 image: the network "
            f"alone, batch 1, on {report.get('timed_on', '?')}.\n\n" + "\n".join(lines) + "\n")


def replace_between_markers(path: Path, text: str, tag: str = "eval-table") -> None:
    """Swap the block between <!-- tag:start --> and <!-- tag:end --> in a README, atomically."""
    doc = path.read_text()
    start, end = f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"
    if start not in doc or end not in doc:
        raise ValueError(f"{path}: markers {start} ... {end} not found")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    write_atomic(path, (head + start + "\n" + text + end + tail).encode())


def save_grid(path: Path, grid: list[dict[str, np.ndarray]], height: int = 160) -> None:
    """One row per image: gray | each model | truth, labelled."""
    rows = []
    for cells in grid:
        tiles = []
        for label, rgb in [(GRAY, cells[GRAY])] + [(k, v) for k, v in cells.items() if k not in (GRAY, "truth")] \
                + [("truth", cells["truth"])]:
            w = round(rgb.shape[1] * height / rgb.shape[0])
            tile = cv2.resize((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), (w, height),
                              interpolation=cv2.INTER_AREA)
            cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 2)
            cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
            tiles.append(tile)
        rows.append(np.concatenate(tiles, 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    write_atomic(path, encode_image(np.concatenate(rows, 0), None, ".png"))


def save_json(path: Path, report: dict[str, Any]) -> None:
    slim = {k: v for k, v in report.items() if k != "grid"}
    write_atomic(path, json.dumps(slim, indent=1).encode())


def save_csv(path: Path, report: dict[str, Any]) -> None:
    keys = ["psnr", "ssim", "ciede2000", "colorfulness", "colorfulness_ratio", "ms_256", "images"]
    lines = ["model," + ",".join(keys)]
    lines += [f"{n}," + ",".join(str(r.get(k, "")) for k in keys) for n, r in report["results"].items()]
    write_atomic(path, ("\n".join(lines) + "\n").encode())
