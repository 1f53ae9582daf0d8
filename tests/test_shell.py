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

from colorize_cli import claims
from colorize_cli.cli import app
from colorize_cli.weights import WEIGHTS_DIR, file_sha256
from tests.conftest import ROOT

runner = CliRunner()


def run(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def colorize(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The command as a script runs it: a subprocess with no terminal."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "colorize_cli", *map(str, args)], capture_output=True, text=True, env=full_env, cwd=cwd
    )


# ------------------------------------------------------------------------------------------------------- models
def test_models_names_are_whole_in_a_narrow_pipe():
    out = colorize("models", env={"COLUMNS": "40"})
    assert out.returncode == 0, out.stderr
    shipped = sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))
    lines = out.stdout.splitlines()
    for name in shipped:  # `colorize models | grep NAME` finds the model's own row
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
SCHEMES = {  # scheme -> the environment of each of its workers
    "slurm count": [
        {
            "SLURM_ARRAY_TASK_ID": str(i),
            "SLURM_ARRAY_TASK_COUNT": "4",
            "SLURM_ARRAY_TASK_MIN": "1",
            "SLURM_ARRAY_TASK_MAX": "4",
        }
        for i in range(1, 5)
    ],
    "slurm min/max/step": [
        {
            "SLURM_ARRAY_TASK_ID": str(i),
            "SLURM_ARRAY_TASK_MIN": "0",
            "SLURM_ARRAY_TASK_MAX": "14",
            "SLURM_ARRAY_TASK_STEP": "2",
        }
        for i in range(0, 15, 2)
    ],
    "kubernetes": [{"JOB_COMPLETION_INDEX": str(i), "COLORIZE_SHARDS": "5"} for i in range(5)],
    "torchrun": [{"RANK": str(i), "WORLD_SIZE": "3", "LOCAL_RANK": str(i)} for i in range(3)],
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_file_is_covered_once_under_each_scheme(scheme: str):
    from colorize_cli.batch import plan
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


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"JOB_COMPLETION_INDEX": "0"}, "COLORIZE_SHARDS is not set"),
        (
            {
                "SLURM_ARRAY_TASK_ID": "3",
                "SLURM_ARRAY_TASK_MIN": "0",
                "SLURM_ARRAY_TASK_MAX": "8",
                "SLURM_ARRAY_TASK_STEP": "2",
            },
            "not on the array's grid",
        ),
        ({"SLURM_ARRAY_TASK_ID": "5"}, "SLURM_ARRAY_TASK_MAX is not set"),
        ({"JOB_COMPLETION_INDEX": "4", "COLORIZE_SHARDS": "4"}, "outside 0..3"),
        ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not a whole number"),
    ],
)
def test_bad_scheduler_variables_are_one_line_usage_errors(env, needle, tmp_path: Path):
    res = run("dir", tmp_path, "-o", tmp_path / "o", env=env)
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output


