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
