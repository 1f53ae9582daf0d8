"""`colorize eval`: colour ground truth -> gray input -> the same stream as `colorize dir` -> metrics per model,
with the gray baseline (output = input) beside every figure so each number has its reference.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np
import torch

from colorize_cli import metrics, pipeline
from colorize_cli.imaging import encode_image, write_atomic
from colorize_cli.models.fuse import fused

if TYPE_CHECKING:
    from colorize_cli.classifier import Classifier
    from colorize_cli.models.base import ColorModel

GRAY = "gray (input)"
KEYS = ("psnr", "ssim", "ciede2000", "colorfulness")
AGREE = "classifier_agreement"  # share of images whose top-1 ImageNet class is the truth's
VS_GRAY = "classifier_vs_gray"  # the same, photo by photo against gray's: is the difference more than chance?


def prefix(path: Path) -> str:
    """The file-name prefix up to the first "_" (train/'s groups: face_..., house_...); the stem if it has none."""
    return path.name.split("_", 1)[0] if "_" in path.name else path.stem


@dataclass
class Scores:
    rows: list[dict[str, float]] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def add(self, pred: np.ndarray, truth: np.ndarray, group: str = "", agrees: bool | None = None) -> None:
        row = metrics.image_metrics(quantize8(pred), truth)
        if agrees is not None:
            row[AGREE] = float(agrees)
        self.rows.append(row)
        self.groups.append(group)

    def summary(self, truth_colorfulness: float, group: str | None = None) -> dict[str, float]:
        """Means over every image, or over one group's."""
        rows = [r for r, g in zip(self.rows, self.groups) if group is None or g == group]
        keys = KEYS + ((AGREE,) if rows and AGREE in rows[0] else ())
        out = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        out["colorfulness_ratio"] = out["colorfulness"] / max(1e-9, truth_colorfulness)
        out["images"] = len(rows)
        return out


def is_gray(rgb: np.ndarray, tol: float = 0.01) -> bool:
    """A "ground truth" whose channels are equal has no colour to recover (and the gray baseline would score a
    perfect, infinite PSNR on it): such images are left out of the figures and listed instead."""
    return float(np.abs(rgb - rgb.mean(2, keepdims=True)).max()) < tol


def quantize8(rgb: np.ndarray) -> np.ndarray:
    """What a user gets from an 8-bit output file."""
    return np.round(np.clip(rgb, 0, 1) * 255) / 255


@torch.inference_mode()
def network_ms(model: ColorModel, runs: int = 10, size: int = 256, fuse: bool = True) -> float:
    """Median ms of one size x size image through the network as the Engine runs it (fused, channels_last, batch 1,
    on the model's device): the same input for every model, so the speed column compares architectures, not the test
    images' shapes. fuse False: the network as trained (benchmarks/speed.py's side-by-side of the two)."""
    dev = next(model.parameters()).device
    net = (fused(model) if fuse else model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub lacks the keyword
    lum = torch.rand(1, 1, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(runs + 2):  # two warm-up calls pay lazy initialisation out of the figure
        t0 = time.perf_counter()
        net.chroma(lum)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times[2:]))


@dataclass
class _Tally:
    """What evaluate() gathers while the models' streams run: scores per model and for the gray baseline, the truth's
    colourfulness and classes, the images left out (gray truth, unreadable) and the grid's pictures."""

    scores: dict[str, Scores]
    classifier: Classifier | None
    grid_count: int
    gray: Scores = field(default_factory=Scores)
    truth_cf: dict[int, float] = field(default_factory=dict)
    truth_class: dict[int, int] = field(default_factory=dict)
    skipped: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)  # unreadable truth images: left out of every row, reported
    grid: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    def agrees(self, i: int, rgb: np.ndarray) -> bool | None:
        if self.classifier is None:
            return None
        return self.classifier.top1([quantize8(rgb)])[0] == self.truth_class[i]

    def add(self, name: str, first: bool, i: int, item: pipeline.StreamItem, colorizer: pipeline.Engine, group: str):
        """One streamed image of model `name`; the first model's pass also scores the gray baseline."""
        if item.error is not None:
            self.failed[i] = item.error
            return
        if i in self.failed:
            return
        truth, out = item.rgb, item.rgb_out
        assert truth is not None and out is not None and item.lum is not None  # keep_input, merged
        if first and is_gray(truth):
            self.skipped.add(i)
        if i in self.skipped:
            return
        if first:
            if self.classifier is not None:
                self.truth_class[i] = self.classifier.top1([truth])[0]
            g, _ = colorizer.merge(item.lum, torch.zeros(2, *item.lum.shape))
            self.gray.add(g, truth, group, self.agrees(i, g))
            self.truth_cf[i] = metrics.colorfulness(truth)
            if i < self.grid_count:
                self.grid[i] = {GRAY: g, "truth": truth}
        self.scores[name].add(out, truth, group, self.agrees(i, out))
        if i < self.grid_count:
            self.grid[i][name] = out


