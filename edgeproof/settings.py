"""Type checks for values read from config tables (TOML): one helper, one wording of its errors.

``isinstance(True, int)`` is true in Python, so a check written as ``isinstance(v, int)`` accepts
``breakpoints = [true, 320]`` or ``widths = [true, 640]``, and the ``true`` then acts as 1 pixel. Here a
boolean is never a whole number nor a number; a whole number is accepted where a number is
expected (TOML's ``30`` for ``30.0``). Every error names the table, the key and the expected type::

    [canonical] breakpoints[0]: expected a whole number, got true
"""

from __future__ import annotations

import json
from typing import Any

from edgeproof.errors import ConfigTypeError

__all__ = ["ConfigTypeError", "expect", "expect_list"]

_NAMES: dict[type, str] = {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
                           list: "a list", dict: "a table"}
_PLURALS: dict[type, str] = {bool: "true/false values", int: "whole numbers", float: "numbers", str: "strings",
                             dict: "tables"}


def _spell(value: Any) -> str:
    """A value as TOML spells it: ``true``, ``"x"``, ``[1, 2]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_spell(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def _is(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool is an int subclass: never a whole number or a number here
        return False
    if kind is float:
        return isinstance(value, int | float)
    if kind is list:
        return isinstance(value, list | tuple)
    return isinstance(value, kind)


def _fail(table: str, key: str, kind: type, value: Any, where: str | None) -> ConfigTypeError:
    place = f"{where}: " if where else ""
    return ConfigTypeError(f"{place}[{table}] {key}: expected {_NAMES.get(kind, kind.__name__)}, got {_spell(value)}")


def expect(value: Any, kind: type, *, table: str, key: str, where: str | None = None) -> Any:
    """``value`` when it is a ``kind`` (an int as a float for ``float``), else ConfigTypeError naming
    ``[table] key`` (and the file ``where``, when given) and the expected type."""
    if not _is(value, kind):
        raise _fail(table, key, kind, value, where)
    return float(value) if kind is float else value


def expect_list(value: Any, item: type, *, table: str, key: str, where: str | None = None,
                non_empty: bool = False) -> list[Any]:
    """``value`` as a list whose every element is an ``item`` (see :func:`expect`)."""
    if not _is(value, list) or (non_empty and not value):
        place = f"{where}: " if where else ""
        what = "a non-empty list" if non_empty else "a list"
        raise ConfigTypeError(f"{place}[{table}] {key}: expected {what} of {_PLURALS.get(item, item.__name__)}, "
                              f"got {_spell(value)}")
    return [expect(v, item, table=table, key=f"{key}[{i}]", where=where) for i, v in enumerate(value)]
