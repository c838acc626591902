"""The workload model: which image each arrival asks for, and how its front end spells the URL.

- Catalog: SKUs ranked by popularity (Zipf with the scenario's exponent; rank 1 is SKU 1); each SKU
  has ``images_per_sku`` images; the keys come from ``path_template`` or a ``keys_file``.
- Roles (thumb / pdp / zoom) choose the srcset width: the smallest role width covering
  ``slot × viewport × dpr`` of the client's device.
- Clients: a fixed population; client *i* has a stable device, browser (``Accept``/``User-Agent``) and
  POP hint, all derived from the seed.
- Noise: parameter order shuffles, aliases, upper-case values, tracking parameters, cache busters and
  odd DPR values, each on its configured share of requests.
- Promotion: the last ``new_skus`` SKUs are never requested before the spike starts; from then on
  ``share`` of requests go to them (Zipf among themselves).

Pure Python and deterministic for (seed, lane): importable without Locust and without boto3.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from edgeproof.loadtest.scenario import Browser, Device, Role, Scenario

from edgeproof.errors import ConfigError

__all__ = ["Catalog", "Request", "Workload", "load_keys"]

_KEY_RE = re.compile(r"sku-(\d+)-(\d+)\.[A-Za-z0-9]+$")
_TRACKING = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "fbclid", "gclid")
_ODD_DPR = ("1.5", "1.75", "2.625", "2.75", "3.5", "0.9")
_ALIASES = {"width": ("w", "width", "Width"), "format": ("f", "fmt", "format"), "q": ("q", "quality")}


@dataclass(slots=True)
class Request:
    """One request to send: the path with its raw query, headers, and what it stands for."""

    url: str  # path?query, exactly as sent
    headers: dict[str, str]
    role: str
    sku: int  # popularity rank, 1-based
    promoted: bool
    pop: int  # POP hint index (-1: none)
    clean_url: str = ""  # the same request without noise (width, format=auto, q; fixed order)


def load_keys(path: str | Path) -> list[list[str]]:
    """A keys file → keys grouped by SKU, in file order (one group per SKU; unnamed keys alone)."""
    try:
        lines = [ln.strip() for ln in Path(path).read_text().splitlines()]
    except OSError as err:
        raise ConfigError(f"cannot read catalog keys file {path}: {err.strerror or err}") from err
    groups: dict[str, list[str]] = {}
    for line in lines:
        if not line or line.startswith("#"):
            continue
        m = _KEY_RE.search(line)
        groups.setdefault(m.group(1) if m else line, []).append(line)
    if not groups:
        raise ConfigError(f"catalog keys file {path} holds no keys")
    return list(groups.values())


class Catalog:
    """SKU → image paths, with Zipf popularity over the regular SKUs and over the promoted ones."""

    def __init__(self, scenario: Scenario) -> None:
        cat = scenario.catalog
        if cat.keys_file:
            self._groups: list[list[str]] | None = [
                ["/" + quote(k.lstrip("/"), safe="/-_.~") for k in g] for g in load_keys(cat.keys_file)
            ]
            self.skus = len(self._groups)
        else:
            self._groups = None
            self.skus = cat.skus
        self.images_per_sku = cat.images_per_sku
        self.template = cat.path_template
        promoted = min(scenario.promotion.new_skus, max(self.skus - 1, 0))
        self.regular = self.skus - promoted
        self.promoted = promoted
        self._cum_regular = _zipf_cum(self.regular, cat.zipf)
        self._cum_promoted = _zipf_cum(self.promoted, cat.zipf)
        self._paths: dict[tuple[int, int], str] = {}

    def pick(self, rng: random.Random, promoted: bool) -> int:
        """A 1-based SKU number: regular SKUs are 1..regular, promoted ones come after."""
        if promoted and self.promoted:
            return self.regular + 1 + bisect.bisect_left(self._cum_promoted, rng.random() * self._cum_promoted[-1])
        return 1 + bisect.bisect_left(self._cum_regular, rng.random() * self._cum_regular[-1])

    def path(self, sku: int, rng: random.Random) -> str:
        if self._groups is not None:
            group = self._groups[sku - 1]
            return group[int(rng.random() * len(group))]
        image = 1 + int(rng.random() * self.images_per_sku)
        key = (sku, image)
        found = self._paths.get(key)
        if found is None:
            found = self.template.format(sku=sku, image=image)
            if len(self._paths) < 200_000:
                self._paths[key] = found
        return found

    def all_paths(self) -> list[str]:
        """Every source path (for tests and prewarming)."""
        if self._groups is not None:
            return [p for g in self._groups for p in g]
        return [self.template.format(sku=s, image=i) for s in range(1, self.skus + 1)
                for i in range(1, self.images_per_sku + 1)]


def _zipf_cum(n: int, s: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (r**s) for r in range(1, n + 1))) if n > 0 else [0.0]


def _chooser(items: tuple, rng_or_value: float) -> int:
    total = sum(i.share for i in items)
    x, acc = rng_or_value * total, 0.0
    for idx, item in enumerate(items):
        acc += item.share
        if x < acc:
            return idx
    return len(items) - 1


class Workload:
    """Generates the :class:`Request` for each arrival of one lane (worker process)."""

    def __init__(self, scenario: Scenario, lane: int = 0, spike_start: float | None = None) -> None:
        self.scenario = scenario
        self.catalog = Catalog(scenario)
        self.rng = random.Random(f"{scenario.seed}:{lane}")
        self.spike_start = spike_start  # offset (s) when the promotion starts; None: never
        self._client_cache: dict[int, tuple[Device, Browser, int, dict[str, str]]] = {}
        self._population = scenario.clients.population
        self._pop_header = scenario.clients.pop_header
        self._promo_share = scenario.promotion.share
        self.noise = scenario.noise
        self._roles = scenario.catalog.roles
        self._role_cum = list(itertools.accumulate(r.share for r in self._roles))
        self._buster = itertools.count(1)
        self._widths: dict[tuple[str, str], int] = {}

    def client(self, idx: int) -> tuple[Device, Browser, int, dict[str, str]]:
        """Client ``idx``'s stable device, browser, POP hint and request headers."""
        found = self._client_cache.get(idx)
        if found is None:
            r = random.Random(f"client:{self.scenario.seed}:{idx}")
            c = self.scenario.clients
            device = c.devices[_chooser(c.devices, r.random())]
            browser = c.browsers[_chooser(c.browsers, r.random())]
            pop = r.randrange(c.pops)
            headers = {"Accept": browser.accept, "User-Agent": browser.user_agent}
            if self._pop_header:
                headers[self._pop_header] = str(pop)
            found = (device, browser, pop, headers)
            if len(self._client_cache) < 100_000:
                self._client_cache[idx] = found
        return found

    def role(self) -> Role:
        x = self.rng.random() * self._role_cum[-1]
        return self._roles[min(bisect.bisect_right(self._role_cum, x), len(self._roles) - 1)]

    def next(self, offset: float) -> Request:
        """The request for an arrival at ``offset`` seconds into the shape."""
        rng = self.rng
        device, _browser, pop, headers = self.client(int(rng.random() * self._population))
        role = self.role()
        promo_on = self.spike_start is not None and offset >= self.spike_start
        promoted = promo_on and self.catalog.promoted > 0 and rng.random() < self._promo_share
        sku = self.catalog.pick(rng, promoted)
        path = self.catalog.path(sku, rng)
        width = self._widths.get((role.name, device.name))
        if width is None:  # the smallest srcset width covering slot × viewport × dpr
            need = role.slot * device.viewport * device.dpr
            width = self._widths[(role.name, device.name)] = next((w for w in role.widths if w >= need),
                                                                   role.widths[-1])
        query = self._query(width, role.quality)
        return Request(f"{path}?{query}", headers, role.name, sku, promoted, pop if self._pop_header else -1,
                       f"{path}?width={width}&format=auto&q={role.quality}")

    def _query(self, width: int, quality: int) -> str:
        rng, nz = self.rng, self.noise
        r = rng.random
        wname, fname, qname = "width", "format", "q"
        if r() < nz.aliases:
            wname, fname, qname = (_pick(r, _ALIASES["width"]), _pick(r, _ALIASES["format"]),
                                   _pick(r, _ALIASES["q"]))
        fmt = "AUTO" if r() < nz.upper_case else "auto"
        params = [f"{wname}={width}", f"{fname}={fmt}", f"{qname}={quality}"]
        if r() < nz.odd_dpr:
            # a front end that sends CSS width and DPR separately, with a device's odd ratio
            dpr = _pick(r, _ODD_DPR)
            params[0] = f"{wname}={max(1, round(width / max(float(dpr), 1.0)))}"
            params.append(f"dpr={dpr}")
        if r() < nz.tracking:
            for name in rng.sample(_TRACKING, 1 + int(r() * 3)):
                params.append(f"{name}={name.split('_')[-1]}{int(r() * 50)}")
        if r() < nz.cache_buster:
            params.append(f"cb={next(self._buster) * 7919 + int(r() * 7919)}")
        if r() < nz.shuffle:
            rng.shuffle(params)
        return "&".join(params)


def _pick(r: Callable[[], float], items: tuple[str, ...]) -> str:
    return items[int(r() * len(items))]