def evaluate(
    files: list[Path],
    models: dict[str, ColorModel],
    opts: pipeline.Options,
    grid_count: int = 0,
    classifier: Classifier | None = None,
    group_by: Callable[[Path], str] | None = None,
) -> dict[str, Any]:
    """Metrics per model and for the gray baseline (with the classifier's agreement when one is given, and per
    group of files when group_by names each file's, e.g. prefix); grid_count first images kept for a grid."""
    opts.keep_input = True
    device = torch.device(opts.device) if opts.device != "auto" else None
    t = _Tally({name: Scores() for name in models}, classifier, grid_count)
    for idx, (name, model) in enumerate(models.items()):
        colorizer = pipeline.Engine(model, device or next(model.parameters()).device)
        for i, item in pipeline.stream(files, colorizer, opts):
            t.add(name, idx == 0, i, item, colorizer, group_by(files[i]) if group_by else "")
    cf = float(np.mean(list(t.truth_cf.values())))
    report = {
        "data": str(files[0].parent) if files else "",
        "images": len(files) - len(t.skipped) - len(t.failed),
        "skipped_gray": [files[i].name for i in sorted(t.skipped)],
        "failed": [t.failed[i] for i in sorted(t.failed)],
        "render_size": opts.render_size,
        "truth_colorfulness": cf,
        "results": _rows(models, t.gray, t.scores, cf),
        "timed_on": timed_on(models),
        "grid": [t.grid[i] for i in sorted(t.grid)],
    }
    if group_by is not None:
        report["groups"] = group_summaries(t.gray, t.scores, t.truth_cf)
    return report


def add_weights_sizes(report: dict[str, Any], names: list[str]) -> None:
    """Each model's weights file size (MB) into its row of the report, for the tables."""
    from colorize_cli.zoo import weights_for

    for m in names:
        report["results"][m]["weights_mb"] = weights_for(m).stat().st_size / 1e6


