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


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file's table. ConfigError (exit 2) naming ``what`` and the file when it cannot be read
    (missing, not UTF-8) and the file when it is not valid TOML."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {what} {path}: {getattr(err, 'strerror', None) or err}") from err
    return parse_toml(text, str(path))


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """TOML text → its table; ConfigError naming ``where`` when it is not valid TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{where}: not valid TOML: {err}") from err


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
    return read_toml(path, what), path


def dump_toml(data: Mapping[str, Any]) -> str:
    """A table of plain values (str, int, float, bool, dates, lists/tuples, nested tables, lists of
    tables) as TOML text; ConfigError for a value TOML has no spelling for (``None``, objects)."""
    try:
        return tomli_w.dumps(data)
    except (TypeError, ValueError) as err:
        raise ConfigError("cannot write the table as TOML", detail=str(err)) from err
