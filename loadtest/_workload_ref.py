"""The workload model written plainly: the reference (oracle) for :class:`edgeproof.loadtest.workload.Workload`.

No caches, no precomputed tables: each request is derived step by step from the scenario and the
lane's random stream, in the order the model draws from it (client, role, promotion, SKU, image,
then the URL noise). The fast model must give equal :class:`~edgeproof.loadtest.workload.Request`
values for every scenario and offset sequence (``tests/test_loadtest_model.py``, hypothesis). Not used
at run time.
"""

from __future__ import annotations

import bisect
import itertools
import random

from edgeproof.loadtest.scenario import Scenario
from edgeproof.loadtest.workload import _ALIASES, _ODD_DPR, _TRACKING, Catalog, Request, _chooser

__all__ = ["ReferenceWorkload"]


class ReferenceWorkload:
    """``next(offset)`` as :class:`~edgeproof.loadtest.workload.Workload` defines it, without its tables."""

    def __init__(self, scenario: Scenario, lane: int = 0, spike_start: float | None = None) -> None:
        self.scenario = scenario
        self.catalog = Catalog(scenario)
        self.rng = random.Random(f"{scenario.seed}:{lane}")
        self.spike_start = spike_start
        self._buster = itertools.count(1)

    def next(self, offset: float) -> Request:
        sc, rng = self.scenario, self.rng
        clients = sc.clients
        idx = int(rng.random() * clients.population)
        r = random.Random(f"client:{sc.seed}:{idx}")  # client idx: stable device, browser, POP hint
        device = clients.devices[_chooser(clients.devices, r.random())]
        browser = clients.browsers[_chooser(clients.browsers, r.random())]
        pop = r.randrange(clients.pops)
        headers = {"Accept": browser.accept, "User-Agent": browser.user_agent}
        if clients.pop_header:
            headers[clients.pop_header] = str(pop)
        roles = sc.catalog.roles
        cum = list(itertools.accumulate(x.share for x in roles))
        role = roles[min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(roles) - 1)]
        promo_on = self.spike_start is not None and offset >= self.spike_start
        promoted = promo_on and self.catalog.promoted > 0 and rng.random() < sc.promotion.share
        cat = self.catalog
        sku = cat.pick(rng, promoted)
        if cat._groups is not None:  # a keys file: one of the SKU's keys
            group = cat._groups[sku - 1]
            path = group[int(rng.random() * len(group))]
        else:
            path = cat.template.format(sku=sku, image=1 + int(rng.random() * cat.images_per_sku))
        need = role.slot * device.viewport * device.dpr  # the smallest srcset width covering it
        width = next((w for w in role.widths if w >= need), role.widths[-1])
        query = self._query(width, role.quality)
        return Request(f"{path}?{query}", headers, role.name, sku, promoted, pop if clients.pop_header else -1,
                       f"{path}?width={width}&format=auto&q={role.quality}")

    def _query(self, width: int, quality: int) -> str:
        rng, nz = self.rng, self.scenario.noise
        wname, fname, qname = "width", "format", "q"
        if rng.random() < nz.aliases:
            wname = _ALIASES["width"][int(rng.random() * 3)]
            fname = _ALIASES["format"][int(rng.random() * 3)]
            qname = _ALIASES["q"][int(rng.random() * 2)]
        fmt = "AUTO" if rng.random() < nz.upper_case else "auto"
        params = [f"{wname}={width}", f"{fname}={fmt}", f"{qname}={quality}"]
        if rng.random() < nz.odd_dpr:
            dpr = _ODD_DPR[int(rng.random() * len(_ODD_DPR))]
            params[0] = f"{wname}={max(1, round(width / max(float(dpr), 1.0)))}"
            params.append(f"dpr={dpr}")
        if rng.random() < nz.tracking:
            for name in rng.sample(_TRACKING, 1 + int(rng.random() * 3)):
                params.append(f"{name}={name.split('_')[-1]}{int(rng.random() * 50)}")
        if rng.random() < nz.cache_buster:
            params.append(f"cb={next(self._buster) * 7919 + int(rng.random() * 7919)}")
        if rng.random() < nz.shuffle:
            rng.shuffle(params)
        return "&".join(params)
