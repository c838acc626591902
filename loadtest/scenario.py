"""Scenario files: the promotion a load test plays, declared once in TOML with documented defaults.

A scenario has these tables (every key optional; the defaults below are the documented ones)::

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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeproof.errors import ConfigError
from edgeproof.tomlfile import builtin_names, load_named_toml

__all__ = [
    "BUILTIN_DIR",
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


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    share: float
    widths: tuple[int, ...]
    slot: float
    quality: int


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    share: float
    viewport: int
    dpr: float


@dataclass(frozen=True, slots=True)
class Browser:
    name: str
    share: float
    accept: str
    user_agent: str


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


@dataclass(frozen=True, slots=True)
class CatalogConfig:
    skus: int = 2000
    images_per_sku: int = 3
    zipf: float = 0.9
    keys_file: str = ""
    path_template: str = "/images/sku-{sku:05d}-{image}.jpg"
    roles: tuple[Role, ...] = DEFAULT_ROLES


@dataclass(frozen=True, slots=True)
class ClientsConfig:
    population: int = 5000
    pops: int = 8
    pop_header: str = "X-Edge-Pop"
    devices: tuple[Device, ...] = DEFAULT_DEVICES
    browsers: tuple[Browser, ...] = DEFAULT_BROWSERS


@dataclass(frozen=True, slots=True)
class NoiseConfig:
    shuffle: float = 0.5
    aliases: float = 0.3
    upper_case: float = 0.1
    tracking: float = 0.2
    cache_buster: float = 0.005
    odd_dpr: float = 0.05


@dataclass(frozen=True, slots=True)
class PromotionConfig:
    new_skus: int = 20
    share: float = 0.3


@dataclass(frozen=True, slots=True)
class GatesConfig:
    rules: tuple[str, ...] = DEFAULT_GATES
    scope: str = "spike"


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    file: str = ""
    speed: float = 0.0


@dataclass(frozen=True, slots=True)
class RunSettings:
    pool: int = 1000
    max_lateness_s: float = 1.0
    late_ms: float = 10.0
    drain_s: float = 5.0
    arrivals: str = "uniform"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario. ``shape`` stays a plain table; :func:`edgeproof.loadtest.shapes.build_shape` reads it."""

    name: str = "spike"
    description: str = ""
    seed: int = 1
    timeout_s: float = 10.0
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


class _Reader:
    """Typed access to one table, with errors that name the file and key."""

    def __init__(self, where: str, table: Any, prefix: str) -> None:
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{prefix}] must be a table")
        self.where, self.table, self.prefix = where, table, prefix
        self.used: set[str] = set()

    def _err(self, key: str, msg: str) -> ConfigError:
        name = f"{self.prefix}.{key}" if self.prefix else key
        return ConfigError(f"{self.where}: {name}: {msg}")

    def get(self, key: str, default: Any, kind: type, lo: float | None = None, hi: float | None = None) -> Any:
        self.used.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self._err(key, f"expected {kind.__name__}, got {value!r}")
        if lo is not None and value < lo:
            raise self._err(key, f"must be >= {lo}, got {value!r}")
        if hi is not None and value > hi:
            raise self._err(key, f"must be <= {hi}, got {value!r}")
        return value

    def sub(self, key: str) -> dict[str, Any] | None:
        self.used.add(key)
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._err(key, "must be a table")
        return value

    def check_unknown(self, extra: set[str] | None = None) -> None:
        unknown = set(self.table) - self.used - (extra or set())
        if unknown:
            raise self._err(sorted(unknown)[0], "unknown key")


def _shares(where: str, prefix: str, items: list[Any]) -> None:
    if not items:
        raise ConfigError(f"{where}: [{prefix}] needs at least one entry")
    if sum(i.share for i in items) <= 0:
        raise ConfigError(f"{where}: [{prefix}] shares must add up to more than 0")


def _roles(where: str, table: dict[str, Any] | None) -> tuple[Role, ...]:
    if table is None:
        return DEFAULT_ROLES
    roles = []
    for name, spec in table.items():
        r = _Reader(where, spec, f"catalog.roles.{name}")
        widths = r.get("widths", [640], list)
        if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 10000 for w in widths):
            raise r._err("widths", "must be a non-empty list of whole pixel widths 1..10000")
        roles.append(Role(
            name=name,
            share=r.get("share", 1.0, float, 0.0),
            widths=tuple(sorted(widths)),
            slot=r.get("slot", 1.0, float, 0.01, 10.0),
            quality=r.get("quality", 80, int, 1, 100),
        ))
        r.check_unknown()
    _shares(where, "catalog.roles", roles)
    return tuple(roles)


def _devices(where: str, table: dict[str, Any] | None) -> tuple[Device, ...]:
    if table is None:
        return DEFAULT_DEVICES
    out = []
    for name, spec in table.items():
        r = _Reader(where, spec, f"clients.devices.{name}")
        out.append(Device(name, r.get("share", 1.0, float, 0.0), r.get("viewport", 1024, int, 100, 10000),
                          r.get("dpr", 1.0, float, 0.5, 5.0)))
        r.check_unknown()
    _shares(where, "clients.devices", out)
    return tuple(out)


