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
from collections.abc import Callable, Iterable, Iterator
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
        self._paths: dict[int, str] = {}

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
        key = sku * self.images_per_sku + image  # one int per (sku, image): cheaper to hash than a tuple
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
    """Generates the :class:`Request` for each arrival of one lane (worker process).

    The hot path of the load generator (one call per arrival), so it works from tables made once:
    each client's device index, POP hint and headers (bounded cache), and per (role, device) the
    srcset width, the noise-free query and every spelling of the first three parameters (aliases ×
    ``auto``/``AUTO``), joined.
    :class:`edgeproof.loadtest._workload_ref.ReferenceWorkload` is the same model written plainly; a
    hypothesis test requires equal requests from both."""

    def __init__(self, scenario: Scenario, lane: int = 0, spike_start: float | None = None) -> None:
        self.scenario = scenario
        self.catalog = Catalog(scenario)
        self.rng = random.Random(f"{scenario.seed}:{lane}")
        self.spike_start = spike_start  # offset (s) when the promotion starts; None: never
        self._client_cache: dict[int, tuple[Device, Browser, int, dict[str, str]]] = {}
        self._clients: dict[int, tuple[int, int, dict[str, str]]] = {}  # idx → (device index, POP hint, headers)
        self._population = scenario.clients.population
        self._pop_header = scenario.clients.pop_header
        self._promo_share = scenario.promotion.share
        self._promo_from = (spike_start if spike_start is not None and self.catalog.promoted > 0
                            else float("inf"))
        self.noise = scenario.noise
        self._roles = scenario.catalog.roles
        self._role_cum = list(itertools.accumulate(r.share for r in self._roles))
        self._buster = itertools.count(1)
        devices = scenario.clients.devices
        # per role, per device index: see _role_table
        self._tables = [[_role_table(role, device) for device in devices] for role in self._roles]

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

    def _client_row(self, idx: int) -> tuple[int, int, dict[str, str]]:
        """Client ``idx`` as :meth:`next` uses it: device index, POP hint (-1: no header), headers."""
        found = self._clients.get(idx)
        if found is None:
            device, _browser, pop, headers = self.client(idx)
            found = (self.scenario.clients.devices.index(device), pop if self._pop_header else -1, headers)
            if len(self._clients) < 100_000:
                self._clients[idx] = found
        return found

    def role(self) -> Role:
        return self._roles[self._role_index()]

    def _role_index(self) -> int:
        x = self.rng.random() * self._role_cum[-1]
        return min(bisect.bisect_right(self._role_cum, x), len(self._roles) - 1)

    def stream(self, arrivals: Iterable[tuple[float, str]], batch: int = 64) -> Iterator[tuple[float, str, Request]]:
        """``(offset, phase, next(offset))`` for each ``(offset, phase)``, in order.

        The requests are made ``batch`` arrivals at a time, in one tight loop: the same requests as
        one :meth:`next` per arrival (the model depends only on the offsets), with the model's tables
        and code warm in the CPU's caches (measured in the load generator: ~11 µs per request made
        between two sends, ~6 µs in batches of 64)."""
        make = self.next
        items = iter(arrivals)
        while chunk := list(itertools.islice(items, batch)):
            yield from [(off, phase, make(off)) for off, phase in chunk]

    def next(self, offset: float) -> Request:
        """The request for an arrival at ``offset`` seconds into the shape."""
        rng = self.rng
        r = rng.random
        idx = int(r() * self._population)
        found = self._clients.get(idx)
        device, pop, headers = found if found is not None else self._client_row(idx)
        cum = self._role_cum
        ri = min(bisect.bisect_right(cum, r() * cum[-1]), len(cum) - 1)  # as role()
        role = self._roles[ri]
        # the promotion is on from spike_start (never without promoted SKUs): only then is it drawn
        promoted = offset >= self._promo_from and r() < self._promo_share
        sku = self.catalog.pick(rng, promoted)
        path = self.catalog.path(sku, rng)
        table = self._tables[ri][device]
        return Request(f"{path}?{self._query(table)}", headers, role.name, sku, promoted, pop,
                       path + table[1])

    def _query(self, table: _RoleTable) -> str:
        r, nz = self.rng.random, self.noise
        # the three names drawn from their aliases (each alias set holds the plain name), in that order
        spelling = ((int(r() * _NW) * _NF + int(r() * _NF)) * _NQ + int(r() * _NQ) if r() < nz.aliases
                    else _PLAIN)
        params: list[str] | None = None  # the spelling's first three parameters, until a noise below needs a list
        first = table[2][2 * spelling + (r() < nz.upper_case)]  # (params, joined)
        if r() < nz.odd_dpr:
            # a front end that sends CSS width and DPR separately, with a device's odd ratio
            dpr = _pick(r, _ODD_DPR)
            params = list(first[0])
            params[0] = f"{_WIDTH_NAMES[spelling]}={max(1, round(table[0] / max(float(dpr), 1.0)))}"
            params.append(f"dpr={dpr}")
        if r() < nz.tracking:
            params = params or list(first[0])
            for name in self.rng.sample(_TRACKING, 1 + int(r() * 3)):
                params.append(f"{name}={name.split('_')[-1]}{int(r() * 50)}")
        if r() < nz.cache_buster:
            params = params or list(first[0])
            params.append(f"cb={next(self._buster) * 7919 + int(r() * 7919)}")
        if r() < nz.shuffle:
            params = params or list(first[0])
            self.rng.shuffle(params)
        return first[1] if params is None else "&".join(params)


#: a spelling of the first three parameters: (width alias, format alias, q alias) as one number, in the
#: order they are drawn; _PLAIN is "width", "format", "q"
_SPELLINGS = [(w, f, q) for w in _ALIASES["width"] for f in _ALIASES["format"] for q in _ALIASES["q"]]
_PLAIN = _SPELLINGS.index(("width", "format", "q"))
_NW, _NF, _NQ = (len(_ALIASES[k]) for k in ("width", "format", "q"))
_WIDTH_NAMES = [w for w, _, _ in _SPELLINGS]

#: per (role, device): srcset width, the noise-free query (``?width=…&format=auto&q=…``), and for each
#: spelling with ``auto`` then with ``AUTO``: its first three parameters and those joined
_RoleTable = tuple[int, str, list[tuple[tuple[str, str, str], str]]]


def _role_table(role: Role, device: Device) -> _RoleTable:
    need = role.slot * device.viewport * device.dpr  # the smallest srcset width covering slot × viewport × dpr
    width = next((w for w in role.widths if w >= need), role.widths[-1])
    q = role.quality
    firsts = []
    for wname, fname, qname in _SPELLINGS:
        for fmt in ("auto", "AUTO"):
            params = (f"{wname}={width}", f"{fname}={fmt}", f"{qname}={q}")
            firsts.append((params, "&".join(params)))
    return width, f"?width={width}&format=auto&q={q}", firsts


def _pick(r: Callable[[], float], items: tuple[str, ...]) -> str:
    return items[int(r() * len(items))]
