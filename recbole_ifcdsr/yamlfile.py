"""Read a YAML file of ``key: value`` settings; every problem is a ConfigError that names the file
(and the line of a syntax error), instead of a PyYAML traceback about ``<unicode string>``."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from recbole_ifcdsr.errors import ConfigError, one_line


def read_yaml(path: str | os.PathLike, loader=yaml.SafeLoader) -> dict:
    """The mapping in ``path`` ({} for an empty file)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read ({one_line(error)})") from None
    try:
        loaded = yaml.load(text, Loader=loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or one_line(error)
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected 'key: value' lines, found a YAML {type(loaded).__name__}")
    return loaded
