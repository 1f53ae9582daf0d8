"""Training: the loop learns on real photos, resumes bit-for-bit, and exports weights the registry serves."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from colorize_cli.evaluate import prefix
from colorize_cli.losses import distillation
from colorize_cli.models import unet_lab
from colorize_cli.train import TrainConfig, Trainer
from colorize_cli.train_data import CropSet, EpochSampler, group_weights, keep_colour
from colorize_cli.train_export import Blend, export
from colorize_cli.weights import WeightsError, load_checkpoint, load_weights, read_metadata, save_weights
from colorize_cli.zoo import available_models, load_model
from tests.conftest import TRAIN, VAL, pick


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    (root / "train").mkdir()
    (root / "val").mkdir()
    for p in pick(TRAIN, 96, "*.jpg"):
        shutil.copy(p, root / "train" / p.name)
    for p in pick(VAL, 8, "cbsd68_*.png"):
        shutil.copy(p, root / "val" / p.name)
    return root / "train", root / "val"


def config(data: tuple[Path, Path], out: Path, **kw) -> TrainConfig:
    base = dict(
        data=str(data[0]),
        val=str(data[1]),
        out=str(out),
        crop=64,
        batch_size=8,
        workers=0,
        val_every=1000,
        ckpt_every=1000,
        quiet=True,
    )
    return TrainConfig(**{**base, **kw})


def test_training_improves_validation_loss(small_set, tmp_path: Path):
    trainer = Trainer(config(small_set, tmp_path, steps=160, val_every=80, warmup=20))
    before = trainer.validate()["val_loss"]
    trainer.run()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    after = rows[-1]["val_loss"]
    assert after < before * 0.97, (before, after)
    assert (tmp_path / "loss.png").is_file() and list(tmp_path.glob("val_*.png"))


def test_resume_reproduces_uninterrupted_run(small_set, tmp_path: Path):
    whole = Trainer(config(small_set, tmp_path / "a", steps=6, val_every=2))
    whole.run()
    part = Trainer(config(small_set, tmp_path / "b", steps=6, val_every=2))
    part.run(stop_at=3)  # as if killed after step 3's checkpoint
    resumed = Trainer(part.cfg, resume=load_checkpoint(tmp_path / "b" / "last.ckpt"))
    assert resumed.step == 3
    resumed.run()
    for k, v in whole.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert [r["loss"] for r in whole.history] == [r["loss"] for r in resumed.history]


def test_export_is_served_by_name_or_path(small_set, tmp_path: Path, monkeypatch):
    Trainer(config(small_set, tmp_path, steps=2)).run()
    dest = tmp_path / "mine.safetensors"
    meta = export(tmp_path / "last.ckpt", dest)
    assert meta["architecture"] == "unet-lab" and read_metadata(dest)["step"] == 2
    model = load_model(str(dest))
    with torch.inference_mode():
        ab = model.chroma(torch.rand(1, 1, 64, 48))
    assert ab.shape == (1, 2, 64, 48) and torch.isfinite(ab).all()
    export(tmp_path / "last.ckpt", dest, readout={"temperature": 0.3})  # readout chosen after training
    monkeypatch.setattr("colorize_cli.zoo.WEIGHTS_DIR", tmp_path)  # exported into the weights folder:
    monkeypatch.setattr("colorize_cli.weights.WEIGHTS_DIR", tmp_path)  # served by its name
    assert "mine" in available_models() and float(load_model("mine").temperature) > 0.29
    assert abs(float(load_model(str(dest)).temperature) - 0.3) < 1e-3 and read_metadata(dest)["temperature"] > 0.29


def test_init_fine_tunes_from_weights_and_keeps_their_prior(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "a", steps=2)).run()
    src = tmp_path / "a.safetensors"
    export(tmp_path / "a" / "last.ckpt", src, half=False)
    tuned = Trainer(config(small_set, tmp_path / "b", steps=3, init=str(src)))
    start = load_model(str(src)).state_dict()
    for k, v in tuned.model.state_dict().items():  # starts exactly at the given weights...
        assert torch.equal(v, start[k]), k
    tuned.run()
    after = tuned.model.state_dict()
    assert not torch.equal(after["head.weight"], start["head.weight"])  # ...and learns from there
    assert torch.equal(after["class_weights"], start["class_weights"])  # the readout's prior is kept
    meta = export(tmp_path / "b" / "last.ckpt", tmp_path / "b.safetensors")
    assert meta["images_seen"] == (2 + 3) * 8 and meta["init"] == str(src)  # the whole history is counted


def test_export_blends_the_checkpoint_with_its_base(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "a", steps=2)).run()
    base = tmp_path / "base.safetensors"
    export(tmp_path / "a" / "last.ckpt", base, half=False)
    Trainer(config(small_set, tmp_path / "b", steps=3, init=str(base))).run()
    export(tmp_path / "b" / "last.ckpt", tmp_path / "t.safetensors", half=False)
    tuned, _ = load_weights(tmp_path / "t.safetensors")
    start, _ = load_weights(base)
    for share in (0.0, 0.5):
        dest = tmp_path / f"blend{share}.safetensors"
        meta = export(tmp_path / "b" / "last.ckpt", dest, half=False, blend=Blend(str(base), share))
        got, _ = load_weights(dest)
        w = "head.weight"
        assert not torch.equal(tuned[w], start[w])
        torch.testing.assert_close(got[w], share * tuned[w] + (1 - share) * start[w])
        assert meta["blend"] == {"base": str(base), "share": share} and read_metadata(dest)["blend"]["share"] == share
    mid, _ = load_weights(tmp_path / "blend0.5.safetensors")
    assert torch.equal(mid["blocks.0._bn1.num_batches_tracked"], tuned["blocks.0._bn1.num_batches_tracked"])
    from typer.testing import CliRunner

    from colorize_cli.cli import app

    cli_dest = tmp_path / "cli.safetensors"
    args = ["export", str(tmp_path / "b" / "last.ckpt"), str(cli_dest), "--blend-with", str(base), "--blend", "0.25"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert read_metadata(cli_dest)["blend"] == {"base": str(base), "share": 0.25}


def test_export_refuses_a_blend_base_of_another_architecture(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "a", steps=1)).run()
    Trainer(config(small_set, tmp_path / "c", steps=1, arch="cnn-rgb")).run()
    other = tmp_path / "other.safetensors"
    export(tmp_path / "c" / "last.ckpt", other)
    with pytest.raises(WeightsError, match="not 'unet-lab'"):
        export(tmp_path / "a" / "last.ckpt", tmp_path / "x.safetensors", blend=Blend(str(other), 0.5))
    assert not (tmp_path / "x.safetensors").exists()


def test_duo_export_pairs_unet_lab_with_a_frozen_lite2_run(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "a", steps=1)).run()
    Trainer(config(small_set, tmp_path / "l", steps=2, arch="unet-lab-l", freeze_encoder=True)).run()
    first, second, dest = (tmp_path / f"{n}.safetensors" for n in ("first", "second", "duo"))
    export(tmp_path / "a" / "last.ckpt", first, half=False, readout={"temperature": 0.5, "prior_correction": 0.7})
    export(tmp_path / "l" / "last.ckpt", second, half=False)
    readout = {"prior_correction": 0.3}
    meta = export(tmp_path / "l" / "last.ckpt", dest, half=False, readout=readout, duo_with=str(first))
    assert meta["architecture"] == "unet-lab-duo" and meta["duo"]["first"] == str(first)
    tensors, _ = load_weights(dest)
    assert "second.up4.body.0.0.weight" in tensors  # the member's decoder is stored...
    assert not any(k.startswith(("second.stem.", "second.blocks.")) for k in tensors)  # ...its wheel encoder is not
    duo, a, lite2 = (load_model(str(p)) for p in (dest, first, second))
    # first's readout, then the override
    assert float(duo.temperature) == 0.5 and float(duo.prior_correction) == pytest.approx(0.3)
    lum = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(duo(lum), (a(lum) + lite2(lum)) / 2)


def test_duo_export_carries_a_member_encoder_that_was_trained(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "a", steps=1)).run()
    Trainer(config(small_set, tmp_path / "l", steps=1, arch="unet-lab-l")).run()  # encoder trained too
    first, second, dest = (tmp_path / f"{n}.safetensors" for n in ("first", "second", "duo"))
    export(tmp_path / "a" / "last.ckpt", first, half=False)
    export(tmp_path / "l" / "last.ckpt", second, half=False)
    export(tmp_path / "l" / "last.ckpt", dest, half=False, duo_with=str(first))
    tensors, _ = load_weights(dest)
    assert "second.stem.0.weight" in tensors and "second.blocks.20._bn2.running_var" in tensors
    wheel = unet_lab.wheel_encoder_state(unet_lab.LITE2)["stem.0.weight"]
    assert not torch.equal(tensors["second.stem.0.weight"], wheel)  # the trained encoder, not the wheel's
    duo, a, lite2 = (load_model(str(p)) for p in (dest, first, second))
    lum = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(duo(lum), (a(lum) + lite2(lum)) / 2)
    with pytest.raises(WeightsError, match="not 'unet-lab'"):
        export(tmp_path / "a" / "last.ckpt", tmp_path / "x.safetensors", duo_with=str(first))
    assert not (tmp_path / "x.safetensors").exists()


def test_trio_export_adds_a_frozen_lite1_run_to_a_duo(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "a", steps=1)).run()
    Trainer(config(small_set, tmp_path / "l", steps=1, arch="unet-lab-l", freeze_encoder=True)).run()
    Trainer(config(small_set, tmp_path / "m", steps=2, arch="unet-lab-m", freeze_encoder=True)).run()
    first, duo_path, third, dest = (tmp_path / f"{n}.safetensors" for n in ("first", "duo", "third", "trio"))
    export(tmp_path / "a" / "last.ckpt", first, half=False, readout={"temperature": 0.5})
    export(tmp_path / "l" / "last.ckpt", duo_path, half=False, duo_with=str(first))
    export(tmp_path / "m" / "last.ckpt", third, half=False)
    readout = {"prior_correction": 0.2}
    meta = export(tmp_path / "m" / "last.ckpt", dest, half=False, readout=readout, trio_with=str(duo_path))
    assert meta["architecture"] == "unet-lab-trio" and meta["trio"]["duo"] == str(duo_path)
    tensors, _ = load_weights(dest)
    assert "third.up4.body.0.0.weight" in tensors and "second.up4.body.0.0.weight" in tensors
    assert not any(k.startswith(("second.stem.", "third.stem.", "third.blocks.")) for k in tensors)  # wheels'
    trio, duo, lite1 = (load_model(str(p)) for p in (dest, duo_path, third))
    assert float(trio.temperature) == 0.5 and float(trio.prior_correction) == pytest.approx(0.2)
    lum = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(trio(lum), (2 * duo(lum) + lite1(lum)) / 3)
    with pytest.raises(WeightsError, match="not 'unet-lab-l'"):  # a Lite2 run is the duo's member, not the trio's
        export(tmp_path / "l" / "last.ckpt", tmp_path / "x.safetensors", trio_with=str(duo_path))
    assert not (tmp_path / "x.safetensors").exists()


def test_a_frozen_member_fine_tuned_from_a_half_precision_export_keeps_the_wheels_own_encoder(
    small_set, tmp_path: Path
):
    """An fp16 export rounds a frozen Lite2 encoder; --init from it with --freeze-encoder trains on the wheel's fp32
    tensors again, so the duo export leaves the encoder out (as for the first run) instead of carrying 9 MB."""
    Trainer(config(small_set, tmp_path / "a", steps=1)).run()
    Trainer(config(small_set, tmp_path / "l", steps=1, arch="unet-lab-l", freeze_encoder=True)).run()
    first, rounded, dest = (tmp_path / f"{n}.safetensors" for n in ("first", "rounded", "duo"))
    export(tmp_path / "a" / "last.ckpt", first, half=False)
    _old_style_export(tmp_path / "l" / "last.ckpt", rounded)
    wheel = unet_lab.wheel_encoder_state(unet_lab.LITE2)
    assert not torch.equal(load_weights(rounded)[0]["stem.0.weight"].float(), wheel["stem.0.weight"])
    again = Trainer(
        config(small_set, tmp_path / "j", steps=1, arch="unet-lab-l", init=str(rounded), freeze_encoder=True)
    )
    own = again.model.state_dict()
    assert all(torch.equal(own[k].cpu(), v) for k, v in wheel.items())
    again.run()
    export(tmp_path / "j" / "last.ckpt", dest, half=False, duo_with=str(first))
    assert not any(k.startswith("second.stem.") for k in load_weights(dest)[0])


def _old_style_export(ckpt: Path, dest: Path) -> None:
    """A unet-lab-l file as exported before it gained the vehicle head: half precision, its wheel encoder rounded
    and carried, no head."""
    ck = load_checkpoint(ckpt)
    state = {k: v for k, v in ck["model"].items() if not k.startswith("vehicle.")}
    save_weights(dest, state, {"architecture": "unet-lab-l", "name": "unet-lab-l", "color_space": "lab"}, half=True)


def test_an_old_style_lite2_file_loads_with_its_vehicle_head_from_the_wheel(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "l", steps=1, arch="unet-lab-l", freeze_encoder=True)).run()
    _old_style_export(tmp_path / "l" / "last.ckpt", tmp_path / "old.safetensors")
    model = load_model(str(tmp_path / "old.safetensors"))
    head = unet_lab.VehicleHead()
    head.load_wheel()
    assert all(torch.equal(a, b) for a, b in zip(model.vehicle.state_dict().values(), head.state_dict().values()))
    stored = load_weights(tmp_path / "old.safetensors")[0]["stem.0.weight"].float()
    assert torch.equal(model.stem[0].weight, stored)  # the file's own encoder, not replaced by the wheel's


def test_a_frozen_lite2_export_leaves_its_wheel_parts_out_and_loads_as_trained(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "l", steps=2, arch="unet-lab-l", freeze_encoder=True)).run()
    dest = tmp_path / "l.safetensors"
    meta = export(tmp_path / "l" / "last.ckpt", dest, half=False, readout={"vehicle_gate": 1.0, "bayes_tau": 2.0})
    assert meta["vehicle_gate"] == 1.0 and meta["bayes_tau"] == 2.0
    tensors, _ = load_weights(dest)
    assert "up4.body.0.0.weight" in tensors
    assert not any(k.startswith(("stem.", "blocks.", "vehicle.")) for k in tensors)  # the wheel's, left to pip
    trained = unet_lab.EffUNetLab(encoder="lite2").eval()
    trained.load_state_dict(load_checkpoint(tmp_path / "l" / "last.ckpt")["model"], strict=False)
    model = load_model(str(dest))
    lum = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        raw = model(lum)
        torch.testing.assert_close(raw[:, :-1], trained(lum))  # the gate's channel follows the trained logits
    assert raw.shape[1] == len(model.bins) + 1


def test_a_lite2_run_from_before_the_vehicle_head_resumes(small_set, tmp_path: Path):
    cfg = config(small_set, tmp_path / "l", steps=2, arch="unet-lab-l", freeze_encoder=True)
    Trainer(dataclasses.replace(cfg, steps=1)).run()
    ckpt = tmp_path / "l" / "last.ckpt"
    ck = torch.load(ckpt, weights_only=True)
    ck["model"] = {k: v for k, v in ck["model"].items() if not k.startswith("vehicle.")}
    torch.save(ck, ckpt)
    resumed = Trainer(TrainConfig.from_checkpoint(load_checkpoint(ckpt)), resume=load_checkpoint(ckpt))
    head = unet_lab.VehicleHead()
    head.load_wheel()
    assert torch.equal(resumed.model.vehicle.fc.weight.cpu(), head.fc.weight)
    with pytest.raises(ValueError, match="does not fit"):  # a missing part that no wheel holds is still an error
        ck["model"].pop("head.weight")
        Trainer(TrainConfig.from_checkpoint(ck), resume=ck)


def test_a_trained_encoder_from_a_half_precision_export_is_frozen_as_it_is(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "l", steps=1, arch="unet-lab-l")).run()  # its encoder trained too
    rounded = tmp_path / "rounded.safetensors"
    export(tmp_path / "l" / "last.ckpt", rounded)
    frozen = Trainer(
        config(small_set, tmp_path / "j", steps=1, arch="unet-lab-l", init=str(rounded), freeze_encoder=True)
    )
    stored = load_weights(rounded)[0]["stem.0.weight"].float()
    assert torch.equal(frozen.model.stem[0].weight.detach().cpu(), stored)


def test_distill_keeps_a_fine_tune_near_its_frozen_teacher(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "a", steps=2)).run()
    base = tmp_path / "base.safetensors"
    export(tmp_path / "a" / "last.ckpt", base, half=False)
    probe = torch.rand(4, 1, 64, 64)
    teacher = load_model(str(base))
    drift = {}
    for weight in (0.0, 20.0):
        cfg = config(small_set, tmp_path / f"w{weight}", steps=8, lr=3e-3, init=str(base), distill=str(base))
        trainer = Trainer(dataclasses.replace(cfg, distill_weight=weight))
        assert trainer.teacher is not None
        frozen = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
        trainer.run()
        for k, v in trainer.teacher.state_dict().items():  # the teacher is frozen
            assert torch.equal(v, frozen[k]), k
        with torch.no_grad():
            drift[weight] = float(distillation(trainer.model.eval()(probe), teacher(probe), classes=True))
    assert drift[20.0] < 0.5 * drift[0.0], drift
    meta = export(tmp_path / "w20.0" / "last.ckpt", tmp_path / "d.safetensors")
    assert meta["distill"] == {"teacher": str(base), "weight": 20.0}
    resumed = Trainer(TrainConfig.from_checkpoint(load_checkpoint(tmp_path / "w20.0" / "last.ckpt")))
    assert resumed.teacher is not None and resumed.cfg.distill_weight == 20.0


def _encoder_state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for m in model.pretrained_encoder() for k, v in m.state_dict().items()}


def test_freeze_encoder_trains_the_decoder_and_leaves_the_encoder_and_its_batchnorm_statistics_as_they_were(
    small_set, tmp_path: Path
):
    trainer = Trainer(config(small_set, tmp_path / "f", steps=3, lr=3e-3, freeze_encoder=True))
    encoder, head = _encoder_state(trainer.model), trainer.model.head.weight.detach().clone()
    assert any("running_mean" in k for k in encoder)  # the statistics are part of what must not move
    trainer.run()
    after = _encoder_state(trainer.model)
    assert all(torch.equal(encoder[k], after[k]) for k in encoder)
    assert not torch.equal(head, trainer.model.head.weight)
    unfrozen = Trainer(config(small_set, tmp_path / "u", steps=3, lr=3e-3))
    before = _encoder_state(unfrozen.model)
    unfrozen.run()
    moved = _encoder_state(unfrozen.model)
    assert not all(torch.equal(before[k], moved[k]) for k in before)  # the check above can fail


def test_freeze_encoder_is_refused_for_a_model_without_a_pretrained_encoder(small_set, tmp_path: Path):
    with pytest.raises(ValueError, match="no pretrained encoder"):
        Trainer(config(small_set, tmp_path / "n", steps=1, arch="cnn-rgb", freeze_encoder=True))


def test_distill_rejects_a_teacher_whose_outputs_are_not_the_students(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "c", steps=1, arch="cnn-rgb")).run()
    other = tmp_path / "other.safetensors"
    export(tmp_path / "c" / "last.ckpt", other)
    with pytest.raises(ValueError, match="teacher is 'cnn-rgb', whose outputs are not"):
        Trainer(config(small_set, tmp_path / "b", steps=1, distill=str(other)))


def test_distill_takes_a_gated_teacher_of_another_architecture_over_the_same_bins(small_set, tmp_path: Path):
    """A unet-lab student taught by a vehicle-gated unet-lab-l: the teacher's gate channel is not a bin, so only
    its bins teach, and the student moves toward them."""
    Trainer(config(small_set, tmp_path / "l", steps=1, arch="unet-lab-l", freeze_encoder=True)).run()
    teacher_file = tmp_path / "teacher.safetensors"
    export(tmp_path / "l" / "last.ckpt", teacher_file, half=False, readout={"vehicle_gate": 1.0})
    teacher = load_model(str(teacher_file))
    probe = torch.rand(4, 1, 64, 64)
    with torch.no_grad():
        taught = teacher(probe)
    assert taught.shape[1] == len(teacher.bins) + 1
    drift = {}
    for weight in (0.0, 20.0):
        cfg = config(small_set, tmp_path / f"s{weight}", steps=8, lr=3e-3, distill=str(teacher_file))
        trainer = Trainer(dataclasses.replace(cfg, distill_weight=weight))
        trainer.run()
        with torch.no_grad():
            drift[weight] = float(distillation(trainer.model.eval()(probe), taught[:, :-1], classes=True))
    assert drift[20.0] < 0.7 * drift[0.0], drift


def test_init_rejects_weights_of_another_architecture(small_set, tmp_path: Path):
    Trainer(config(small_set, tmp_path / "a", steps=1)).run()
    src = tmp_path / "a.safetensors"
    export(tmp_path / "a" / "last.ckpt", src)
    with pytest.raises(ValueError, match="not --arch"):
        Trainer(config(small_set, tmp_path / "b", steps=1, arch="cnn-rgb", init=str(src)))


def test_near_gray_photos_are_skipped(tmp_path: Path):
    src = cv2.imread(str(pick(VAL, 1, "*.png")[0]))
    cv2.imwrite(str(tmp_path / "colour.png"), src)
    gray = cv2.cvtColor(cv2.cvtColor(src, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    (tmp_path / "bad.png").write_bytes(b"nope")
    kept, bad, near_gray = keep_colour(sorted(tmp_path.iterdir()), workers=0)
    assert [p.name for p in kept] == ["colour.png"] and bad == 1 and near_gray == 1


def test_keep_muted_keeps_muted_colour_and_drops_gray_and_sepia(tmp_path: Path):
    """The default drops a muted colour photo (mean |ab| under 4) yet keeps a sepia print; --keep-muted the opposite."""
    bgr = cv2.imread(str(pick(VAL, 1, "cbsd68_101087.png")[0]))
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    lab[..., 1:] *= 0.25  # the same scene in a muted palette
    muted = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0, 1)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)[..., None] / 255
    sepia = np.clip(gray * np.array([1.0, 0.9, 0.7], np.float32), 0, 1)
    for name, img in (("colour", rgb), ("muted", muted), ("sepia", sepia), ("gray", np.repeat(gray, 3, 2))):
        cv2.imwrite(
            str(tmp_path / f"{name}.png"), cv2.cvtColor(np.round(img * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        )
    files = sorted(tmp_path.iterdir())
    kept, _, dropped = keep_colour(files, workers=0)
    assert sorted(p.name for p in kept) == ["colour.png", "sepia.png"] and dropped == 2
    kept, _, dropped = keep_colour(files, workers=0, keep_muted=True)
    assert sorted(p.name for p in kept) == ["colour.png", "muted.png"] and dropped == 2


def test_no_enlarge_takes_crops_of_at_least_the_crop_size():
    """--no-enlarge: on a 144-pixel photo every crop is 128 pixels or more (never upsampled); on a large photo the
    scale jitter is the default's; on a photo smaller than the crop the whole short side is taken."""
    rng = lambda: np.random.default_rng(7)  # noqa: E731
    plain, sharp = CropSet([], 128, 0, train=True), CropSet([], 128, 0, train=True, no_enlarge=True)
    small = [sharp.crop_side(144, r) for r in [rng()] for _ in range(300)]
    assert min(small) >= 128 and max(small) <= 144
    assert min(plain.crop_side(144, r) for r in [rng()] for _ in range(300)) < 100
    big_plain = [plain.crop_side(600, r) for r in [rng()] for _ in range(50)]
    big_sharp = [sharp.crop_side(600, r) for r in [rng()] for _ in range(50)]
    assert big_plain == big_sharp and min(big_sharp) >= 330
    assert sharp.crop_side(100, rng()) == 100


