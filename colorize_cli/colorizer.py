"""The Python API: a model on a device with its options; arrays in, arrays out, files through the CLI's own stream.

    from colorize_cli import Colorizer
    c = Colorizer.from_pretrained("unet-lab", device="auto")
    rgb = c.colorize(gray)                           # numpy uint8 / uint16 / float, HxW, HxWx1, HxWx3 or HxWx4
    rgbs = c.colorize_batch([a, b, c])               # one model call per batch of render shapes
    c.colorize_file("scan.tif", "scan_colour.tif")   # decode, colorize, atomic write (raises ColorizeError)
    results = c.colorize_files(pairs)                # what `colorize dir` runs: plan, claims, workers, writer thread

`colorize dir` and `colorize image` build this same object and call colorize_files, so the CLI and the API never
drift. Arrays follow the same steps as files (engine.prepare -> Engine.chroma -> Engine.merge): the output keeps the
input's size, its exact lightness, its alpha and its sample type (uint8, uint16, or float32 for float input).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from colorize_cli import engine, pipeline
from colorize_cli.engine import Options, Precision
from colorize_cli.imaging import Decoded, from_array
from colorize_cli.pipeline import Result, Status
from colorize_cli.registry import DEFAULT_MODEL


class ColorizeError(Exception):
    """One file could not be colorized (colorize_file): the one-line reason, naming the file."""


class Colorizer:
    """A loaded model, its device and precision, and the photo options (render size, tone stretch, batching)."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: str | torch.device = "auto",
        precision: str | Precision = Precision.AUTO,
        compile: bool = False,
        options: Options | None = None,
    ):
        from colorize_cli.zoo import pick_device

        dev = device if isinstance(device, torch.device) else pick_device(device)
        self.options = options or Options()
        self.options.device = str(dev)
        self.engine = engine.Engine(model, dev, precision, compile)

    @classmethod
    def from_pretrained(
        cls,
        name: str = DEFAULT_MODEL,
        device: str | torch.device = "auto",
        precision: str | Precision = Precision.AUTO,
        compile: bool = False,
        vividness: float = 1.0,
        options: Options | None = None,
        **fields: Any,
    ) -> Colorizer:
        """A shipped model by name (see list_models()) or a .safetensors file; vividness 0..2 scales a
        classification model's colour (1 as trained); `options` (or Options `fields`: render_size, batch_size,
        workers, stretch_tones, jpeg_quality, max_pixels) are the photo options."""
        from colorize_cli.zoo import load_model, pick_device

        dev = device if isinstance(device, torch.device) else pick_device(device)
        return cls(load_model(name, dev, vividness=vividness), dev, precision, compile, options or Options(**fields))

    @property
    def device(self) -> torch.device:
        return self.engine.device

    # ------------------------------------------------------------------------------------------------ arrays
    def colorize(self, image: np.ndarray) -> np.ndarray:
        """One image array -> RGB (RGBA when it had alpha) of the same size and sample type."""
        return self.colorize_batch([image])[0]

    def colorize_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Several arrays, the network run on them together (in chunks that suit the device)."""
        decoded = [from_array(a, f"image {k}") for k, a in enumerate(images)]
        prepared = [engine.prepare(d, self.options) for d in decoded]
        chromas: dict[int, torch.Tensor] = {}
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for k, (_, small) in enumerate(prepared):  # one call per render shape: nothing padded, as in the CLI
            by_shape.setdefault(small.shape, []).append(k)
        for ks in by_shape.values():
            chromas.update(zip(ks, self.engine.chroma([torch.from_numpy(prepared[k][1]) for k in ks])))
        return [self._finish(decoded[k], np.asarray(images[k]), prepared[k][0], chromas[k]) for k in range(len(images))]

    def _finish(self, d: Decoded, original: np.ndarray, lum: np.ndarray, ab: torch.Tensor) -> np.ndarray:
        dtype = original.dtype.type if original.dtype in (np.uint8, np.uint16) else np.float32
        rgb, _ = self.engine.merge(torch.from_numpy(lum), ab, dtype)
        if d.alpha is None:
            return rgb
        top = 1.0 if dtype == np.float32 else float(np.iinfo(original.dtype).max)
        alpha = d.alpha if dtype == np.float32 else np.rint(d.alpha * top).astype(dtype)
        return np.dstack([rgb, alpha])

    # ------------------------------------------------------------------------------------------------- files
    def colorize_file(self, src: str | Path, dst: str | Path, overwrite: bool = True) -> Path:
        """Colorize one file into `dst` (format by its extension), written atomically. Raises ColorizeError."""
        result = self.colorize_files([(Path(src), Path(dst))], overwrite=overwrite)[0]
        if result.status == Status.FAILED:
            raise ColorizeError(result.error)
        if result.status == Status.CLAIMED:
            raise ColorizeError(f"{dst}: claimed by another run that is making it now")
        return Path(dst)

    def colorize_files(
        self,
        pairs: Sequence[tuple[Path, Path]],
        overwrite: bool = False,
        shard: tuple[int, int] | None = None,
        rel: Callable[[Path], str] = lambda p: p.name,
        journal: Any = None,
        quiet: bool = True,
    ) -> list[Result]:
        """(input, output) pairs through the stream `colorize dir` runs: outputs on inputs refused, existing ones
        skipped unless overwrite, claims against overlapping runs, decoding in workers, a writer thread. One Result
        per pair; nothing raised for a bad file."""
        from colorize_cli.batch import plan

        jobs, settled = plan([(Path(s), Path(d)) for s, d in pairs], overwrite, shard, rel, journal)
        return self.run_planned(jobs, settled, overwrite, journal, quiet)

    def run_planned(
        self,
        jobs: list[tuple[Path, Path]],
        settled: list[Result],
        overwrite: bool = False,
        journal: Any = None,
        quiet: bool = True,
    ) -> list[Result]:
        """The work batch.plan left to do; every Result, settled ones first."""
        self.options.overwrite = overwrite
        if not jobs:
            return list(settled)
        return pipeline.run_jobs(jobs, settled, self.engine, self.options, quiet, journal)
