"""Which shard of a folder this process takes: `--shard K/N` by hand, or read from the scheduler that started it.

`--shard auto` (the default) looks, in this order, for
  - a Slurm array job: SLURM_ARRAY_TASK_ID, with SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MIN/MAX (and _STEP);
    the task's place on the array's grid is its shard, so `--array=1-8` or `--array=0-14:2` both give 8 shards;
  - a Kubernetes Indexed Job: JOB_COMPLETION_INDEX, with COLORIZE_SHARDS set to the Job's `completions` (Kubernetes
    does not tell a pod how many indexes there are; examples/k8s-indexed-job.yaml sets both from one number);
  - torchrun (or any launcher that follows it): RANK and WORLD_SIZE, when WORLD_SIZE > 1.
None of them set: the whole folder. `--shard none` takes the whole folder even inside such a job.
Pure: it reads the mapping it is given, so tests can set any scheme.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping


class ShardError(ValueError):
    """A --shard value or a scheduler's variables that name no valid shard; the message says which."""


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int
    source: str  # where it came from, for the run's first line

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"


def resolve(text: str | None, env: Mapping[str, str] = os.environ) -> Shard | None:
    """--shard's value ("K/N", "auto" or None, "none") -> the shard to take, or None for the whole folder."""
    if text is None or text == "auto":
        return from_env(env)
    if text == "none":
        return None
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise ShardError(f"--shard wants K/N with 1 <= K <= N, auto or none; got {text!r}")
    return Shard(k - 1, n, "--shard")


def from_env(env: Mapping[str, str]) -> Shard | None:
    if "SLURM_ARRAY_TASK_ID" in env:
        return _slurm(env)
    if "JOB_COMPLETION_INDEX" in env:
        return _checked(
            _int(env, "JOB_COMPLETION_INDEX"),
            _int(env, "COLORIZE_SHARDS", "the Job's completions, which Kubernetes does not pass to the pod"),
            "Kubernetes Indexed Job (JOB_COMPLETION_INDEX, COLORIZE_SHARDS)",
        )
    if int(env.get("WORLD_SIZE", "1") or 1) > 1:
        return _checked(_int(env, "RANK"), _int(env, "WORLD_SIZE"), "torchrun (RANK, WORLD_SIZE)")
    return None


def _slurm(env: Mapping[str, str]) -> Shard:
    task = _int(env, "SLURM_ARRAY_TASK_ID")
    low = _int(env, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
    step = _int(env, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in env else 1
    if "SLURM_ARRAY_TASK_COUNT" in env:
        count = _int(env, "SLURM_ARRAY_TASK_COUNT")
    else:
        count = (_int(env, "SLURM_ARRAY_TASK_MAX", "or SLURM_ARRAY_TASK_COUNT") - low) // max(step, 1) + 1
    index, off_grid = divmod(task - low, max(step, 1))
    if off_grid:
        raise ShardError(
            f"SLURM_ARRAY_TASK_ID={task} is not on the array's grid (min {low}, step {step}); an array "
            f"given as a list of ids needs --shard K/N"
        )
    return _checked(index, count, "Slurm array (SLURM_ARRAY_TASK_ID)")


def _checked(index: int, count: int, source: str) -> Shard:
    if not 0 <= index < count:
        raise ShardError(f"{source}: shard index {index} is outside 0..{count - 1}")
    return Shard(index, count, source)


def _int(env: Mapping[str, str], name: str, why: str = "") -> int:
    if name not in env:
        raise ShardError(f"{name} is not set ({why})" if why else f"{name} is not set")
    try:
        return int(env[name])
    except ValueError:
        raise ShardError(f"{name}={env[name]!r} is not a whole number") from None
