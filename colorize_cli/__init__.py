"""colorize_cli: colour for black-and-white photographs and film, from the command line and from Python.

    from colorize_cli import Colorizer
    rgb = Colorizer.from_pretrained().colorize(gray)  # the default model; or a name, e.g. "unet-lab"

Names are imported on first use, so `colorize --help` does not wait for torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Colorizer", "ColorizeError", "list_models", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Colorizer", "ColorizeError"):
        from colorize_cli import colorizer

        return getattr(colorizer, name)
    if name == "list_models":
        from colorize_cli.zoo import available_models

        return available_models
    raise AttributeError(f"module 'colorize_cli' has no attribute {name!r}")
