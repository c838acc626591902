"""Config settings declared once, and the one type check for values read from config tables (TOML).

**Settings tables.** A config section is a frozen dataclass whose fields are declared with
:func:`setting` (default, help, check), the pattern of ``origin/config.py`` and of datasette's
``SETTINGS``: :meth:`Settings.of` turns it into a table of :class:`Setting` rows, and that one table

- reads the section from TOML (:meth:`Settings.read` / :meth:`Settings.build`: every key type-checked
  by :func:`expect`, then its ``check``; an unknown key is an error naming the known ones),
- yields argparse flags with their defaults (:meth:`Settings.add_arguments`, :meth:`Settings.from_args`),
- reads environment variables when a row names one (:meth:`Settings.from_env`), and
- documents itself (:meth:`Settings.help_text` for ``--help``, :meth:`Settings.markdown` for docs),

so a default is written once, in the dataclass, and a test can check that every setting of a table
is in the matching ``--help`` and docs page. Every error has one shape, naming the file, the table,
the key and what was expected::

    spike.toml: [catalog] skus: must be >= 1, got 0
    spike.toml: [run] pool: expected a whole number, got true
    default.toml: colour: unknown key          (a top-level key: no table name)

**Type checks.**

``isinstance(True, int)`` is true in Python, so a check written as ``isinstance(v, int)`` accepts
``breakpoints = [true, 320]`` or ``widths = [true, 640]``, and the ``true`` then acts as 1 pixel. Here a
boolean is never a whole number nor a number; a whole number is accepted where a number is
expected (TOML's ``30`` for ``30.0``). Every error names the table, the key and the expected type::

    [canonical] breakpoints[0]: expected a whole number, got true
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from edgeproof.errors import ConfigError, ConfigTypeError

__all__ = [
    "Check",
    "ConfigTypeError",
    "Setting",
    "Settings",
    "above",
    "at_least",
    "between",
    "expect",
    "expect_list",
    "setting",
]

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


def _name(table: str, key: str, where: str | None) -> str:
    """``where: [table] key`` (``where: key`` for a top-level key): how every error names a setting."""
    place = f"{where}: " if where else ""
    return f"{place}[{table}] {key}" if table else f"{place}{key}"


def _fail(table: str, key: str, kind: type, value: Any, where: str | None) -> ConfigTypeError:
    return ConfigTypeError(f"{_name(table, key, where)}: expected {_NAMES.get(kind, kind.__name__)}, got {_spell(value)}")


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
        what = "a non-empty list" if non_empty else "a list"
        raise ConfigTypeError(f"{_name(table, key, where)}: expected {what} of {_PLURALS.get(item, item.__name__)}, "
                              f"got {_spell(value)}")
    return [expect(v, item, table=table, key=f"{key}[{i}]", where=where) for i, v in enumerate(value)]


# ------------------------------------------------------------------------------ settings tables

#: a check of a value of the right type: None when it is fine, else what is wrong ("must be >= 1")
Check = Callable[[Any], str | None]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def at_least(lo: float) -> Check:
    return lambda v: None if v >= lo else f"must be >= {_num(lo)}"


def above(lo: float) -> Check:
    return lambda v: None if v > lo else f"must be > {_num(lo)}"


def between(lo: float, hi: float) -> Check:
    return lambda v: None if lo <= v <= hi else f"must be {_num(lo)}..{_num(hi)}"


@dataclasses.dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its key, type, default, help and check. ``type`` is ``bool``, ``int``, ``float``,
    ``str`` or ``list`` (of ``item``); ``optional`` settings may be None (their default)."""

    name: str
    type: type
    default: Any
    help: str
    check: Check | None = None
    item: type | None = None
    #: the check of each element of a list
    item_check: Check | None = None
    #: the allowed values (argparse ``choices`` too)
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    #: the CLI flag (default ``--name-with-dashes``); "" = not a flag
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    metavar: str | None = None
    #: an environment variable that sets it (:meth:`Settings.from_env`)
    env: str | None = None
    #: what the docs and ``--help`` show as the default when it is computed ("4 x capacity_mb")
    shown_default: str | None = None

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-") if self.flag is None else self.flag

    @property
    def dest(self) -> str:
        """The argparse attribute: the flag's name (``--realtime-logs`` → ``realtime_logs``)."""
        return self.option[2:].replace("-", "_") if self.option else self.name

    def spelled_default(self, *, quoted: bool = True) -> str:
        """The default as TOML spells it (``"spike"``, ``[]``, ``10``), or unquoted for ``--help``."""
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None or (not quoted and self.default == ()):
            return "none"
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        if not quoted and isinstance(self.default, str):
            return self.default or '""'
        return _spell(list(self.default) if isinstance(self.default, tuple) else self.default)

    def validate(self, value: Any, *, table: str, where: str | None = None, key: str | None = None) -> Any:
        """``value`` type-checked (:func:`expect`) and checked; a list comes back as a tuple. Errors
        name ``[table] key`` (``key`` defaults to the setting's name: a flag or a variable may be
        named instead)."""
        key = key or self.name
        if value is None and self.optional:
            return None
        if self.type is list:
            out: Any = tuple(expect_list(value, self.item or str, table=table, key=key, where=where))
            for i, v in enumerate(out):
                problem = self.item_check(v) if self.item_check else None
                if problem:
                    raise ConfigError(f"{_name(table, f'{key}[{i}]', where)}: {problem}, got {_spell(v)}")
        else:
            out = expect(value, self.type, table=table, key=key, where=where)
        if self.choices is not None and out not in self.choices:
            raise ConfigError(f"{_name(table, key, where)}: must be one of "
                              f"{', '.join(_spell(c) for c in self.choices)}, got {_spell(value)}")
        problem = self.check(out) if self.check else None
        if problem:
            raise ConfigError(f"{_name(table, key, where)}: {problem}, got {_spell(value)}")
        return out


