"""TOML files: built-in-by-name or path (scenarios, rehearsals) with one set of error messages, and
the one TOML writer.

:func:`dump_toml` writes through ``tomli_w`` rather than by hand: a hand-written writer here could not
write a list of tables (the documented ``stages`` load shape, ``stages = [{ name = "warm", … }]``,
so ``edgeproof rehearse`` with it failed at start), never quoted a key that needs it
(``"a key"``, ``"k.dot"``) and did not escape control characters. tomli_w does all three, and what
it writes reads back with ``tomllib`` to the same table.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from edgeproof.errors import ConfigError

__all__ = ["builtin_names", "dump_toml", "load_named_toml"]


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


def dump_toml(data: Mapping[str, Any]) -> str:
    """A table of plain values (str, int, float, bool, dates, lists/tuples, nested tables, lists of
    tables) as TOML text; ConfigError for a value TOML has no spelling for (``None``, objects)."""
    try:
        return tomli_w.dumps(data)
    except (TypeError, ValueError) as err:
        raise ConfigError("cannot write the table as TOML", detail=str(err)) from err
