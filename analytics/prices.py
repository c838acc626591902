"""The cost model's price table: one TOML file shipped in the package, overridable key by key.

``analytics/data/prices.toml`` holds every figure with the public AWS pricing page it follows and the
day it was read. The key names, types and checks are declared once here (:data:`_TABLES`, rows of
:class:`edgeproof.settings.Setting`); the *values* are the file's, so a price is written in one place.
:func:`load_prices` reads the shipped file (every key must be there) and then, optionally, a user's
file (``--prices FILE``) whose keys override the shipped ones. Both go through
:meth:`edgeproof.settings.Settings.read`, so an unknown key or a wrong type reads like every other
config error (``mine.toml: [cloudfront] colour: unknown key``, exit 2).

Geography-keyed tables (``[cloudfront.data_transfer_per_gb]`` …) have one row per geography of
``edgeproof/data/regions.toml`` (:func:`edgeproof.cloudfront.geographies`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from edgeproof.cloudfront import geographies
from edgeproof.errors import ConfigError
from edgeproof.settings import Setting, Settings, above, at_least, between
from edgeproof.tomlfile import parse_toml, read_toml

__all__ = ["ARCHITECTURES", "PRICE_TABLES", "Prices", "builtin_prices", "load_prices"]

ARCHITECTURES = ("x86", "graviton")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: tables whose figures came from one pricing page on one day (their ``source`` and ``taken``)
PRICE_TABLES = ("cloudfront", "s3", "fargate")


def _date(value: str) -> str | None:
    return None if _DATE.match(value) else "must be a date YYYY-MM-DD"


def _url(value: str) -> str | None:
    return None if value.startswith("https://") else "must be the https:// address of the AWS pricing page"


def _row(name: str, kind: type, help: str, **extra: Any) -> Setting:
    return Setting(name, kind, None, help, **extra)


def _money(name: str, help: str, *, optional: bool = False) -> Setting:
    return _row(name, float, help, check=at_least(0), optional=optional)


def _tiers(name: str, help: str) -> Setting:
    return _row(name, list, help, item=float, item_check=above(0))


def _source_rows() -> list[Setting]:
    return [_row("source", str, "the public AWS pricing page the figures follow", check=_url),
            _row("taken", str, "the day the figures were read (YYYY-MM-DD)", check=_date)]


@cache
def _tables() -> dict[str, Settings[Any]]:
    """Every table of the price file (dotted name → its rows), in the file's order."""
    geos = tuple(geographies())
    per_geo = {
        "cloudfront.data_transfer_per_gb": [_row(g, list, "$/GB per tier of data_transfer_tiers_tb (+1 above them)",
                                                 item=float, item_check=at_least(0)) for g in geos],
        "cloudfront.https_requests_per_10k": [_money(g, "$ per 10,000 HTTPS requests") for g in geos],
        "cloudfront.origin_shield_requests_per_10k": [
            _money(g, "$ per 10,000 requests to Origin Shield in this geography", optional=True) for g in geos],
    }
    rows: dict[str, list[Setting]] = {
        "model": [
            _row("month_hours", float, "hours in the month an observed window is scaled to", check=above(0)),
            _row("unknown_geography", str, "the geography an edge location not in regions.toml is priced as",
                 choices=geos),
            _row("origin_shield_geography", str, "the geography of the Origin Shield's AWS Region", choices=geos),
        ],
        "cloudfront": [
            *_source_rows(),
            _tiers("data_transfer_tiers_tb", "widths of the data-transfer tiers, TB per month per geography"),
            _money("functions_per_million", "$ per million CloudFront Functions invocations"),
        ],
        **per_geo,
        "s3": [
            *_source_rows(),
            _tiers("storage_tiers_tb", "widths of the S3 Standard storage tiers, TB"),
            _row("storage_per_gb_month", list, "$/GB-month per storage tier (+1 above them)", item=float,
                 item_check=at_least(0)),
            _money("put_per_1000", "$ per 1,000 PUT requests"),
            _money("get_per_1000", "$ per 1,000 GET requests"),
        ],
        "fargate": [
            *_source_rows(),
            *(_money(f"{arch}_{unit}_per_hour", f"$ per {unit.replace('gb', 'GB')}-hour, Linux/{arch}")
              for arch in ARCHITECTURES for unit in ("vcpu", "gb")),
        ],
        "transformer": [
            _row("cpu_ms", float, "CPU milliseconds per transform when none was measured", check=above(0)),
            _row("vcpu", float, "vCPUs of a transformer task", check=above(0)),
            _row("memory_gb", float, "GB of memory of a transformer task", check=above(0)),
            _row("utilization", float, "share of the tasks' vCPU time spent transforming", check=between(0.01, 1)),
            _row("architecture", str, "x86 or graviton", choices=ARCHITECTURES),
        ],
    }
    return {name: Settings(name, table) for name, table in rows.items()}