def setting(default: Any, help: str, *, check: Check | None = None, **extra: Any) -> Any:
    """A dataclass field that is a setting: ``skus: int = setting(2000, "products", check=at_least(1))``.

    ``extra``: :class:`Setting`'s ``item_check``, ``choices``, ``flag``, ``aliases``, ``metavar``,
    ``env``, ``shown_default``. A mutable default is not allowed (use a tuple)."""
    return dataclasses.field(default=default, metadata={"setting": {"help": help, "check": check, **extra}})


_T = TypeVar("_T")
_SCALARS = (bool, int, float, str)


def _kind(hint: Any) -> tuple[type, type | None, bool]:
    """A field's type hint → (type, list item type, optional)."""
    optional = False
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        if len(rest) != 1:
            raise TypeError(f"a setting has one type, got {hint!r}")
        hint = rest[0]
        args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (tuple, list):
        item = args[0] if args else str
        if item not in _SCALARS:
            raise TypeError(f"a list setting holds bool, int, float or str, got {hint!r}")
        return list, item, optional
    if hint not in _SCALARS:
        raise TypeError(f"a setting is a bool, int, float, str or a tuple of them, got {hint!r}")
    return hint, None, optional


class Settings(Generic[_T]):
    """The settings table of one config section (a TOML table), built from its dataclass by
    :meth:`of`: read, checked, turned into flags and documented from the one declaration."""

    def __init__(self, table: str, rows: Sequence[Setting], cls: type[_T] | None = None) -> None:
        self.table = table
        self.rows = tuple(rows)
        self.cls = cls
        self._by_name = {r.name: r for r in self.rows}

    @classmethod
    def of(cls, dataclass: type[_T], table: str, **overrides: Mapping[str, Any]) -> Settings[_T]:
        """The fields of ``dataclass`` declared with :func:`setting`, in order; ``overrides`` gives
        per-field Setting attributes (e.g. ``help=``) for a dataclass declared elsewhere."""
        hints = typing.get_type_hints(dataclass)
        rows = []
        for f in dataclasses.fields(dataclass):  # type: ignore[arg-type]
            meta = dict(f.metadata.get("setting") or {})
            meta.update(overrides.get(f.name) or {})
            if not meta:
                continue
            if f.default is dataclasses.MISSING:
                raise TypeError(f"{dataclass.__name__}.{f.name}: a setting needs a default")
            kind, item, optional = _kind(hints[f.name])
            rows.append(Setting(f.name, kind, f.default, str(meta.pop("help", "")), item=item,
                                optional=optional or f.default is None, **meta))
        return cls(table, rows, dataclass)

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.rows)

    def __getitem__(self, name: str) -> Setting:
        return self._by_name[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def defaults(self) -> dict[str, Any]:
        return {r.name: r.default for r in self.rows}

    # -------------------------------------------------------------------------- TOML

    def read(self, data: Any, *, where: str | None = None, ignore: Sequence[str] = ()) -> dict[str, Any]:
        """The section ``data`` (a TOML table) → every setting's value, defaults filled in.

        ConfigError for a section that is not a table, an unknown key (``ignore`` names keys another
        reader handles, e.g. sub-tables), a value of the wrong type or one its check refuses."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            name = f"[{self.table}]" if self.table else "the file"
            raise ConfigTypeError(f"{where + ': ' if where else ''}{name} must be a table, got {_spell(data)}")
        known = set(self._by_name) | set(ignore)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{_name(self.table, unknown[0], where)}: unknown key",
                              detail=f"known keys: {', '.join(sorted(known))}")
        return {r.name: r.validate(data[r.name], table=self.table, where=where) if r.name in data else r.default
                for r in self.rows}

    def build(self, data: Any, *, where: str | None = None, ignore: Sequence[str] = (), **values: Any) -> _T:
        """The dataclass of the section: :meth:`read`, plus ``values`` (fields that are not settings,
        or settings another reader computed)."""
        assert self.cls is not None, "a table built without its dataclass"
        return self.cls(**{**self.read(data, where=where, ignore=ignore), **values})

    def validate(self, values: Mapping[str, Any], *, where: str | None = None) -> dict[str, Any]:
        """Check values that did not come from TOML (flags, env, keyword arguments), one message style."""
        return {k: self[k].validate(v, table=self.table, where=where) for k, v in values.items()}

    # -------------------------------------------------------------------------- CLI, env

    def add_arguments(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup, *,
                      only: Sequence[str] | None = None, defaults: bool = True,
                      required: Sequence[str] = ()) -> None:
        """One flag per setting (or per name in ``only``), its help ending with its default.
        ``defaults=False``: every flag defaults to None, so an absent flag leaves the setting as a
        file has it (an override). ``required``: settings that must be given as flags."""
        rows = [self[n] for n in only] if only is not None else [r for r in self.rows if r.option]
        for r in rows:
            default = r.default if defaults else None
            must = r.name in required
            shown = " (required)" if must else f" (default: {r.spelled_default(quoted=False)})" if defaults else ""
            names = [r.option, *r.aliases]
            common: dict[str, Any] = {"dest": r.dest, "default": None if must else default, "help": r.help + shown}
            if must:
                common["required"] = True
            if r.metavar or r.type in (int, float):
                common["metavar"] = r.metavar or "N"
            if r.choices is not None:
                common["choices"] = r.choices
            if r.type is bool:
                common.pop("choices", None)
                parser.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
            elif r.type is list:
                parser.add_argument(*names, action="append", type=r.item or str,
                                    **{**common, "default": None})
            else:
                parser.add_argument(*names, type=r.type, **common)

    def with_flags(self, **flags: str | Mapping[str, Any]) -> Settings[_T]:
        """The table (or the rows named) with other flags, for a command whose flag names its table
        (``[replay] speed`` is ``loadtest run --replay-speed``): ``with_flags(speed="--replay-speed")``
        or ``with_flags(rules={"flag": "--gate", "metavar": "EXPR"})``. Only the CLI spelling changes:
        default, check and help stay the one declaration's."""
        rows = [dataclasses.replace(r, **({"flag": f} if isinstance(f, str) else dict(f)))
                if (f := flags.get(r.name)) is not None else r for r in self.rows]
        return Settings(self.table, rows, self.cls)

    def from_args(self, args: argparse.Namespace, *, where: str | None = None) -> dict[str, Any]:
        """The settings given as flags (absent flags and None values left out), checked."""
        given = {r.name: getattr(args, r.dest) for r in self.rows
                 if getattr(args, r.dest, None) is not None}
        return {k: self[k].validate(v, table="", where=where, key=self[k].option) for k, v in given.items()}

    def from_env(self, environ: Mapping[str, str]) -> dict[str, Any]:
        """The settings whose ``env`` variable is set (and not empty), converted and checked."""
        out: dict[str, Any] = {}
        for r in self.rows:
            raw = environ.get(r.env) if r.env else None
            if not raw:
                continue
            value: Any = raw
            if r.type in (int, float):
                try:
                    value = r.type(raw)
                except ValueError as err:
                    raise ConfigError(f"{r.env}: expected {_NAMES[r.type]}, got {raw!r}") from err
            elif r.type is bool:
                value = raw.lower() in ("1", "true", "yes", "on")
            out[r.name] = r.validate(value, table="", key=r.env)
        return out

    # -------------------------------------------------------------------------- docs

    def help_text(self, *, heading: str | None = None) -> str:
        """The table for an epilog: one line per key with its default and help."""
        prefix = f"[{self.table}] " if self.table else ""
        lines = [heading or (f"[{self.table}] keys (TOML):" if self.table else "top-level keys (TOML):")]
        width = max((len(prefix + r.name) for r in self.rows), default=0)
        shown = max((len(r.spelled_default()) for r in self.rows), default=0)
        for r in self.rows:
            lines.append(f"  {(prefix + r.name).ljust(width)} = {r.spelled_default().ljust(shown)}  {r.help}".rstrip())
        return "\n".join(lines)

    def markdown(self) -> str:
        """The table as Markdown (``| key | default | meaning |``) for a docs page."""
        rows = ["| key | default | meaning |", "|---|---|---|"]
        rows += [f"| `{r.name}` | `{r.spelled_default()}` | {r.help} |" for r in self.rows]
        return "\n".join(rows)