def test_shard_resolution_order_and_overrides():
    from colorize_cli.shards import resolve

    both = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "RANK": "0", "WORLD_SIZE": "2"}
    assert str(resolve(None, both)) == "3/3" and "Slurm" in resolve(None, both).source
    assert str(resolve("2/5", both)) == "2/5"  # by hand wins
    assert resolve("none", both) is None  # the whole folder even inside an array job
    assert resolve("auto", {"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert resolve("auto", {}) is None


# ------------------------------------------------------------------------------------------------------ dry run
@pytest.fixture
def small_dir(tmp_path: Path) -> Path:
    """Six small gray photos (no shared data needed)."""
    import cv2
    import numpy as np

    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        gray = cv2.GaussianBlur((rng.random((48, 64)) * 255).astype(np.uint8), (9, 9), 3)
        cv2.imwrite(str(d / f"p{i}.png"), gray)
    return d


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_dry_run_reports_each_verdict_and_writes_nothing(small_dir: Path, tmp_path: Path):
    import shutil

    out = tmp_path / "out"
    res = run("dir", small_dir, "-o", out, "--dry-run")
    assert res.exit_code == 0, res.output
    assert not out.exists()  # not even the folder
    assert "would colorize 6, skip 0" in res.output

    out.mkdir()
    (out / "p1.png").write_bytes(b"done before")  # done
    lock = claims.lock_path(out / "p2.png")
    held = claims.claim(out / "p2.png")  # a live run (this process) holds it
    shutil.copy(small_dir / "p3.png", small_dir / "p3.jpg")  # --format png: p3.jpg and p3.png collide
    before = tree(out), tree(small_dir), lock.stat().st_mtime_ns
    res = run("dir", small_dir, "-o", out, "--format", "png", "--dry-run")
    assert res.exit_code == 1, res.output  # a real run would fail on the collision
    lines = res.output.splitlines()
    assert any(line.startswith("skip (done)") and line.endswith("p1.png") for line in lines)
    assert any(line.startswith("skip (claimed by another run)") and line.endswith("p2.png") for line in lines)
    assert any(line.startswith("refuse") and "collide" in line for line in lines)
    assert "would colorize 4, skip 1 (already done) and 1 (claimed by another run), refuse 1" in res.output
    assert (tree(out), tree(small_dir), lock.stat().st_mtime_ns) == before
    claims.release(held)


def test_dry_run_under_a_scheduler_lists_each_file_in_one_shard(small_dir: Path, tmp_path: Path):
    seen = []
    for i in range(3):
        res = run(
            "dir",
            small_dir,
            "-o",
            tmp_path / "o",
            "--dry-run",
            env={"JOB_COMPLETION_INDEX": str(i), "COLORIZE_SHARDS": "3"},
        )
        assert res.exit_code == 0 and f"shard {i + 1}/3 from Kubernetes" in res.output
        seen += [line.split()[1] for line in res.output.splitlines() if line.startswith("colorize ")]
    assert sorted(seen) == sorted(str(p) for p in small_dir.iterdir())


def test_a_real_run_under_torchrun_colorizes_each_file_once(small_dir: Path, tmp_path: Path):
    out = tmp_path / "out"
    for rank in range(2):
        res = run("dir", small_dir, "-o", out, "--workers", "0", env={"RANK": str(rank), "WORLD_SIZE": "2"})
        assert res.exit_code == 0 and f"shard {rank + 1}/2 from torchrun" in res.output, res.output
    assert tree(out) == tree(small_dir)
    res = run("dir", small_dir, "-o", out, "--workers", "0", "--shard", "none")
    assert "colorized 0, skipped 6" in res.output


# ------------------------------------------------------------------------------------------------------- config
def outputs_listed(res) -> list[str]:
    return sorted(Path(line.split(" -> ")[1]).name for line in res.output.splitlines() if " -> " in line)


def test_config_files_give_defaults_and_the_command_line_wins(small_dir: Path, tmp_path: Path, monkeypatch):
    user = tmp_path / "xdg" / "colorize"
    user.mkdir(parents=True)
    (user / "config.toml").write_text('[dir]\nformat = "jpg"\nrecursive = true\n')
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    (small_dir / "sub").mkdir()
    (small_dir / "p5.png").rename(small_dir / "sub" / "p5.png")
    res = run("dir", small_dir, "-o", tmp_path / "o", "--dry-run", env=env)
    assert outputs_listed(res) == [f"p{i}.jpg" for i in range(6)]  # the user's file: jpg, recursive
    (work / "colorize.toml").write_text('[dir]\nformat = "png"\n\n[image]\nworkers = 0\n')
    res = run("dir", small_dir, "-o", tmp_path / "o", "--dry-run", env=env)
    assert outputs_listed(res) == [f"p{i}.png" for i in range(6)]  # the working folder's file wins, per key
    res = run("dir", small_dir, "-o", tmp_path / "o", "--dry-run", "--format", "jpg", "--no-recursive", env=env)
    assert outputs_listed(res) == [f"p{i}.jpg" for i in range(5)]  # the command line wins over both


@pytest.mark.parametrize(
    "text, needle",
    [
        ('[dir]\nformatt = "jpg"\n', "[dir] 'formatt' is not an option of `colorize dir`"),
        ("[colourise]\nworkers = 1\n", "no command 'colourise'"),
        ("[dir\nworkers = 1\n", "cannot read config"),
    ],
)
def test_a_bad_config_file_is_a_one_line_usage_error(text, needle, small_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "colorize.toml").write_text(text)
    res = run("dir", small_dir, "--dry-run", env={"XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert res.exit_code == 2 and needle in res.output and "colorize.toml" in res.output
    assert "Traceback" not in res.output


# --------------------------------------------------------------------------------------------------- completion
def test_install_completion_writes_a_script_that_completes_commands_and_options(tmp_path: Path):
    env = {"HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    out = colorize("--install-completion", "bash", env=env)
    assert out.returncode == 0, out.stderr
    script = (tmp_path / ".bash_completions" / "colorize.sh").read_text()
    assert "_COLORIZE_COMPLETE=complete_bash" in script and "complete -o default -F" in script
    assert "source" in (tmp_path / ".bashrc").read_text()
    # what the script asks the command at a TAB
    ask = {"_COLORIZE_COMPLETE": "complete_bash", "COMP_WORDS": "colorize di", "COMP_CWORD": "1"}
    assert colorize(env=ask).stdout.split() == ["dir"]
    ask.update(COMP_WORDS="colorize dir --dry", COMP_CWORD="2")
    assert colorize(env=ask).stdout.split() == ["--dry-run"]


# ---------------------------------------------------------------------------------------------------------- log
def test_log_appends_stamped_progress_and_every_error(small_dir: Path, tmp_path: Path):
    import re

    (small_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    log = tmp_path / "run.log"
    log.write_text("an earlier line\n")
    res = run("dir", small_dir, "-o", tmp_path / "o", "--workers", "0", "--quiet", "--log", log)
    assert res.exit_code == 1
    run("dir", tmp_path / "missing", "-o", tmp_path / "o", "--log", log)
    lines = log.read_text().splitlines()
    assert lines[0] == "an earlier line"  # appended, never truncated
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d \[[^\]]+:\d+\] ")
    assert all(stamp.match(line) for line in lines[1:]), lines
    text = "\n".join(lines)
    assert re.search(r"error: .*broken\.png", text)  # a file's error
    assert "7/7 images" in text  # progress, though --quiet
    assert "colorized 6, skipped 0 (already done), failed 1" in text  # the summary
    assert "error: " in lines[-1] and "missing: input folder not found" in lines[-1]  # a usage error too
    assert "7/7 images" not in res.output  # the terminal stayed quiet


# ---------------------------------------------------------------------------------------------------- vividness
def test_vividness_scales_the_colour_and_keeps_the_lightness(tmp_path: Path):
    import cv2
    import numpy as np

    from colorize_cli.imaging import read_image
    from colorize_cli.metrics import colorfulness
    from colorize_cli.pipeline import srgb_luminance

    src = tmp_path / "paris.png"
    cv2.imwrite(str(src), cv2.imread(str(ROOT / "examples" / "originals" / "1880Paris.jpg"))[:200, :300])
    cf = {}
    for v in ("0.5", "1", "1.5"):
        res = run("image", src, "-o", tmp_path / v, "--workers", "0", "--vividness", v)
        assert res.exit_code == 0, res.output
        out = read_image(tmp_path / v / "paris.png").rgb
        cf[v] = colorfulness(out)
        lum_in, lum_out = srgb_luminance(read_image(src).rgb), srgb_luminance(out)
        assert np.median(np.abs(lum_out - lum_in)) < 0.01
    assert cf["0.5"] < 0.8 * cf["1"] and cf["1.5"] > 1.2 * cf["1"], cf


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--vividness", "0.5", "--model", "unet-rgb"], "--vividness works with the classification models"),
        (["--vividness", "2.5"], "--vividness"),
    ],
)
def test_vividness_usage_errors(args, needle, small_dir: Path, tmp_path: Path):
    res = run("dir", small_dir, "-o", tmp_path / "o", "--workers", "0", *args)
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output


# ----------------------------------------------------------------------------------------------- contact sheet
def test_contact_sheet_html_shows_before_after_and_marks_failures(small_dir: Path, tmp_path: Path):
    import re

    (small_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    sheet = tmp_path / "review.html"
    res = run("dir", small_dir, "-o", tmp_path / "o", "--workers", "0", "--contact-sheet", sheet)
    assert res.exit_code == 1 and f"contact sheet: {sheet}" in res.output
    page = sheet.read_text()
    figures = re.findall(r"<figure( class=\"failed\")?>(.*?)</figure>", page, re.S)
    assert len(figures) == 7
    failed = [body for cls, body in figures if cls]
    assert len(failed) == 1 and "broken.png" in failed[0] and "FAILED" in failed[0] and "<img" not in failed[0]
    for cls, body in figures:
        if not cls:
            assert body.count('<img alt="before" src="data:image/jpeg;base64,') == 1
            assert body.count('<img alt="after" src="data:image/jpeg;base64,') == 1
    assert not list(tmp_path.glob(".review.html.*.tmp"))


def test_contact_sheet_images_come_in_pages(small_dir: Path, tmp_path: Path, monkeypatch):
    import numpy as np

    from colorize_cli import contact_sheet as cs
    from colorize_cli.imaging import read_image

    monkeypatch.setattr(cs, "COLUMNS", 2)
    monkeypatch.setattr(cs, "PAGE_ROWS", 1)
    (small_dir / "a-broken.png").write_bytes(b"not a png")  # sorts first: the first cell
    sheet = tmp_path / "review.png"
    res = run("dir", small_dir, "-o", tmp_path / "o", "--workers", "0", "--contact-sheet", sheet)
    assert res.exit_code == 1
    pages = [sheet] + [tmp_path / f"review-{k}.png" for k in (2, 3, 4)]
    assert sorted(tmp_path.glob("review*.png")) == sorted(pages)  # 7 files, 2 a page
    first = (read_image(sheet).rgb * 255).round()
    assert first.shape == (cs.CELL_H, 2 * cs.CELL_W, 3)
    red = (first[..., 0] > 180) & (first[..., 1] < 40) & (first[..., 2] < 40)
    assert red[:, : cs.CELL_W].sum() > 500 and red[:, cs.CELL_W :].sum() == 0  # the failed cell is framed red
    after = first[cs.PAD : cs.PAD + cs.THUMB, cs.CELL_W + 2 * cs.PAD + cs.THUMB : cs.CELL_W + 2 * cs.PAD + 2 * cs.THUMB]
    assert np.abs(after[..., 0] - after[..., 2]).mean() > 2  # a colour thumbnail


def test_contact_sheet_wants_a_known_suffix(small_dir: Path, tmp_path: Path):
    res = run("dir", small_dir, "-o", tmp_path / "o", "--contact-sheet", tmp_path / "review.pdf")
    assert res.exit_code == 2 and "--contact-sheet wants a file ending .html" in res.output


# ---------------------------------------------------------------------------------------------------- packaging
def test_the_wheel_carries_the_weights_and_finds_them_under_any_prefix(tmp_path: Path):
    """Built from this checkout, installed with --target (a prefix the code cannot guess), run from elsewhere."""
    pytest.importorskip("setuptools")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("colorize_film-*.whl"))
    target = tmp_path / "target"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-m", "colorize_cli", "models", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    lab = Path(rows["unet-lab"]["file"])
    assert lab.is_relative_to(target / "colorize_cli" / "_weights")
    assert rows["unet-lab"]["sha256"] == file_sha256(ROOT / "weights" / "unet-lab.safetensors")
    assert rows["unet-lab"]["measured"]  # metrics.json came along too


def test_film_progress_goes_to_the_log_even_when_quiet(tmp_path: Path):
    from colorize_cli import runlog
    from colorize_cli.progress import FRAMES, Reporter, Tick

    log = tmp_path / "film.log"
    runlog.open_log(log)
    try:
        printer = Reporter("colorize", quiet=True, every_s=3600).counting(FRAMES)
        for done in range(1, 11):
            printer(Tick(done, 10, 25.0, (10 - done) / 25))
    finally:
        runlog.close_log()
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("10/10 frames, 25.00 frames/s, ETA 0 s")  # the final line only


def test_the_slurm_example_runs_a_folder_across_its_array(small_dir: Path, tmp_path: Path):
    """examples/slurm_array.sh as each of its 8 array tasks would run it (colorize shimmed to a dry run)."""
    import re

    script = (ROOT / "examples" / "slurm_array.sh").read_text()
    tasks = int(re.search(r"#SBATCH --array=1-(\d+)", script).group(1))
    shim = tmp_path / "bin" / "colorize"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m colorize_cli "$@" --dry-run\n')
    shim.chmod(0o755)
    seen = []
    for task in range(1, tasks + 1):
        env = {
            "PATH": f"{shim.parent}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_MIN": "1",
            "SLURM_ARRAY_TASK_MAX": str(tasks),
            "SLURM_ARRAY_TASK_COUNT": str(tasks),
        }
        out = subprocess.run(
            ["bash", str(ROOT / "examples" / "slurm_array.sh"), str(small_dir), str(tmp_path / "out")],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
        )
        assert out.returncode == 0 and f"shard {task}/{tasks} from Slurm" in out.stderr, out.stderr
        seen += [line.split()[1] for line in out.stdout.splitlines() if line.startswith("colorize ")]
    assert sorted(seen) == sorted(str(p) for p in small_dir.iterdir())


def test_the_kubernetes_example_tells_colorize_its_completions():
    import re

    yaml = (ROOT / "examples" / "k8s-indexed-job.yaml").read_text()
    assert "completionMode: Indexed" in yaml
    completions = re.search(r"^\s*completions: (\d+)", yaml, re.M).group(1)
    shards = re.search(r"name: COLORIZE_SHARDS\s+value: \"(\d+)\"", yaml).group(1)
    assert shards == completions
    assert re.search(r'command: \["colorize", "dir"', yaml)


def test_every_option_has_help_and_is_in_the_readme():
    import typer

    command = typer.main.get_command(app)
    ctx = command.make_context("colorize", ["models"], resilient_parsing=True)
    readme = (ROOT / "README.md").read_text()
    undocumented, no_help = [], []
    for name in command.list_commands(ctx):
        for param in command.get_command(ctx, name).params:
            if param.param_type_name != "option":
                continue
            no_help += [] if param.help else [f"{name} {param.opts[0]}"]
            undocumented += [
                f"{name} {o}" for o in (*param.opts, *param.secondary_opts) if o.startswith("--") and o not in readme
            ]
    assert not no_help and not undocumented, (no_help, undocumented)
