"""The `colorize` command: options, help and exit codes only. torch is imported inside the commands that need it,
so `colorize --help` answers at once.

    cli/__init__.py   the Typer app, the root callback (--version, config-file defaults) and the command table
    cli/common.py     one-line errors, --log, usage checks, the options several commands share
    cli/photos.py     dir, image        -> batch.py plans -> colorizer.Colorizer.run_planned
    cli/video.py      video             -> video.run
    cli/evaluate.py   eval, models      -> evaluate.py, zoo.describe_models
    cli/train.py      train, export     -> train.Trainer, train_export.export

Each command gathers its parameters into a dataclass (PhotoArgs, VideoArgs, ...) and hands it to a run_* function;
the logic lives in the library, so the Python API reaches all of it.

Exit codes: 0 all succeeded, 1 some inputs failed, 2 usage error (bad option, unknown model, missing folder, no such
device), 3 nothing failed but some outputs are being made by another run right now (claimed), so not known done.
"""

from __future__ import annotations

from typing import Any

import typer

from colorize_cli import __version__
from colorize_cli.cli import evaluate, photos, train, video
from colorize_cli.cli.common import fail

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Bring colour to black-and-white photographs and film. `colorize models` lists the models.",
)


def _version(value: bool) -> None:
    if value:
        print(f"colorize {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    """Bring colour to black-and-white photographs and film. Defaults for any command's options can be set in
    ~/.config/colorize/config.toml or ./colorize.toml (a [dir], [image], ... table each; the command line wins)."""
    from colorize_cli import config, runlog

    ctx.call_on_close(runlog.close_log)
    try:
        ctx.default_map = config.default_map(config.config_files(), _option_names(ctx))
    except config.ConfigError as e:
        fail(str(e))


def _option_names(ctx: typer.Context) -> dict[str, dict[str, str]]:
    """{command: {option name without dashes, and parameter name: parameter name}} for the config file's keys."""
    names = {}
    group: Any = ctx.command  # the app's group: click types it as a plain Command
    for cmd_name in group.list_commands(ctx):
        params = [p for p in group.get_command(ctx, cmd_name).params if p.param_type_name == "option"]
        names[cmd_name] = {alias: p.name for p in params for alias in (p.name, *(o.lstrip("-") for o in p.opts))}
    return names


# The command table, in the order --help lists it.
app.command("dir")(photos.dir_cmd)
app.command("image")(photos.image_cmd)
app.command("video")(video.video_cmd)
app.command("eval")(evaluate.eval_cmd)
app.command("models")(evaluate.models_cmd)
app.command("train")(train.train_cmd)
app.command("export")(train.export_cmd)


def main() -> None:
    app(prog_name="colorize")  # also under `python -m colorize_cli`, so completion scripts name `colorize`


if __name__ == "__main__":
    main()
