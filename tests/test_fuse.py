"""models/fuse.py: the inference copy the Engine runs computes what the trained network computes, with its BatchNorms
and EfficientNet's padding folded into the convolutions, and the caller's model untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from colorize_cli import engine, registry
from colorize_cli.models.fuse import fused
from colorize_cli.zoo import load_model
from tests.conftest import VAL, pick

pytestmark = pytest.mark.usefixtures("one_thread")


def _trained_looking(name: str) -> nn.Module:
    """An architecture with BatchNorm statistics and affine terms away from their defaults, as after training (the
    defaults, mean 0 and variance 1, would fold into nothing and test nothing)."""
    torch.manual_seed(0)
    model = registry.create_model(name, pretrained_backbone=False)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("name", registry.list_models())
def test_fused_copy_computes_the_same_and_leaves_the_model_alone(name: str):
    model = _trained_looking(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = fused(model.train())
    assert model.training, "the caller's model keeps its mode"
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    model.eval()
    lum = torch.rand(2, 1, 96, 160)
    with torch.inference_mode():
        want, got = model(lum), fast(lum)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max())), float((got - want).abs().max())
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    left = sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    if name == "unet-lab":  # every BatchNorm of the default follows a convolution, and every padding is foldable
        assert bns > 40 and left == 0
        assert not any(hasattr(m, "static_padding") for m in fast.modules())
    assert left <= bns


@pytest.mark.parametrize("shape", [(1, 1, 97, 131), (3, 1, 192, 256)])
def test_asymmetric_same_padding_becomes_a_wider_kernel(shape: tuple[int, ...]):
    """EfficientNet's stride-2 layers pad one more zero after than before; the fused copy reads the same pixels with
    a kernel one wider whose first tap is zero, at odd and even input sizes alike."""
    model = _trained_looking("unet-lab")
    stem = fused(model).stem[0]
    assert type(stem) is nn.Conv2d and stem.kernel_size == (4, 4) and stem.padding == (1, 1)
    assert torch.equal(stem.weight[:, :, 0], torch.zeros_like(stem.weight[:, :, 0]))
    x = torch.rand(*shape).expand(-1, 3, -1, -1)
    with torch.inference_mode():
        assert torch.allclose(stem(x), model.stem[1](model.stem[0](x)), atol=1e-5)


def test_engine_output_matches_the_unfused_model_within_one_level():
    """The Engine runs the fused copy; its 8-bit output is within 1 level of the trained network's own chroma."""
    model = load_model("unet-lab")
    eng = engine.Engine(model, torch.device("cpu"), "fp32")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 40  # the loaded model is not the copy
    for path in pick(VAL, 2, "cbsd68_*.png"):
        from colorize_cli.imaging import read_image

        lum, small = engine.prepare(read_image(path), engine.Options())
        small_t = torch.from_numpy(small)
        got = eng.chroma([small_t])[0]
        with torch.inference_mode():
            want = model.chroma(small_t[None, None].contiguous())[0]
        out_got, _ = eng.merge(torch.from_numpy(lum), got, np.uint8)
        out_want, _ = eng.merge(torch.from_numpy(lum), want, np.uint8)
        assert np.abs(out_got.astype(int) - out_want.astype(int)).max() <= 1
