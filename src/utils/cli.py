"""Checks that run before Hydra composes a config, so bad input reads as one line, not a traceback."""

from __future__ import annotations

from pathlib import Path

import yaml

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _config_dirs(argv: list[str]) -> list[Path]:
    dirs = [CONF_DIR]
    for i, arg in enumerate(argv):
        for flag in ("--config-dir", "-cd"):
            if arg == flag and i + 1 < len(argv):
                dirs.append(Path(argv[i + 1]))
            elif arg.startswith(flag + "="):
                dirs.append(Path(arg.split("=", 1)[1]))
    return dirs


def check_yaml(argv: list[str]) -> None:
    """Parse every YAML file Hydra may load; exit with `error: malformed YAML in <file> line L: ...`."""
    for folder in _config_dirs(argv):
        for path in sorted(folder.rglob("*.yaml")) if folder.is_dir() else []:
            try:
                yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                raise SystemExit(
                    f"error: malformed YAML in {path}{where}: {getattr(err, 'problem', err)}"
                ) from None
