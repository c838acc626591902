"""Scenario files: the promotion a load test plays, declared once in TOML with documented defaults.

Every key's default, check and meaning is declared once, in the dataclasses below (fields made with
:func:`edgeproof.settings.setting`; one :class:`~edgeproof.settings.Settings` table per TOML table,
:data:`SETTINGS`); docs/loadtest.md shows the same defaults (a test compares them). A scenario has
these tables (every key optional)::

    name = "spike"
    seed = 1                      # the URL sequence is reproducible for a seed
    timeout_s = 10.0              # per-request connect/read timeout

    [catalog]
    skus = 2000                   # products; SKU i has images 1..images_per_sku
    images_per_sku = 3
    zipf = 0.9                    # popularity exponent over SKUs (rank 1 = hottest)
    keys_file = ""                # one source key per line (``edgeproof origin sample-catalog`` writes
                                  # DIR/catalog.txt); replaces skus/images_per_sku/path_template
    path_template = "/images/sku-{sku:05d}-{image}.jpg"
    [catalog.roles.thumb]         # where an image appears; share of requests, srcset widths and the
    share = 0.6                   # slot width as a fraction of the viewport (CSS px)
    widths = [160, 240, 320, 480, 640]
    slot = 0.5
    quality = 75

    [clients]
    population = 5000             # simulated clients; each has a stable device, browser and POP
    pops = 8                      # POP hint sent as ``X-Edge-Pop: <index>`` (the edge emulator honours it)
    pop_header = "X-Edge-Pop"     # "" to send none
    [clients.devices.mobile]      # share, viewport (CSS px) and DPR
    [clients.browsers.chrome]     # share, accept, user_agent

    [noise]                       # share of requests that get each kind of front-end noise
    shuffle = 0.5   aliases = 0.3   upper_case = 0.1   tracking = 0.2   cache_buster = 0.005
    odd_dpr = 0.05

    [promotion]
    new_skus = 20                 # the last N SKUs of the catalog: never requested before the spike
    share = 0.3                   # share of requests going to them from the spike start on

    [shape]                       # see edgeproof.loadtest.shapes: kind = spike | waves | step | soak | stages
    kind = "spike"
    duration = 120
    peak_rps = 50

    [gates]
    rules = ["hit_rate >= 0.96", "p99_ms(miss) <= 500", "p99_ms <= 150", "error_rate <= 0.01",
             "dropped_rate <= 0.01"]
    scope = "spike"               # rows scored: "spike" (the spike phases) or "all"

    [replay]                      # replay mode instead of the synthetic workload
    file = ""                     # a compact replay file (edgeproof loadtest prepare-traffic)
    speed = 0.0                   # log seconds per test second; 0 = fit the log into duration

    [run]
    pool = 1000                   # max requests in flight per worker process
    max_lateness_s = 1.0          # an arrival later than this is dropped (counted), not sent
    late_ms = 10.0                # an arrival later than this is counted as late
    drain_s = 5.0                 # after the last arrival, wait this long for in-flight requests
    arrivals = "uniform"          # or "poisson"

Loading validates everything and raises :class:`~edgeproof.errors.ConfigError` naming the file and key.
This module must stay importable without Locust and without boto3.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeproof.errors import ConfigError
from edgeproof.settings import Settings, at_least, between, setting
from edgeproof.tomlfile import builtin_names, load_named_toml

__all__ = [
    "BUILTIN_DIR",
    "SETTINGS",
    "Browser",
    "CatalogConfig",
    "ClientsConfig",
    "Device",
    "GatesConfig",
    "NoiseConfig",
    "PromotionConfig",
    "ReplayConfig",
    "Role",
    "RunSettings",
    "Scenario",
    "list_builtin_scenarios",
    "load_scenario",
    "scenario_from_dict",
]

BUILTIN_DIR = Path(__file__).resolve().parent / "scenarios"

DEFAULT_GATES = (
    "hit_rate >= 0.96",
    "p99_ms(miss) <= 500",
    "p99_ms <= 150",
    "error_rate <= 0.01",
    "dropped_rate <= 0.01",
)

_SHARE = "share of requests (relative to the others' shares)"


@dataclass(frozen=True, slots=True)
class Role:
    """``[catalog.roles.NAME]``: where an image appears on the page."""

    name: str
    share: float = setting(1.0, _SHARE, check=at_least(0))
    widths: tuple[int, ...] = setting((640,), "srcset widths in px (1..10000; the smallest covering the slot is sent)",
                                      check=lambda v: None if v else "must not be empty",
                                      item_check=between(1, 10_000))
    slot: float = setting(1.0, "the slot's width as a fraction of the viewport (CSS px)", check=between(0.01, 10))
    quality: int = setting(80, "the q= parameter sent", check=between(1, 100))


@dataclass(frozen=True, slots=True)
class Device:
    """``[clients.devices.NAME]``."""

    name: str
    share: float = setting(1.0, _SHARE, check=at_least(0))
    viewport: int = setting(1024, "viewport width, CSS px", check=between(100, 10_000))
    dpr: float = setting(1.0, "device pixel ratio", check=between(0.5, 5))


@dataclass(frozen=True, slots=True)
class Browser:
    """``[clients.browsers.NAME]``."""

    name: str
    share: float = setting(1.0, _SHARE, check=at_least(0))
    accept: str = setting("image/*", "the Accept header sent")
    user_agent: str = setting("", "the User-Agent header sent", shown_default='"edgeproof-loadtest (NAME)"')


DEFAULT_ROLES = (
    Role("thumb", 0.6, (160, 240, 320, 480, 640), 0.5, 75),
    Role("pdp", 0.3, (480, 640, 800, 1080, 1280, 1600), 1.0, 80),
    Role("zoom", 0.1, (1200, 1600, 2000, 2400), 2.0, 85),
)
DEFAULT_DEVICES = (
    Device("mobile", 0.6, 390, 3.0),
    Device("tablet", 0.1, 820, 2.0),
    Device("desktop", 0.3, 1440, 1.0),
)
DEFAULT_BROWSERS = (
    Browser(
        "chrome", 0.65, "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
    ),
    Browser(
        "safari", 0.25, "image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 15_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/15.6 Mobile/15E148 Safari/604.1",
    ),
    Browser(
        "legacy", 0.10, "image/jpeg,image/png,image/*;q=0.8",
        "Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko",
    ),
)


def _template(text: str) -> str | None:
    if not text.startswith("/"):
        return "must start with '/'"
    try:
        text.format(sku=1, image=1)
    except (KeyError, IndexError, ValueError) as err:
        return f"only {{sku}} and {{image}} may be used ({err})"
    return None


@dataclass(frozen=True, slots=True)
class CatalogConfig:
    skus: int = setting(2000, "products; SKU i has images 1..images_per_sku", check=between(1, 10_000_000))
    images_per_sku: int = setting(3, "images per product", check=between(1, 1000))
    zipf: float = setting(0.9, "popularity exponent over SKUs (rank 1 = hottest)", check=between(0, 5))
    keys_file: str = setting("", "one source key per line (origin sample-catalog writes DIR/catalog.txt; relative "
                                 "to the scenario file); replaces skus, images_per_sku and path_template")
    path_template: str = setting("/images/sku-{sku:05d}-{image}.jpg", "URL path of SKU {sku}, image {image}",
                                 check=_template)
    roles: tuple[Role, ...] = DEFAULT_ROLES


@dataclass(frozen=True, slots=True)
class ClientsConfig:
    population: int = setting(5000, "simulated clients; each has a stable device, browser and POP",
                              check=between(1, 100_000_000))
    pops: int = setting(8, "POP hints sent as <pop_header>: <index> (the edge emulator honours it)",
                        check=between(1, 1000))
    pop_header: str = setting("X-Edge-Pop", "the POP hint header; \"\" to send none")
    devices: tuple[Device, ...] = DEFAULT_DEVICES
    browsers: tuple[Browser, ...] = DEFAULT_BROWSERS


_NOISE = between(0, 1)


@dataclass(frozen=True, slots=True)
class NoiseConfig:
    """``[noise]``: the share of requests that get each kind of front-end noise."""

    shuffle: float = setting(0.5, "parameter order permuted", check=_NOISE)
    aliases: float = setting(0.3, "width→w/Width, format→f/fmt, q→quality", check=_NOISE)
    upper_case: float = setting(0.1, "format=AUTO", check=_NOISE)
    tracking: float = setting(0.2, "utm_*/fbclid/gclid parameters added", check=_NOISE)
    cache_buster: float = setting(0.005, "cb=<unique> added", check=_NOISE)
    odd_dpr: float = setting(0.05, "CSS width plus an odd dpr= (1.5, 1.75, 2.625 …)", check=_NOISE)


@dataclass(frozen=True, slots=True)
class PromotionConfig:
    new_skus: int = setting(20, "the last N SKUs of the catalog: never requested before the spike", check=at_least(0))
    share: float = setting(0.3, "share of requests going to them from the spike start on", check=between(0, 1))


@dataclass(frozen=True, slots=True)
class GatesConfig:
    rules: tuple[str, ...] = setting(DEFAULT_GATES, "gates, METRIC[(FILTER,...)] OP NUMBER (edgeproof.loadtest.gates)")
    scope: str = setting("spike", "rows scored: the spike phases, or all", choices=("spike", "all"))


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    file: str = setting("", "a compact traffic file (edgeproof loadtest prepare-traffic); replaces the workload")
    speed: float = setting(0.0, "log seconds per test second; 0 = fit the log into duration", check=at_least(0))


@dataclass(frozen=True, slots=True)
class RunSettings:
    pool: int = setting(1000, "max requests in flight per worker process", check=between(1, 100_000))
    max_lateness_s: float = setting(1.0, "an arrival later than this is dropped (counted), not sent", check=at_least(0))
    late_ms: float = setting(10.0, "an arrival later than this is counted as late", check=at_least(0))
    drain_s: float = setting(5.0, "after the last arrival, wait this long for in-flight requests",
                             check=between(0, 600))
    arrivals: str = setting("uniform", "arrival process", choices=("uniform", "poisson"))


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario. ``shape`` stays a plain table; :func:`edgeproof.loadtest.shapes.build_shape` reads it."""

    name: str = setting("custom", "the scenario's name")
    description: str = setting("", "one line on what it plays")
    seed: int = setting(1, "the URL sequence is reproducible for a seed (per lane)")
    timeout_s: float = setting(10.0, "per-request connect/read timeout, seconds", check=between(0.1, 600))
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    clients: ClientsConfig = field(default_factory=ClientsConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    shape: dict[str, Any] = field(default_factory=lambda: {"kind": "spike"})
    gates: GatesConfig = field(default_factory=GatesConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    run: RunSettings = field(default_factory=RunSettings)
    source: str = ""  # the file it came from ("" for a dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the table as given, to re-serialize


_SECTIONS = ("catalog", "clients", "noise", "promotion", "shape", "gates", "replay", "run")
#: the settings of every table of a scenario file, by TOML table ("" = the top level); the entries of
#: ``[catalog.roles.NAME]``, ``[clients.devices.NAME]`` and ``[clients.browsers.NAME]`` under those names
SETTINGS: dict[str, Settings[Any]] = {
    "": Settings.of(Scenario, ""),
    "catalog": Settings.of(CatalogConfig, "catalog"),
    "catalog.roles.NAME": Settings.of(Role, "catalog.roles.NAME"),
    "clients": Settings.of(ClientsConfig, "clients"),
    "clients.devices.NAME": Settings.of(Device, "clients.devices.NAME"),
    "clients.browsers.NAME": Settings.of(Browser, "clients.browsers.NAME"),
    "noise": Settings.of(NoiseConfig, "noise"),
    "promotion": Settings.of(PromotionConfig, "promotion"),
    "gates": Settings.of(GatesConfig, "gates"),
    "replay": Settings.of(ReplayConfig, "replay"),
    "run": Settings.of(RunSettings, "run"),
}


def _sub(where: str, table: Any, key: str, prefix: str = "") -> Any:
    """A sub-table (None when absent); ConfigError when it is not a table."""
    value = table.get(key) if isinstance(table, dict) else None
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f"{where}: [{prefix}{key}] must be a table")
    return value


def _entries(where: str, table: dict[str, Any] | None, prefix: str, default: tuple[Any, ...]) -> tuple[Any, ...]:
    """The named entries of a table such as ``[catalog.roles]`` (the defaults when absent)."""
    if table is None:
        return default
    rows = SETTINGS[prefix + ".NAME"]
    out = []
    for name, spec in table.items():
        values = Settings(f"{prefix}.{name}", rows.rows).read(spec, where=where)
        if rows.cls is Browser and not values["user_agent"]:
            values["user_agent"] = f"edgeproof-loadtest ({name})"
        out.append(rows.cls(name=name, **values))  # type: ignore[misc]
    if not out:
        raise ConfigError(f"{where}: [{prefix}] needs at least one entry")
    if sum(i.share for i in out) <= 0:
        raise ConfigError(f"{where}: [{prefix}] shares must add up to more than 0")
    return tuple(out)


def _path(base_dir: Path, text: str) -> str:
    """A file named in the scenario, relative to the scenario file's folder."""
    return str((base_dir / text).resolve()) if text and not Path(text).is_absolute() else text


def scenario_from_dict(data: dict[str, Any], where: str = "<scenario>", base_dir: Path | None = None) -> Scenario:
    """Validate a scenario table (as parsed from TOML) into a :class:`Scenario`."""
    from edgeproof.loadtest.gates import parse_gate
    from edgeproof.loadtest.shapes import build_shape  # validates the shape table

    base_dir = base_dir or Path.cwd()
    top = SETTINGS[""].read(data, where=where, ignore=_SECTIONS)
    cat = _sub(where, data, "catalog")
    catalog = SETTINGS["catalog"].build(cat, where=where, ignore=("roles",),
                                        roles=_entries(where, _sub(where, cat, "roles", "catalog."),
                                                       "catalog.roles", DEFAULT_ROLES))
    catalog = replace(catalog, keys_file=_path(base_dir, catalog.keys_file))
    cl = _sub(where, data, "clients")
    clients = SETTINGS["clients"].build(
        cl, where=where, ignore=("devices", "browsers"),
        devices=_entries(where, _sub(where, cl, "devices", "clients."), "clients.devices", DEFAULT_DEVICES),
        browsers=_entries(where, _sub(where, cl, "browsers", "clients."), "clients.browsers", DEFAULT_BROWSERS))
    gates = SETTINGS["gates"].build(_sub(where, data, "gates"), where=where)
    for i, rule in enumerate(gates.rules):
        parse_gate(rule, where=f"{where}: [gates] rules[{i}]")
    replay = SETTINGS["replay"].build(_sub(where, data, "replay"), where=where)
    shape = _sub(where, data, "shape") or {"kind": "spike"}
    scenario = Scenario(
        **top,
        catalog=catalog, clients=clients,
        noise=SETTINGS["noise"].build(_sub(where, data, "noise"), where=where),
        promotion=SETTINGS["promotion"].build(_sub(where, data, "promotion"), where=where),
        shape=dict(shape), gates=gates,
        replay=ReplayConfig(_path(base_dir, replay.file), replay.speed),
        run=SETTINGS["run"].build(_sub(where, data, "run"), where=where),
        source=where, raw=data,
    )
    if scenario.promotion.new_skus >= catalog.skus and not catalog.keys_file:
        raise ConfigError(f"{where}: [promotion] new_skus ({scenario.promotion.new_skus}) must be below "
                          f"[catalog] skus ({catalog.skus})")
    build_shape(scenario.shape, where=where)
    return scenario


def list_builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``loadtest/scenarios``."""
    return builtin_names(BUILTIN_DIR)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name (``spike``) or a TOML file path."""
    data, path = load_named_toml(name_or_path, BUILTIN_DIR, "scenario")
    return scenario_from_dict(data, where=str(path), base_dir=path.resolve().parent)
