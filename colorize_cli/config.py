"""Defaults from a config file: ~/.config/colorize/config.toml (or $XDG_CONFIG_HOME/colorize/config.toml), then
./colorize.toml, whose values win. One table per command, keys named as the options are (`render-size` or
`render_size`); the command line wins over both. Example:

    [dir]
    model = "unet-lab"
    workers = 4
    recursive = true
    log = "/var/log/colorize.log"

Handed to click as the context's default_map, so --help shows them as the defaults.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from its backport
    import tomli as tomllib

LOCAL_NAME = "colorize.toml"


class ConfigError(ValueError):
    """A config file that cannot be read or names an option that does not exist; one line naming the file."""


def config_files(cwd: Path | None = None, env: Mapping[str, str] = os.environ) -> list[Path]:
    """The config files that exist, the user's first and the working folder's last (later ones win)."""
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    candidates = [base / "colorize" / "config.toml", (cwd or Path.cwd()) / LOCAL_NAME]
    return [p for p in candidates if p.is_file()]


def read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config ({e})") from None
    for table, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {table!r} is not a [command] table")
    return data


def default_map(files: list[Path], option_names: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, Any]]:
    """{command: {parameter name: value}} from the files, checked against option_names ({command: {option name
    without dashes, or parameter name: parameter name}})."""
    merged: dict[str, dict[str, Any]] = {}
    for path in files:
        for command, values in read(path).items():
            if command not in option_names:
                raise ConfigError(f"{path}: no command {command!r} (tables: {', '.join(sorted(option_names))})")
            names = option_names[command]
            for key, value in values.items():
                if key not in names:
                    raise ConfigError(f"{path}: [{command}] {key!r} is not an option of `colorize {command}`")
                merged.setdefault(command, {})[names[key]] = value
    return merged
