"""Inference-only rewrites of a trained network that leave its function unchanged (to float rounding): each
BatchNorm folded into the convolution before it, EfficientNet's "same" zero padding moved into the convolution
itself, and activations after a convolution done in place. On a CPU these cut the default network's time per image
by about 30% (26 -> 18 ms at 192x192, batch 8, 2 threads); the model's code and weights files stay as trained."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# EfficientNet's MBConvBlock calls these (conv, BatchNorm) attribute pairs one after the other in its forward.
_BLOCK_PAIRS = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))
# Activations that may overwrite their input; done where that input is a convolution's output no one else reads
# (5% of the fused network's time at 2 threads: no new tensor per layer).
_CLAMPS = (nn.ReLU, nn.ReLU6, nn.Hardtanh)


def fused(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with every Conv2d -> BatchNorm2d pair folded and symmetric static padding
    absorbed; the model passed in is not changed (it may go on training)."""
    out = copy.deepcopy(model).eval()
    for module in list(out.modules()):
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
        elif all(hasattr(module, conv) and hasattr(module, bn) for conv, bn in _BLOCK_PAIRS[1:]):
            _fold_block(module)
    for name, module in list(out.named_modules()):
        if (conv := _unpadded(module)) is not None:
            _replace(out, name, conv)
    return out


def _fold_sequential(seq: nn.Sequential) -> None:
    names = list(seq._modules)
    for first, second in zip(names, names[1:]):
        if (conv := _folded(seq._modules[first], seq._modules[second])) is not None:
            seq._modules[first], seq._modules[second] = conv, nn.Identity()
    after_conv = False  # what flows here is a convolution's fresh output, which nothing else reads
    for name in names:
        module = seq._modules[name]
        if after_conv and isinstance(module, _CLAMPS):
            module.inplace = True
        after_conv = isinstance(module, nn.Conv2d) or (after_conv and isinstance(module, (nn.Identity, *_CLAMPS)))


def _fold_block(block: nn.Module) -> None:
    for conv_name, bn_name in _BLOCK_PAIRS:
        if (conv := _folded(getattr(block, conv_name, None), getattr(block, bn_name, None))) is not None:
            setattr(block, conv_name, conv)
            setattr(block, bn_name, nn.Identity())
    if isinstance(block_act := getattr(block, "_swish", None), _CLAMPS):
        block_act.inplace = True  # the block applies it only to its convolutions' fresh outputs


def _folded(conv: nn.Module | None, bn: nn.Module | None) -> nn.Conv2d | None:
    """The conv with the BatchNorm after it folded in (fuse_conv_bn_eval keeps the conv's class, and with it
    EfficientNet's padding module), or None when the pair is not a Conv2d and its BatchNorm2d."""
    if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
        return None
    if not bn.track_running_stats or bn.num_features != conv.out_channels:
        return None
    with torch.no_grad():
        return fuse_conv_bn_eval(conv, bn)


def _unpadded(module: nn.Module) -> nn.Conv2d | None:
    """A plain Conv2d doing what an EfficientNet Conv2dStaticSamePadding does, when its zero padding is the same on
    both sides of each axis (every stride-1 convolution); None for any other module."""
    pad = getattr(module, "static_padding", None)
    if not isinstance(module, nn.Conv2d) or pad is None or type(module) is nn.Conv2d:
        return None
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
    elif type(pad).__name__ == "Identity":
        left = right = top = bottom = 0
    else:
        return None
    if module.padding not in ((0, 0), 0) or module.dilation != (1, 1):
        return None
    # One more zero after than before (a stride-2 layer on an even size): a kernel one wider, its first tap zero, and
    # the larger padding on both sides reads exactly the same pixels, without copying the input into a padded one.
    weight = module.weight.detach()
    if (right, bottom) == (left + 1, top + 1):
        weight = F.pad(weight, (1, 0, 1, 0))
        left, top = right, bottom
    elif (right, bottom) != (left, top):
        return None
    conv = nn.Conv2d(
        module.in_channels,
        module.out_channels,
        tuple(weight.shape[-2:]),  # type: ignore[arg-type]
        module.stride,  # type: ignore[arg-type]
        (top, left),
        groups=module.groups,
        bias=module.bias is not None,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        if module.bias is not None and conv.bias is not None:
            conv.bias.copy_(module.bias)
    return conv.to(weight.device, weight.dtype).eval()


def _replace(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
