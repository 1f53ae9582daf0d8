"""Model registry: every architecture is registered by name with the spec the pipeline and trainer need.

Adding an architecture is one file in models/ that decorates its builder with @register_model.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from colorize_cli.models.base import ColorModel


# Short side, in pixels, at which a model sees the whole scene. 192 was the most accurate of 144-256 on photos held
# out from training (benchmarks/temperature.py, benchmarks/RESULTS.md): the training crops show scenes at that scale.
DEFAULT_RENDER_SIZE = 192
# What dir, image, video, eval and the Python API run unless told otherwise: the most accurate shipped model within
# issue 24's budget (100 ms of CPU per 256x256 image); unet-lab is the fastest, and what `colorize train` trains.
DEFAULT_MODEL = "unet-lab-trio"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., ColorModel]
    color_space: str  # what the network predicts: "lab" (ab), "rgb" or "yuv"
    loss: str  # key into colorize_cli.losses.LOSSES
    description: str
    render_size: int = DEFAULT_RENDER_SIZE  # short side the network sees at inference
    train_size: int = 128  # crop size for training
    lr: float = 1e-3
    kwargs: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, **spec) -> Callable:
    """Decorator for a builder (class or function) returning a ColorModel."""

    def wrap(builder: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(name=name, builder=builder, **spec)
        return builder

    return wrap


def _load_all() -> None:
    """Import every module in models/ once so their decorators run."""
    from colorize_cli import models

    for info in pkgutil.iter_modules(models.__path__):
        importlib.import_module(f"colorize_cli.models.{info.name}")


def list_models() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; valid: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, pretrained_backbone: bool = False, **overrides) -> ColorModel:
    """Build an untrained model; pretrained_backbone loads the pip-installed ImageNet encoder where the model
    has one."""
    spec = get_spec(name)
    model = spec.builder(pretrained_backbone=pretrained_backbone, **{**spec.kwargs, **overrides})
    model.spec = spec
    return model