def _browsers(where: str, table: dict[str, Any] | None) -> tuple[Browser, ...]:
    if table is None:
        return DEFAULT_BROWSERS
    out = []
    for name, spec in table.items():
        r = _Reader(where, spec, f"clients.browsers.{name}")
        out.append(Browser(name, r.get("share", 1.0, float, 0.0), r.get("accept", "image/*", str),
                           r.get("user_agent", f"edgeproof-loadtest ({name})", str)))
        r.check_unknown()
    _shares(where, "clients.browsers", out)
    return tuple(out)


def scenario_from_dict(data: dict[str, Any], where: str = "<scenario>", base_dir: Path | None = None) -> Scenario:
    """Validate a scenario table (as parsed from TOML) into a :class:`Scenario`."""
    top = _Reader(where, data, "")
    base_dir = base_dir or Path.cwd()

    cat = _Reader(where, top.sub("catalog") or {}, "catalog")
    keys_file = cat.get("keys_file", "", str)
    if keys_file and not Path(keys_file).is_absolute():
        keys_file = str((base_dir / keys_file).resolve())
    catalog = CatalogConfig(
        skus=cat.get("skus", 2000, int, 1, 10_000_000),
        images_per_sku=cat.get("images_per_sku", 3, int, 1, 1000),
        zipf=cat.get("zipf", 0.9, float, 0.0, 5.0),
        keys_file=keys_file,
        path_template=cat.get("path_template", CatalogConfig().path_template, str),
        roles=_roles(where, cat.sub("roles")),
    )
    cat.check_unknown()
    try:
        catalog.path_template.format(sku=1, image=1)
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(f"{where}: catalog.path_template: only {{sku}} and {{image}} may be used ({err})") from err
    if not catalog.path_template.startswith("/"):
        raise ConfigError(f"{where}: catalog.path_template must start with '/'")

    cl = _Reader(where, top.sub("clients") or {}, "clients")
    clients = ClientsConfig(
        population=cl.get("population", 5000, int, 1, 100_000_000),
        pops=cl.get("pops", 8, int, 1, 1000),
        pop_header=cl.get("pop_header", "X-Edge-Pop", str),
        devices=_devices(where, cl.sub("devices")),
        browsers=_browsers(where, cl.sub("browsers")),
    )
    cl.check_unknown()

    nz = _Reader(where, top.sub("noise") or {}, "noise")
    noise = NoiseConfig(**{k: nz.get(k, getattr(NoiseConfig(), k), float, 0.0, 1.0)
                           for k in NoiseConfig.__dataclass_fields__})
    nz.check_unknown()

    pr = _Reader(where, top.sub("promotion") or {}, "promotion")
    promotion = PromotionConfig(new_skus=pr.get("new_skus", 20, int, 0), share=pr.get("share", 0.3, float, 0.0, 1.0))
    pr.check_unknown()

    ga = _Reader(where, top.sub("gates") or {}, "gates")
    rules = ga.get("rules", list(DEFAULT_GATES), list)
    if not all(isinstance(x, str) for x in rules):
        raise ga._err("rules", "must be a list of strings such as 'p99_ms <= 150'")
    scope = ga.get("scope", "spike", str)
    if scope not in ("spike", "all"):
        raise ga._err("scope", f"must be 'spike' or 'all', got {scope!r}")
    gates = GatesConfig(tuple(rules), scope)
    ga.check_unknown()

    rp = _Reader(where, top.sub("replay") or {}, "replay")
    rfile = rp.get("file", "", str)
    if rfile and not Path(rfile).is_absolute():
        rfile = str((base_dir / rfile).resolve())
    replay = ReplayConfig(rfile, rp.get("speed", 0.0, float, 0.0))
    rp.check_unknown()

    ru = _Reader(where, top.sub("run") or {}, "run")
    run = RunSettings(
        pool=ru.get("pool", 1000, int, 1, 100_000),
        max_lateness_s=ru.get("max_lateness_s", 1.0, float, 0.0),
        late_ms=ru.get("late_ms", 10.0, float, 0.0),
        drain_s=ru.get("drain_s", 5.0, float, 0.0, 600.0),
        arrivals=ru.get("arrivals", "uniform", str),
    )
    if run.arrivals not in ("uniform", "poisson"):
        raise ru._err("arrivals", "must be 'uniform' or 'poisson'")
    ru.check_unknown()

    shape = top.sub("shape") or {"kind": "spike"}
    scenario = Scenario(
        name=top.get("name", "custom", str),
        description=top.get("description", "", str),
        seed=top.get("seed", 1, int),
        timeout_s=top.get("timeout_s", 10.0, float, 0.1, 600.0),
        catalog=catalog, clients=clients, noise=noise, promotion=promotion, shape=dict(shape),
        gates=gates, replay=replay, run=run, source=where, raw=data,
    )
    top.check_unknown()
    if promotion.new_skus >= catalog.skus and not catalog.keys_file:
        raise ConfigError(f"{where}: promotion.new_skus ({promotion.new_skus}) must be below catalog.skus")
    from edgeproof.loadtest.shapes import build_shape  # validates the shape table

    build_shape(scenario.shape, where=where)
    return scenario


def list_builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``loadtest/scenarios``."""
    return builtin_names(BUILTIN_DIR)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name (``spike``) or a TOML file path."""
    data, path = load_named_toml(name_or_path, BUILTIN_DIR, "scenario")
    return scenario_from_dict(data, where=str(path), base_dir=path.resolve().parent)
