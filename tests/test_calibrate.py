"""unet-lab's readout calibration (models/unet_lab.py's bin_bias, colorize_cli/calibrate.py): zero by default, an
offset on the readout's log-odds, kept in the weights file, and a fit that lowers the error it is fitted on without
buying it with gray."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from colorize_cli import calibrate, registry
from colorize_cli.cli import app
from colorize_cli.weights import load_weights, save_weights
from colorize_cli.zoo import load_model
from tests.conftest import TRAIN, pick

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def unet():
    torch.manual_seed(0)
    model = registry.create_model("unet-lab", pretrained_backbone=False).eval()
    model.class_weights.copy_(torch.linspace(0.3, 3.0, len(model.bins)))
    return model


def test_the_offset_is_added_to_the_readouts_log_odds(unet):
    raw = torch.randn(2, len(unet.bins), 5, 7)
    plain = unet.readout(raw)
    assert torch.count_nonzero(unet.bin_bias) == 0
    offset = torch.randn(len(unet.bins))
    unet.bin_bias.copy_(offset)
    shifted = unet.readout(raw)
    assert not torch.allclose(shifted, plain, atol=1e-2)
    unet.bin_bias.zero_()
    assert torch.allclose(shifted, unet.readout(raw + offset[None, :, None, None]), atol=1e-4)


def test_weights_without_the_offset_load_as_uncalibrated_and_an_offset_round_trips(unet, tmp_path: Path):
    old = tmp_path / "old.safetensors"
    save_weights(old, {k: v for k, v in unet.own_state().items() if k != "bin_bias"}, {"architecture": "unet-lab"})
    assert torch.count_nonzero(load_model(str(old)).bin_bias) == 0
    unet.bin_bias.copy_(torch.linspace(-1, 1, len(unet.bins)))
    new = tmp_path / "new.safetensors"
    save_weights(new, unet.own_state(), {"architecture": "unet-lab"})
    assert torch.allclose(load_model(str(new)).bin_bias, unet.bin_bias, atol=1e-3)


def _cells(unet, n: int = 4000, seed: int = 0) -> calibrate.Cells:
    """Cells whose truth is always the bin the network ranks second: the plain readout is wrong, an offset fixes it."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, len(unet.bins), generator=gen) * 2
    truth = unet.bins[logits.topk(2, dim=1).indices[:, 1]]
    return calibrate.Cells(logits.half(), truth)


def test_the_fit_lowers_the_error_and_keeps_the_colour(unet):
    data = _cells(unet)
    unet.bin_bias.fill_(5.0)  # a stale offset is reset before fitting
    cal = calibrate.fit(unet, data, steps=150)
    assert cal.error_after < cal.error_before - 0.5, cal
    assert cal.chroma_after > cal.chroma_before * 0.97, cal  # accuracy not bought with gray
    assert torch.equal(unet.bin_bias, cal.bias) and torch.count_nonzero(cal.bias) > 0
    held_out = _cells(unet, seed=1)  # same rule, new cells: the offset generalises
    after = calibrate._measure(unet, held_out)[0]
    unet.bin_bias.zero_()
    assert after < calibrate._measure(unet, held_out)[0] - 0.5


def test_colorize_calibrate_fits_on_training_photos_and_writes_calibrated_weights(tmp_path: Path):
    """The command on real colour photos: weights with the offset and its record; the model it read untouched."""
    data = tmp_path / "train"
    data.mkdir()
    for src in pick(TRAIN, 30, "car_*") + pick(TRAIN, 30, "sky_*"):
        shutil.copy(src, data / src.name)
    out = tmp_path / "calibrated.safetensors"
    args = ["calibrate", "unet-lab", "--data", str(data), "-o", str(out), "--every", "1", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    tensors, meta = load_weights(out)
    assert tensors["bin_bias"].abs().max() > 0
    record = meta["calibration"]
    assert record["every"] == 1 and record["error_after"] < record["error_before"]
    assert torch.count_nonzero(load_model("unet-lab").bin_bias) == 0  # the shipped weights are as they were
