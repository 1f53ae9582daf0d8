"""The command in shells, scripts and clusters: whole model names and JSON for scripts, shards from a scheduler's
environment, dry runs, config files, logs, review sheets and shell completion."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from colorize_cli.cli import app
from colorize_cli.weights import WEIGHTS_DIR, file_sha256
from tests.conftest import ROOT

runner = CliRunner()


def run(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def colorize(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The command as a script runs it: a subprocess with no terminal."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "colorize_cli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd)


# ------------------------------------------------------------------------------------------------------- models
def test_models_names_are_whole_in_a_narrow_pipe():
    out = colorize("models", env={"COLUMNS": "40"})
    assert out.returncode == 0, out.stderr
    shipped = sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))
    lines = out.stdout.splitlines()
    for name in shipped:                         # `colorize models | grep NAME` finds the model's own row
        assert any(line.split("│")[1].strip() == name for line in lines if line.count("│") > 2), name
    assert "…" not in out.stdout


def test_models_json_for_scripts():
    res = run("models", "--json")
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.output)}
    lab = rows["unet-lab"]
    assert lab["architecture"] == "unet-lab" and lab["color_space"] == "lab"
    assert lab["params"] > 1_000_000 and isinstance(lab["params"], int)
    path = Path(lab["file"])
    assert lab["weights_bytes"] == path.stat().st_size
    assert lab["sha256"] == file_sha256(path)
    listed = dict(reversed(line.split()) for line in (WEIGHTS_DIR / "SHA256SUMS.txt").read_text().splitlines())
    assert listed["unet-lab.safetensors"] == lab["sha256"]
    assert 15 < lab["measured"]["psnr"] < 40 and 0 < lab["measured"]["colorfulness_ratio"] < 2


# ------------------------------------------------------------------------------------------------------- shards
SCHEMES = {   # scheme -> the environment of each of its workers
    "slurm count": [{"SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1",
                     "SLURM_ARRAY_TASK_MAX": "4"} for i in range(1, 5)],
    "slurm min/max/step": [{"SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "14",
                            "SLURM_ARRAY_TASK_STEP": "2"} for i in range(0, 15, 2)],
    "kubernetes": [{"JOB_COMPLETION_INDEX": str(i), "COLORIZE_SHARDS": "5"} for i in range(5)],
    "torchrun": [{"RANK": str(i), "WORLD_SIZE": "3", "LOCAL_RANK": str(i)} for i in range(3)],
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_file_is_covered_once_under_each_scheme(scheme: str):
    from colorize_cli.pipeline import plan
    from colorize_cli.shards import resolve
    pairs = [(Path(f"box{i % 7}/scan {i:04d}.tif"), Path(f"/out/box{i % 7}/scan {i:04d}.tif")) for i in range(300)]
    taken = []
    for env in SCHEMES[scheme]:
        shard = resolve("auto", env)
        assert shard is not None and shard.count == len(SCHEMES[scheme])
        todo, _ = plan(pairs, True, (shard.index, shard.count), str)
        assert todo, f"{shard} got no files out of 300"
        taken += [src for src, _ in todo]
    assert sorted(taken) == sorted(src for src, _ in pairs)


@pytest.mark.parametrize("env, needle", [
    ({"JOB_COMPLETION_INDEX": "0"}, "COLORIZE_SHARDS is not set"),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "8",
      "SLURM_ARRAY_TASK_STEP": "2"}, "not on the array's grid"),
    ({"SLURM_ARRAY_TASK_ID": "5"}, "SLURM_ARRAY_TASK_MAX is not set"),
    ({"JOB_COMPLETION_INDEX": "4", "COLORIZE_SHARDS": "4"}, "outside 0..3"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not a whole number"),
])
def test_bad_scheduler_variables_are_one_line_usage_errors(env, needle, tmp_path: Path):
    res = run("dir", tmp_path, "-o", tmp_path / "o", env=env)
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output


def test_shard_resolution_order_and_overrides():
    from colorize_cli.shards import resolve
    both = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "RANK": "0", "WORLD_SIZE": "2"}
    assert str(resolve(None, both)) == "3/3" and "Slurm" in resolve(None, both).source
    assert str(resolve("2/5", both)) == "2/5"            # by hand wins
    assert resolve("none", both) is None                  # the whole folder even inside an array job
    assert resolve("auto", {"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert resolve("auto", {}) is None