def test_group_balance_evens_out_groups_and_resumes_in_place():
    files = [Path(f"scene_{i}.jpg") for i in range(90)] + [Path(f"face_{i}.jpg") for i in range(10)]
    assert group_weights(files, 1.0) is None  # as the data: the plain permutation
    weights = group_weights(files, 0.0)
    assert float(weights[:90].sum()) == pytest.approx(float(weights[90:].sum()))  # each group equally often
    sampler = EpochSampler(len(files), seed=3, weights=weights)
    draws = [next(it) for it in [iter(sampler)] for _ in range(1000)]
    faces = sum(files[i].name.startswith("face") for _, i, _ in draws) / len(draws)
    assert 0.4 < faces < 0.6  # 0.1 without balancing
    assert len({(e, j) for e, _, j in draws}) == len(draws)  # each draw its own crop seed
    later = iter(EpochSampler(len(files), seed=3, start=250, weights=weights))
    assert [next(later) for _ in range(100)] == draws[250:350]  # a resume continues the same draws
    sqrt = group_weights(files, 0.5)
    assert float(sqrt[90:].sum() / sqrt[:90].sum()) == pytest.approx((10 / 90) ** 0.5)


def test_group_weight_multiplies_a_groups_share_and_a_missing_prefix_is_refused():
    files = [Path(f"scene_{i}.jpg") for i in range(90)] + [Path(f"in1k_{i}.jpg") for i in range(10)]
    assert group_weights(files, 1.0, {"in1k": 1.0}) is None
    weights = group_weights(files, 1.0, {"in1k": 3.0})
    assert float(weights[90:].sum() / weights[:90].sum()) == pytest.approx(3 * 10 / 90)
    both = group_weights(files, 0.5, {"in1k": 3.0})
    assert float(both[90:].sum() / both[:90].sum()) == pytest.approx(3 * (10 / 90) ** 0.5)
    with pytest.raises(ValueError, match="imagenet"):
        group_weights(files, 1.0, {"imagenet": 2.0})


