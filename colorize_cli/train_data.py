"""What training reads: which photos (held-out split, colour check in workers, group balance), the crops made from
them, the seeded epoch order, and the ab prior of classification models. Every draw is seeded by (seed, epoch, index),
so `--resume` continues bit-for-bit (train.py)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from colorize_cli import color
from colorize_cli.folders import iter_images
from colorize_cli.imaging import ImageError, read_image
from colorize_cli.models.base import ColorModel

GRAY_CHROMA = 4.0  # mean |ab| below this: the "colour" photo is gray or near-gray and teaches nothing
# With keep_muted, only photos of one hue at most are dropped (grayscale, sepia or other toning): the spread of ab
# across that hue (the smaller principal axis) stays under this on a 64x64 copy. Muted colour photos (overcast streets,
# concrete, dark clothes: 12% of train/) are kept; 0.2% of train/ fall under it, synthetic sepia of val/ mostly does.
HUE_SPREAD = 0.75


def split_files(root: Path, val_percent: float) -> tuple[list[Path], list[Path]]:
    """Hold out files by a hash of their relative path: stable as the folder grows."""
    train: list[Path] = []
    val: list[Path] = []
    for p in iter_images(root, recursive=True):
        h = int(hashlib.sha1(str(p.relative_to(root)).encode()).hexdigest()[:8], 16) % 10000
        (val if h < val_percent * 100 else train).append(p)
    return train, val


def _decode_rgb(path: Path) -> np.ndarray | None:
    """Float RGB 0..1 through the same safe reader as the CLI (EXIF, 16-bit, size guard); None if unreadable."""
    try:
        return read_image(path).rgb
    except ImageError:
        return None


def _small_ab(rgb: np.ndarray) -> np.ndarray:
    small = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2Lab)[..., 1:].reshape(-1, 2).astype(np.float64)


def chroma_level(rgb: np.ndarray) -> float:
    """Mean |ab| of a small copy: how colourful a photo is."""
    return float(np.abs(_small_ab(rgb)).mean())


def hue_spread(rgb: np.ndarray) -> float:
    """Standard deviation of a small copy's ab along its minor principal axis: near 0 when every pixel has one hue
    (gray, or a sepia-like toning whose chroma follows the lightness), larger once two hues appear, however muted."""
    return float(np.sqrt(max(0.0, np.linalg.eigvalsh(np.cov(_small_ab(rgb).T))[0])))


class _ScanSet(Dataset):
    def __init__(self, files: list[Path], keep_muted: bool):
        self.files, self.keep_muted = files, keep_muted

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> bool | None:
        """Whether the photo has colour to teach; None if unreadable."""
        rgb = _decode_rgb(self.files[i])
        if rgb is None:
            return None
        return hue_spread(rgb) >= HUE_SPREAD if self.keep_muted else chroma_level(rgb) >= GRAY_CHROMA


def keep_colour(files: list[Path], workers: int, keep_muted: bool = False) -> tuple[list[Path], int, int]:
    """Drop unreadable and gray images (decoded in workers): near-gray by mean chroma, or with keep_muted only those of
    a single hue; returns kept files and the two counts dropped."""
    verdicts = list(DataLoader(_ScanSet(files, keep_muted), batch_size=None, num_workers=workers))
    kept = [f for f, ok in zip(files, verdicts) if ok]
    return kept, sum(v is None for v in verdicts), sum(v is False for v in verdicts)


def group_weights(files: list[Path], balance: float, factors: Mapping[str, float] | None = None) -> torch.Tensor | None:
    """Per-file sampling weights that give each file-name group (evaluate.prefix) a share of size ** balance, times
    its factor (groups not named: 1); None when every photo is drawn alike. 0.5 lets faces and houses be seen beside
    scenes without repeating a small group's photos too often; a factor keeps a group at the share it needs (the
    ImageNet part beside newly added groups, say). A factor for a group with no photo is a typo: ValueError."""
    factors = factors or {}
    if balance == 1.0 and all(f == 1.0 for f in factors.values()):
        return None
    from colorize_cli.evaluate import prefix

    groups = [prefix(f) for f in files]
    sizes = Counter(groups)
    if missing := sorted(set(factors) - set(sizes)):
        raise ValueError(f"--group-weight {', '.join(missing)}: no training photo has this file-name prefix")
    return torch.tensor([sizes[g] ** (balance - 1.0) * factors.get(g, 1.0) for g in groups], dtype=torch.float64)


MIN_CROP_SHARE = 0.55  # the smallest training crop, as a share of the photo's short side


class CropSet(Dataset):
    """Random-resized crops with flips (train) or centre crops (val); indices arrive as (epoch, i) for determinism."""

    def __init__(self, files: list[Path], crop: int, seed: int, train: bool, no_enlarge: bool = False):
        self.files, self.crop, self.seed, self.train = files, crop, seed, train
        self.no_enlarge = no_enlarge  # crops of at least `crop` pixels: the network never sees upsampled softness

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, ...] | int) -> torch.Tensor:
        epoch, i, *draw = key if isinstance(key, tuple) else (0, key)  # draw: a photo drawn twice gets two crops
        rgb = _decode_rgb(self.files[i])
        if rgb is None:  # vanished or damaged since the scan: a neutral sample keeps the batch shape
            return torch.full((3, self.crop, self.crop), 0.5)
        rng = np.random.default_rng([self.seed, epoch, i, *draw])
        rgb = self._random_crop(rgb, rng) if self.train else self._centre_crop(rgb)
        return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()

    def crop_side(self, short: int, rng: np.random.Generator) -> int:
        """A random crop's side on a photo of this short side: scale jitter, so objects appear at many sizes."""
        low = min(1.0, max(MIN_CROP_SHARE, self.crop / short)) if self.no_enlarge else MIN_CROP_SHARE
        side = int(rng.uniform(low, 1.0) * short)
        return max(side, min(self.crop, short)) if self.no_enlarge else side

    def _random_crop(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = rgb.shape[:2]
        side = self.crop_side(min(h, w), rng)
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        out = cv2.resize(rgb[y : y + side, x : x + side], (self.crop, self.crop), interpolation=cv2.INTER_AREA)
        return out[:, ::-1] if rng.random() < 0.5 else out

    def _centre_crop(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        return cv2.resize(rgb[y : y + side, x : x + side], (self.crop, self.crop), interpolation=cv2.INTER_AREA)


class EpochSampler(Sampler):
    """Yields (epoch, index) forever from a per-epoch seeded permutation, from a given position, sharded by rank.
    With weights, each epoch is n seeded draws with replacement instead, yielded as (epoch, index, draw)."""

    def __init__(
        self, n: int, seed: int, start: int = 0, rank: int = 0, world: int = 1, weights: torch.Tensor | None = None
    ):
        self.n, self.seed, self.start, self.rank, self.world = n, seed, start, rank, world
        self.weights = weights

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        per_epoch = self.n // self.world
        pos = self.start
        while True:
            epoch, k = divmod(pos, per_epoch)
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            if self.weights is None:
                order = torch.randperm(self.n, generator=g)[self.rank :: self.world][:per_epoch].tolist()
                yield from ((epoch, i) for i in order[k:])
            else:
                drawn = torch.multinomial(self.weights, self.n, True, generator=g)
                draws = list(enumerate(drawn.tolist()))[self.rank :: self.world][:per_epoch]
                yield from ((epoch, i, j) for j, i in draws[k:])
            pos = (epoch + 1) * per_epoch


def fit_prior(model: ColorModel, files: list[Path], crop: int, seed: int, n: int = 512) -> None:
    """Give the model the training data's ab distribution (used by classification models for rebalancing)."""
    ds = CropSet(files[:: max(1, len(files) // n)][:n], crop, seed, train=False)
    rgb = torch.stack([ds[i] for i in range(len(ds))])
    ab = torch.nn.functional.avg_pool2d(color.rgb_to_lab(rgb)[:, 1:], 4)
    model.fit_prior(ab.permute(0, 2, 3, 1).reshape(-1, 2))