@dataclass(frozen=True, slots=True)
class Prices:
    """The validated price table: ``tables[name][key]`` (lists as tuples), and the files it came from."""

    tables: Mapping[str, Mapping[str, Any]]
    files: tuple[str, ...]

    def __getitem__(self, table: str) -> Mapping[str, Any]:
        return self.tables[table]

    def with_values(self, table: str, **values: Any) -> Prices:
        """These prices with some keys of one table replaced (checked like the file's: flags use it)."""
        checked = _tables()[table].validate(values)
        return dataclasses.replace(self, tables={**self.tables, table: {**self.tables[table], **checked}})

    def sources(self) -> dict[str, dict[str, str]]:
        """Each priced table's pricing page and the day its figures were read (for every output)."""
        return {t: {"source": self.tables[t]["source"], "taken": self.tables[t]["taken"]} for t in PRICE_TABLES}


def _section(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _subtables(name: str, names: list[str]) -> list[str]:
    """The direct sub-tables of ``name`` among the table names (read by their own rows, not its)."""
    prefix = f"{name}." if name else ""
    return [n[len(prefix):].split(".")[0] for n in names if n.startswith(prefix) and n != name]


def _read(data: Mapping[str, Any], where: str, base: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Every table of ``data`` checked; keys it leaves out come from ``base`` (None: every key required)."""
    tables = _tables()
    names = list(tables)
    top = sorted(set(data) - {n.split(".")[0] for n in names})
    if top:
        raise ConfigError(f"{where}: [{top[0]}]: unknown table",
                          detail=f"known tables: {', '.join(sorted({n.split('.')[0] for n in names}))}")
    out: dict[str, dict[str, Any]] = {}
    for name, settings in tables.items():
        if base is not None:
            settings = Settings(name, [dataclasses.replace(r, default=base[name][r.name]) for r in settings])
        values = settings.read(_section(data, name), where=where, ignore=_subtables(name, names))
        missing = [r.name for r in settings if values[r.name] is None and not r.optional]
        if missing:
            raise ConfigError(f"{where}: [{name}] {missing[0]}: missing (the built-in price table must give "
                              "every figure)")
        out[name] = values
    _check_tiers(out, where)
    return out


def _check_tiers(t: Mapping[str, Mapping[str, Any]], where: str) -> None:
    """Each tiered price list has one price per tier and one above them; the Origin Shield geography a price."""
    widths = len(t["cloudfront"]["data_transfer_tiers_tb"])
    for geo, prices in t["cloudfront.data_transfer_per_gb"].items():
        if len(prices) != widths + 1:
            raise ConfigError(f"{where}: [cloudfront.data_transfer_per_gb] {geo}: needs {widths + 1} prices (one per "
                              f"tier of data_transfer_tiers_tb and one above them), got {len(prices)}")
    if len(t["s3"]["storage_per_gb_month"]) != len(t["s3"]["storage_tiers_tb"]) + 1:
        raise ConfigError(f"{where}: [s3] storage_per_gb_month: needs {len(t['s3']['storage_tiers_tb']) + 1} prices "
                          "(one per tier of storage_tiers_tb and one above them)")
    shield = t["model"]["origin_shield_geography"]
    if t["cloudfront.origin_shield_requests_per_10k"].get(shield) is None:
        raise ConfigError(f"{where}: [model] origin_shield_geography: no Origin Shield price for {shield!r} in "
                          "[cloudfront.origin_shield_requests_per_10k]")


@cache
def builtin_prices() -> Prices:
    """The shipped table (``analytics/data/prices.toml``), checked: every key present, every value valid."""
    text = resources.files("edgeproof.analytics").joinpath("data/prices.toml").read_text(encoding="utf-8")
    return Prices(_read(parse_toml(text, "prices.toml"), "prices.toml", None), ("prices.toml (built-in)",))


def load_prices(path: str | Path | None = None) -> Prices:
    """The built-in prices, with the keys of the TOML file ``path`` (when given) overriding them.

    ConfigError (exit 2) for an unreadable file, invalid TOML, an unknown table or key, a wrong type or a
    value its check refuses, naming the file, the table and the key."""
    base = builtin_prices()
    if path is None:
        return base
    where = str(path)
    return Prices(_read(read_toml(path, "the price file"), where, base.tables), (*base.files, where))
