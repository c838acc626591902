"""Built-in-by-name or path TOML files (scenarios, rehearsals): one loader, one set of error messages."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from edgeproof.errors import ConfigError

__all__ = ["builtin_names", "load_named_toml"]


def builtin_names(folder: Path) -> list[str]:
    """The names of the ``*.toml`` files shipped in ``folder``."""
    return sorted(p.stem for p in folder.glob("*.toml"))


def load_named_toml(name_or_path: str | Path, folder: Path, what: str) -> tuple[dict[str, Any], Path]:
    """A built-in ``what`` by name (a ``NAME.toml`` in ``folder``) or a TOML file path → (data, path).

    Raises ConfigError naming the built-ins for an unknown name, and the file for unreadable or
    invalid TOML.
    """
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith(".toml") or path.is_file()):
        names = builtin_names(folder)
        if text not in names:
            raise ConfigError(f"unknown {what} {text!r}", detail=f"built-in: {', '.join(names)}; or give a .toml path")
        path = folder / f"{text}.toml"
    try:
        return tomllib.loads(path.read_text()), path
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror or err}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
