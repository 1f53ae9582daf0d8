"""Weights as safetensors with metadata and integrity checks; checkpoints through torch.load(weights_only=True) only.

A weights file carries its architecture name, colour space, training data, step and metrics in the safetensors header,
and a sha256 of its tensor payload, so a truncated or tampered file is refused before any tensor reaches a model.
Shipped files are also listed with their whole-file sha256 in weights/SHA256SUMS.txt.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

SUMS_FILE = "SHA256SUMS.txt"


def _weights_dir() -> Path:
    """$COLORIZE_WEIGHTS_DIR, else the checkout's weights/ (a source tree or editable install), else the copy an
    installed wheel carries as the package data of colorize_cli._weights (pyproject.toml), wherever it was installed."""
    if os.environ.get("COLORIZE_WEIGHTS_DIR"):
        return Path(os.environ["COLORIZE_WEIGHTS_DIR"])
    checkout = Path(__file__).resolve().parent.parent / "weights"
    if checkout.is_dir():
        return checkout
    from importlib.resources import files

    return Path(str(files("colorize_cli").joinpath("_weights")))  # wheels install unzipped: a real folder


WEIGHTS_DIR = _weights_dir()


class WeightsError(Exception):
    """A weights or checkpoint file that cannot be used; the message is one line naming the file."""


def _payload_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].contiguous().cpu()
        h.update(key.encode())
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights(path: Path, state: dict[str, torch.Tensor], meta: dict[str, Any], half: bool = True) -> None:
    """Write state (floats in fp16 when half) with metadata, atomically."""
    from safetensors.torch import save_file

    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu() for k, v in state.items()}
    header = {k: json.dumps(v) for k, v in meta.items()}  # every value JSON, so strings round-trip unchanged
    header["payload_sha256"] = json.dumps(_payload_digest(tensors))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; weights are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_metadata(path: Path) -> dict[str, Any]:
    """The header metadata only (cheap: no tensors are read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as e:  # safetensors raises several types for a damaged header
        raise WeightsError(f"{path}: not a valid safetensors file ({e})") from None
    return {k: _maybe_json(v) for k, v in raw.items()}


def _maybe_json(v: str) -> Any:
    try:
        return json.loads(v)
    except ValueError:
        return v


def load_weights(path: Path, expect_arch: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a weights file; raise WeightsError with a one-line reason on any problem."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    _check_listed_sum(path)
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except Exception as e:
        raise WeightsError(f"{path}: damaged weights file ({e})") from None
    if meta.get("payload_sha256") != _payload_digest(tensors):
        raise WeightsError(f"{path}: sha256 of the tensors does not match the header: file damaged or tampered with")
    if expect_arch and meta.get("architecture") != expect_arch:
        raise WeightsError(f"{path}: holds architecture {meta.get('architecture')!r}, not {expect_arch!r}")
    return tensors, meta


def _check_listed_sum(path: Path) -> None:
    """Files listed in their folder's SHA256SUMS.txt must match it byte for byte."""
    sums = path.parent / SUMS_FILE
    if not sums.is_file():
        return
    listed = {}
    for line in sums.read_text().splitlines():
        fields = line.split(maxsplit=1)
        if len(fields) == 2:  # "<sha256>  <name>" or "<sha256> *<name>"
            listed[fields[1].lstrip("*")] = fields[0]
    want = listed.get(path.name)
    if want and want != file_sha256(path):
        raise WeightsError(f"{path}: sha256 differs from {SUMS_FILE}: file damaged or tampered with")


def update_sums(folder: Path) -> None:
    """Rewrite folder/SHA256SUMS.txt for every .safetensors in it."""
    lines = [f"{file_sha256(p)}  {p.name}" for p in sorted(folder.glob("*.safetensors"))]
    (folder / SUMS_FILE).write_text("\n".join(lines) + "\n")


Tensors = dict[str, torch.Tensor]


def blend_states(tuned: Tensors, base: Tensors, share: float) -> Tensors:
    """share * tuned + (1 - share) * base for every floating tensor (BatchNorm statistics too); integer tensors
    (batch counters) and scalar readout settings are the tuned model's. A fine-tune and the weights it started from
    lie in one basin, so the straight line between them keeps most of the fine-tune's gain on its own data and the
    start's robustness elsewhere (WiSE-FT, Wortsman et al. 2022)."""
    missing = [k for k, v in tuned.items() if v.is_floating_point() and (k not in base or base[k].shape != v.shape)]
    if missing:
        raise WeightsError(f"the blend's base does not fit: {len(missing)} tensors differ or are absent ({missing[0]})")
    return {
        k: torch.lerp(base[k].float(), v.float(), share) if v.is_floating_point() and v.ndim else v
        for k, v in tuned.items()
    }


def shipped_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Training checkpoints: torch.load with weights_only=True, so a hostile pickle cannot run code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: checkpoint not found") from None
    except Exception as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise WeightsError(f"{path}: not a safe checkpoint ({reason})") from None
