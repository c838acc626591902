"""The replay at realistic volume: millions of requests, many POPs, tens of thousands of keys, streamed
in batches; checked against the reference model on a sample of POPs (marked slow; CI runs it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from edgeproof.analytics.replay import COLUMNS, compare_strategies
from edgeproof.analytics.schema import LOG_SCHEMA
from edgeproof.analytics.synthetic import generate_hour

from edgeproof.cloudfront import region_of, regions

pytestmark = pytest.mark.slow

#: 48 POPs in 8 regions, a few heavy ones
CODES = sorted(regions())[:: max(1, len(regions()) // 48)][:48]
POPS = tuple((f"{code}{i % 7 + 1}-C{i % 3 + 1}", 1.0 / (1 + i % 9)) for i, code in enumerate(CODES))


def hours(n_hours: int, per_hour: int) -> list[pa.Table]:
    fields = [LOG_SCHEMA.field(c) for c in COLUMNS if c in LOG_SCHEMA.names]
    out = []
    for h in range(n_hours):
        cols = generate_hour(datetime(2026, 11, 2, tzinfo=UTC) + timedelta(hours=h), per_hour, seed=11,
                             skus=30_000, pops=POPS)
        data: dict[str, Any] = {f.name: cols[f.name] for f in fields if f.name in cols}
        # cache busters bounded to 100 values: this test is about the cache model at volume; with one
        # distinct query per row, applying the strategies would be nearly all of its time
        data["cs_uri_query"] = pc.replace_substring_regex(pa.array(cols["cs_uri_query"]), r"(cb|gclid)=\d*(\d\d)",
                                                          r"\1=\2")
        data["timestamp"] = pa.array(np.asarray(cols["timestamp"]), pa.timestamp("ms", tz="UTC"))
        out.append(pa.table(data))
    return out


def test_five_million_requests_stream_and_match_the_reference_on_sampled_pops() -> None:
    tables = hours(10, 500_000)
    names = ["passthrough", "aggressive"]
    kw: dict[str, Any] = {"ttl": "1h", "capacity": "200MB", "calibrate": False, "accept_range": False}
    fast = compare_strategies((b for t in tables for b in t.to_batches(max_chunksize=1 << 18)), names, **kw)
    assert fast["replayed"] >= 4_900_000 - fast["excluded"]["method"]
    assert len(fast["strategies"]["passthrough"]["by_pop"]) == len(POPS)
    assert fast["strategies"]["passthrough"]["unique_keys"] > 100_000
    # the reference on every POP of two regions (their regional caches see exactly these requests)
    sample = sorted({region_of(p) for p, _ in POPS})[:2]
    pops = [p for p, _ in POPS if region_of(p) in sample]
    subset = [t.filter(pc.is_in(t.column("x_edge_location"), pa.array(pops))) for t in tables]
    ref = compare_strategies(subset, names, model="reference", **kw)
    for name in names:
        got, want = fast["strategies"][name]["by_pop"], ref["strategies"][name]["by_pop"]
        assert set(want) == set(pops)
        for pop in pops:  # transforms count first sights anywhere, so only the full replay has them
            assert {k: v for k, v in got[pop].items() if k != "transforms"} == \
                   {k: v for k, v in want[pop].items() if k != "transforms"}, (name, pop)
        total = fast["strategies"][name]
        assert total["hits"] + total["refresh_hits"] + total["misses"] == total["requests"]
        assert total["refresh_hits"] > 0 and total["regional_hits"] > 0