def mcnemar_p(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p: the chance that two judges right equally often split their disagreements at
    least this unevenly (a binomial test on the discordant photos)."""
    n, k = only_a + only_b, min(only_a, only_b)
    return min(1.0, 2 * sum(math.comb(n, j) for j in range(k + 1)) / 2**n) if n else 1.0


@dataclass(frozen=True)
class Paired:
    """A model's classifier agreement against gray's on the same photos: those only its colour keeps in the truth's
    class, those only gray keeps, and McNemar's p, so a gap of a few photos is not read as a finding."""

    only_model: int
    only_gray: int
    p: float


def paired_with_gray(gray: Scores, model: Scores) -> Paired | None:
    if not gray.rows or AGREE not in gray.rows[0]:
        return None
    pairs = [(m[AGREE], g[AGREE]) for m, g in zip(model.rows, gray.rows, strict=True)]  # the same photos, in order
    only_model, only_gray = sum(m > g for m, g in pairs), sum(g > m for m, g in pairs)
    return Paired(only_model, only_gray, mcnemar_p(only_model, only_gray))


def _rows(models: dict[str, ColorModel], gray: Scores, scores: dict[str, Scores], cf: float) -> dict[str, Any]:
    """The table: the gray baseline, then each model's scores with its size and network time."""
    results: dict[str, dict[str, Any]] = {GRAY: gray.summary(cf)}
    for name, model in models.items():
        results[name] = {
            **scores[name].summary(cf),
            "params": sum(p.numel() for p in model.parameters()),
            "ms_256": network_ms(model),
        }
        paired = paired_with_gray(gray, scores[name])
        if paired is not None:
            results[name][VS_GRAY] = asdict(paired)
    return results


def group_summaries(gray: Scores, scores: dict[str, Scores], truth_cf: dict[int, float]) -> dict[str, Any]:
    """Every figure again per group; the colourfulness ratio is to the group's own truth."""
    out = {}
    cfs = list(truth_cf.values())  # in the order gray's rows were added
    for group in sorted(set(gray.groups)):
        cf = float(np.mean([c for c, g in zip(cfs, gray.groups) if g == group]))
        out[group] = {
            "images": gray.groups.count(group),
            "truth_colorfulness": cf,
            "results": {GRAY: gray.summary(cf, group), **{name: s.summary(cf, group) for name, s in scores.items()}},
        }
    return out


def timed_on(models: dict[str, ColorModel]) -> str:
    """Where the speed column was measured, e.g. "cpu, 2 threads": a ms figure means nothing without it."""
    devs = sorted({str(next(m.parameters()).device) for m in models.values()})
    return ", ".join(devs) + (f", {torch.get_num_threads()} threads" if devs == ["cpu"] else "")


def _agreement(r: dict[str, float]) -> str:
    return f"{r[AGREE]:.2f}" if AGREE in r else "-"


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """Rows for the terminal and README tables."""
    rows = []
    for name, r in report["results"].items():
        ms = f"{r['ms_256']:.0f}" if "ms_256" in r else "-"
        params = f"{r['params'] / 1e6:.1f}M" if "params" in r else "-"
        size = f"{r['weights_mb']:.1f}" if "weights_mb" in r else "-"
        rows.append(
            [
                name,
                params,
                size,
                f"{r['psnr']:.2f}",
                f"{r['ssim']:.4f}",
                f"{r['ciede2000']:.2f}",
                f"{r['colorfulness']:.1f} ({r['colorfulness_ratio']:.2f})",
                _agreement(r),
                ms,
            ]
        )
    return rows


HEADERS = [
    "model",
    "params",
    "weights MB",
    "PSNR dB",
    "SSIM",
    "CIEDE2000",
    "colourfulness (ratio to truth)",
    "classifier agrees with truth",
    "ms per 256x256",
]
GROUP_HEADERS = [
    "group",
    "images",
    "model",
    "PSNR dB",
    "SSIM",
    "CIEDE2000",
    "colourfulness ratio",
    "classifier agrees with truth",
]


def group_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per group and model (gray first in each group), for the per-prefix table."""
    rows = []
    for group, g in report.get("groups", {}).items():
        for name, r in g["results"].items():
            rows.append(
                [
                    group,
                    str(g["images"]),
                    name,
                    f"{r['psnr']:.2f}",
                    f"{r['ssim']:.4f}",
                    f"{r['ciede2000']:.2f}",
                    f"{r['colorfulness_ratio']:.2f}",
                    _agreement(r),
                ]
            )
    return rows


def markdown_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def p_text(p: float) -> str:
    """A p-value as a reader needs it: two decimals, and under 0.01 one significant digit, not a bare 0.00."""
    return f"{p:.2f}" if p >= 0.01 else f"{p:.1g}"


def paired_note(report: dict[str, Any]) -> str:
    """One sentence: each model's classifier agreement against gray's photo by photo ("" without the classifier)."""
    pairs = [(name, r[VS_GRAY]) for name, r in report["results"].items() if VS_GRAY in r]
    if not pairs:
        return ""
    each = "; ".join(f"{name} {v['only_model']} / {v['only_gray']} (p {p_text(v['p'])})" for name, v in pairs)
    return (
        "Classifier against gray, photo by photo (photos only the model's colour keeps in the truth's class / only "
        f"gray keeps; McNemar's exact p): {each}."
    )


def markdown(report: dict[str, Any], command: str) -> str:
    lines = markdown_table(HEADERS, table_rows(report))
    if note := paired_note(report):
        lines += ["", note]
    if report.get("groups"):
        lines += ["", "By file-name prefix (colourfulness ratio to the group's own truth):", ""]
        lines += markdown_table(GROUP_HEADERS, group_rows(report))
    skipped = report.get("skipped_gray") or []
    note = f" ({len(skipped)} grayscale ground truths left out: {', '.join(skipped)})" if skipped else ""
    return (
        f"Made by `{command}` on {report['images']} images{note} at render size {report['render_size']}; "
        f"ground-truth colourfulness {report['truth_colorfulness']:.1f}; classifier: share of images whose top-1 "
        f"ImageNet class (EfficientNet-Lite0) on the output is the one on the truth; ms per 256x256 image: the "
        f"network alone, batch 1, on {report.get('timed_on', '?')}.\n\n" + "\n".join(lines) + "\n"
    )


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
        for label, rgb in (
            [(GRAY, cells[GRAY])]
            + [(k, v) for k, v in cells.items() if k not in (GRAY, "truth")]
            + [("truth", cells["truth"])]
        ):
            w = round(rgb.shape[1] * height / rgb.shape[0])
            tile = cv2.resize(
                (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), (w, height), interpolation=cv2.INTER_AREA
            )
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
    keys = ["psnr", "ssim", "ciede2000", "colorfulness", "colorfulness_ratio", AGREE, "ms_256", "images"]
    lines = ["group,model," + ",".join(keys)]
    sets = [("", report["results"])] + [(g, v["results"]) for g, v in report.get("groups", {}).items()]
    lines += [f"{g},{n}," + ",".join(str(r.get(k, "")) for k in keys) for g, res in sets for n, r in res.items()]
    write_atomic(path, ("\n".join(lines) + "\n").encode())