def test_two_process_ddp_on_cpu(small_set, tmp_path: Path):
    """torchrun with two CPU processes (gloo): both ranks train, rank 0 validates, checkpoints and exports."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "-m",
        "colorize_cli",
        "train",
        str(small_set[0]),
        "--val",
        str(small_set[1]),
        "--steps",
        "2",
        "--crop",
        "64",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--val-every",
        "2",
        "--out",
        str(tmp_path / "run"),
        "--export",
        str(tmp_path / "w.safetensors"),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["world"] == 2 and rows[-1]["step"] == 2
    assert read_metadata(tmp_path / "w.safetensors")["images_seen"] == 2 * 4 * 2  # steps x batch x ranks


def test_loss_option_is_checked_against_the_architecture(small_set, tmp_path: Path):
    """--loss: an unknown name is a usage error; a readout loss on a model without a readout is a clear error."""
    from typer.testing import CliRunner

    from colorize_cli.cli import app

    res = CliRunner().invoke(app, ["train", str(small_set[0]), "--loss", "nonsense", "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "unknown loss 'nonsense'" in res.output
    with pytest.raises(ValueError, match="needs a classification model"):
        Trainer(config(small_set, tmp_path / "b", arch="unet-simple-rgb", loss="ab-classification-readout", steps=1))


def test_group_weight_option_errors_name_the_option(small_set, tmp_path: Path):
    from typer.testing import CliRunner

    from colorize_cli.cli import app

    base = ["train", str(small_set[0]), "--steps", "1", "--workers", "0", "--group-weight"]
    res = CliRunner().invoke(app, [*base, "in1k", "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "--group-weight 'in1k': expected PREFIX=FACTOR" in res.output
    res = CliRunner().invoke(app, [*base, "nosuchgroup=2", "--out", str(tmp_path / "b")])
    assert res.exit_code != 0 and "--group-weight nosuchgroup: no training photo" in res.output


def test_trainer_runs_with_muted_photos_and_balanced_groups(small_set, tmp_path: Path):
    group = prefix(small_set[0] / sorted(os.listdir(small_set[0]))[0])
    cfg = config(small_set, tmp_path, steps=2, keep_muted=True, group_balance=0.5, group_weight={group: 3.0})
    trainer = Trainer(cfg)
    assert trainer.loader().sampler.weights is not None
    trainer.run()
    saved = load_checkpoint(tmp_path / "last.ckpt")["config"]
    assert trainer.step == 2 and saved["group_balance"] == 0.5 and saved["group_weight"] == {group: 3.0}
    assert TrainConfig.from_checkpoint(load_checkpoint(tmp_path / "last.ckpt")).group_weight == {group: 3.0}
    meta = export(tmp_path / "last.ckpt", tmp_path / "w.safetensors")
    assert meta["sampling"] == {"group_balance": 0.5, "group_weight": {group: 3.0}}
    assert read_metadata(tmp_path / "w.safetensors")["sampling"] == meta["sampling"]
