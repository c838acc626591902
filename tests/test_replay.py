"""Replay: hand-built logs where every hit, miss and miss class is known; a reference model; samples."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from edgeproof.analytics.replay import compare_strategies, parse_bytes, parse_duration
from edgeproof.analytics.schema import LOG_SCHEMA
from edgeproof.analytics.strategies import Strategy, get_strategy
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeproof.cloudfront import region_of
from edgeproof.errors import UsageError

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def log(rows: list[dict[str, Any]]) -> pa.Table:
    """A LOG_SCHEMA table; each row: t (seconds), pop, uri (path?query), rt, and optional ct/ua/bytes/method."""
    cols: dict[str, list[Any]] = {n: [] for n in LOG_SCHEMA.names}
    for r in rows:
        path, _, query = r["uri"].partition("?")
        values = {
            "timestamp": T0 + timedelta(seconds=r["t"]), "x_edge_location": r.get("pop", "IAD89-C1"),
            "pop": r.get("pop", "IAD89-C1")[:3], "cs_method": r.get("method", "GET"), "cs_uri_stem": path,
            "cs_uri_query": query or None, "x_edge_result_type": r.get("rt", "Miss"),
            "sc_content_type": r.get("ct", "image/webp"), "cs_user_agent": r.get("ua"),
            "sc_bytes": r.get("bytes", 1000),
        }
        for name in LOG_SCHEMA.names:
            cols[name].append(values.get(name))
    return pa.table(cols, schema=LOG_SCHEMA)


def run(rows: list[dict[str, Any]], strategies: list[str], **kw: Any) -> dict[str, Any]:
    return compare_strategies(log(rows), strategies, **kw)


def test_fragmentation_hits_and_cold_misses_are_exact() -> None:
    rows = [
        {"t": 0, "uri": "/a.jpg?w=640&f=webp", "rt": "Miss"},
        {"t": 1, "uri": "/a.jpg?f=webp&w=640", "rt": "Miss"},   # same variant, other spelling
        {"t": 2, "uri": "/a.jpg?w=640&f=webp", "rt": "Hit"},
        {"t": 3, "pop": "FRA2-C1", "uri": "/a.jpg?w=600&f=webp", "rt": "Miss"},
        {"t": 4, "pop": "FRA2-C1", "uri": "/a.jpg?w=640&f=webp", "rt": "Miss"},
    ]
    out = run(rows, ["passthrough", "sorted", "aggressive"])
    p, s, a = (out["strategies"][n] for n in ("passthrough", "sorted", "aggressive"))
    assert (p["hits"], p["misses"], p["cold"], p["fragmented"], p["expired"], p["evicted"]) == (1, 4, 3, 1, 0, 0)
    assert (p["unique_keys"], p["transforms"], p["keys_per_variant"]) == (3, 2, 1.5)
    assert (s["hits"], s["cold"], s["fragmented"], s["unique_keys"]) == (2, 3, 0, 2)
    # aggressive: w=600 snaps to 640, so FRA's second request hits; one variant, one transform
    assert (a["hits"], a["cold"], a["unique_keys"], a["transforms"], a["origin_requests"]) == (3, 2, 1, 1, 2)
    assert a["hit_rate"] == pytest.approx(0.6) and not a["meets_target"]
    assert out["observed"] == {"hits": 1, "misses": 4, "hit_rate": 0.2, "bytes": 5000}
    assert out["observed_by_pop"]["FRA2-C1"] == {"hits": 0, "misses": 2, "hit_rate": 0.0, "bytes": 2000}
    assert out["calibration"]["predicted_hit_rate"] == pytest.approx(0.2)
    assert out["calibration"]["difference"] == pytest.approx(0.0)
    assert "inferred" in out["accept_inference"]["note"]


def test_expired_evicted_and_warmup() -> None:
    rows = [{"t": 0, "uri": "/a.jpg"}, {"t": 10, "uri": "/a.jpg"}, {"t": 12, "uri": "/a.jpg"}]
    p = run(rows, ["passthrough"], ttl="5s", revalidate=False)["strategies"]["passthrough"]
    assert (p["cold"], p["expired"], p["hits"], p["refresh_hits"]) == (1, 1, 1, 0)
    # CloudFront revalidates an expired, unchanged object: a 304 and a RefreshHit, which is a hit
    p = run(rows, ["passthrough"], ttl="5s")["strategies"]["passthrough"]
    assert (p["cold"], p["expired"], p["hits"], p["refresh_hits"], p["origin_requests"]) == (1, 0, 1, 1, 2)
    assert p["hit_rate"] == pytest.approx(2 / 3)
    rows = [{"t": 0, "uri": "/a.jpg", "bytes": 600}, {"t": 1, "uri": "/b.jpg", "bytes": 600},
            {"t": 2, "uri": "/a.jpg", "bytes": 600}, {"t": 3, "uri": "/a.jpg", "bytes": 600}]
    p = run(rows, ["passthrough"], capacity=1000, tier="pop")["strategies"]["passthrough"]
    assert (p["cold"], p["evicted"], p["hits"]) == (2, 1, 1)
    rows = [{"t": 0, "uri": "/a.jpg"}, {"t": 7200, "uri": "/a.jpg", "rt": "Hit"}, {"t": 7300, "uri": "/b.jpg"}]
    out = run(rows, ["passthrough"], warmup="1h")
    p = out["strategies"]["passthrough"]
    assert out["scored"] == 2 and (p["requests"], p["hits"], p["cold"], p["transforms"]) == (2, 1, 1, 1)


def test_fragmented_needs_a_fresh_other_spelling() -> None:
    rows = [{"t": 0, "uri": "/a.jpg?w=1"}, {"t": 10, "uri": "/a.jpg?width=1"}, {"t": 11, "uri": "/a.jpg?W=1"}]
    p = run(rows, ["passthrough"], ttl="5s", revalidate=False)["strategies"]["passthrough"]
    assert (p["cold"], p["fragmented"]) == (2, 1)  # t=10: the other spelling had expired
    p = run(rows, ["passthrough"], ttl="5s")["strategies"]["passthrough"]
    assert (p["cold"], p["fragmented"]) == (1, 2)  # ...but would have been revalidated: usable


def test_tiers_regional_and_shield() -> None:
    rows = [{"t": 0, "pop": "IAD89-C1", "uri": "/a.jpg"}, {"t": 1, "pop": "JFK6-C1", "uri": "/a.jpg"},
            {"t": 2, "pop": "FRA2-C1", "uri": "/a.jpg"}]
    pop = run(rows, ["passthrough"], tier="pop")["strategies"]["passthrough"]
    assert (pop["origin_requests"], pop["regional_hits"], pop["shield_hits"]) == (3, 0, 0)
    # a regional edge cache hit is logged Hit (a hit for the viewer); the default tier is regional
    reg = run(rows, ["passthrough"], tier="regional")["strategies"]["passthrough"]
    assert (reg["origin_requests"], reg["regional_hits"], reg["shield_hits"], reg["hits"]) == (2, 1, 0, 1)
    assert run(rows, ["passthrough"])["strategies"]["passthrough"] == reg
    # an Origin Shield hit is logged Miss (detailed OriginShieldHit)
    shield = run(rows, ["passthrough"], tier="shield")["strategies"]["passthrough"]
    assert (shield["origin_requests"], shield["regional_hits"], shield["shield_hits"]) == (1, 1, 1)
    assert (shield["hits"], shield["misses"]) == (1, 2)
    assert region_of("IAD89-C1") == region_of("JFK6-C1") == "us-east-1"
    with pytest.raises(UsageError):
        run(rows, ["passthrough"], tier="planet")


def test_excluded_rows_and_refusals() -> None:
    rows = [{"t": 0, "uri": "/a.jpg", "rt": "Error"}, {"t": 1, "uri": "/a.jpg", "method": "POST"},
            {"t": 2, "uri": "/a.jpg", "rt": "FunctionGeneratedResponse"}, {"t": 3, "uri": "/a.jpg?w=abc"},
            {"t": 4, "uri": "/a.jpg?w=abc", "rt": "Hit"}]
    out = run(rows, ["passthrough", "canonical", "aggressive"])
    assert out["replayed"] == 2
    assert (out["excluded"]["error"], out["excluded"]["method"], out["excluded"]["generated"]) == (1, 1, 1)
    assert out["strategies"]["canonical"]["refused"] == 2 and out["strategies"]["canonical"]["requests"] == 0
    assert out["strategies"]["canonical"]["hit_rate"] is None
    assert out["strategies"]["aggressive"]["hits"] == 1  # w=abc falls back to the plain image


def test_accept_is_inferred_from_content_type_then_user_agent() -> None:
    rows = [{"t": 0, "uri": "/a.jpg?f=auto", "ct": "image/avif"}, {"t": 1, "uri": "/a.jpg?f=auto", "ct": "image/webp"},
            {"t": 2, "uri": "/a.jpg?f=auto", "ct": None, "ua": "Mozilla/5.0 Chrome/120.0 Safari/537.36"},
            {"t": 3, "uri": "/a.jpg?f=auto", "ct": "-", "ua": "Mozilla/4.0 (MSIE 8.0)"}]
    out = run(rows, ["aggressive"])
    inf = out["accept_inference"]
    assert (inf["from_log"], inf["from_user_agent"], inf["from_content_type"], inf["unknown"]) == (0, 1, 2, 1)
    assert (inf["avif_webp"], inf["webp"], inf["neither"]) == (2, 1, 1)
    a = out["strategies"]["aggressive"]
    assert (a["unique_keys"], a["hits"]) == (3, 1)  # avif, webp, jpeg; the Chrome request hits the avif key


def test_unsorted_batch_is_replayed_in_time_order() -> None:
    rows = [{"t": 5, "uri": "/a.jpg", "rt": "Hit"}, {"t": 0, "uri": "/a.jpg"}]
    p = run(rows, ["passthrough"])["strategies"]["passthrough"]
    assert (p["cold"], p["hits"]) == (1, 1)


def test_durations_and_sizes() -> None:
    assert parse_duration("30d") == 30 * 86400 and parse_duration("6h") == 21600 and parse_duration("250ms") == 0.25
    assert parse_bytes("2GiB") == 2 * 1024**3 and parse_bytes("500MB") == 500_000_000 and parse_bytes("17") == 17
    for bad in ("soon", "-1d"):
        with pytest.raises(UsageError):
            parse_duration(bad)
    with pytest.raises(UsageError):
        parse_bytes("lots")


# ---------------------------------------------------------------- the reference model, end to end
trace_strategy = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 5), st.sampled_from([300, 500, 900, 1500]),
              st.integers(0, 2)),
    min_size=1, max_size=60,
)


@settings(max_examples=80, deadline=None)
@given(trace_strategy, st.sampled_from([0, 4]), st.sampled_from([0, 1000, 2000]),
       st.sampled_from(["pop", "regional", "shield"]), st.booleans(), st.integers(1, 20))
def test_replay_equals_the_reference_model(steps: list[tuple[int, int, int, int, int]], ttl: int, cap: int,
                                           tier: str, revalidate: bool, batch_rows: int) -> None:
    """compare_strategies with the compiled model equals it with the plain reference model (the oracle),
    every counter, per POP too, over spellings of one variant (w / width), POPs in two regions, Accept
    from the content type, and batches split anywhere."""
    pops = ("IAD89-C1", "JFK6-C1", "FRA2-C1", "MUC1-C1")
    rows = []
    for i, (dt, pop, k, size, ct) in enumerate(steps):
        spelled = f"w={k // 2}&f=auto" if k % 2 == 0 else f"width={k // 2}&f=auto"
        rows.append({"t": i * 2 + dt, "pop": pops[pop], "uri": f"/a.jpg?{spelled}", "bytes": size,
                     "ct": ("image/avif", "image/webp", "image/jpeg")[ct]})
    table = log(rows)
    kw: dict[str, Any] = {"ttl": ttl, "capacity": cap or None, "tier": tier, "revalidate": revalidate}
    names = ["passthrough", "aggressive"]
    got = compare_strategies(iter(table.to_batches(max_chunksize=batch_rows)), names, **kw)
    want = compare_strategies(table, names, model="reference", **kw)
    got["settings"].pop("model"), want["settings"].pop("model")
    assert got == want


def test_lru_equals_libcachesim() -> None:
    lcs = pytest.importorskip("libcachesim")
    import numpy as np

    rng = np.random.default_rng(3)
    n, cap = 20_000, 200_000
    keys = rng.zipf(1.2, n) % 3000
    sizes = 1000 + (keys * 7919) % 9000
    rows = [{"t": i // 50, "uri": f"/img/{k}.jpg", "bytes": int(s)} for i, (k, s) in enumerate(zip(keys, sizes, strict=True))]
    ours = run(rows, ["passthrough"], ttl=0, capacity=cap, tier="pop")["strategies"]["passthrough"]
    cache = lcs.LRU(cache_size=cap)
    hits = 0
    for k, s in zip(keys, sizes, strict=True):
        hits += bool(cache.get(lcs.Request(obj_size=int(s), obj_id=int(k) + 1)))
    assert abs(ours["hits"] - hits) <= n * 0.001


def test_streams_any_iterable_of_batches(samples_dir: Path) -> None:
    from edgeproof.analytics.reader import read_logs

    rows = [{"t": i, "uri": f"/a{i % 3}.jpg"} for i in range(9)]
    batches = (b for b in log(rows).to_batches(max_chunksize=2))  # a generator: consumed lazily
    p = compare_strategies(batches, ["passthrough"])["strategies"]["passthrough"]
    assert (p["requests"], p["cold"], p["hits"]) == (9, 3, 6)
    out = compare_strategies(read_logs([str(samples_dir)]), ["passthrough"])
    assert out["bad_lines"] >= 1 and out["replayed"] > 50
    by_paths = compare_strategies(iter([samples_dir]), ["passthrough"])  # an iterator of paths: read as logs
    assert by_paths["replayed"] == out["replayed"] and by_paths["bad_lines"] == out["bad_lines"]


def test_replay_streams_batch_by_batch() -> None:
    """One pass: each batch is keyed and replayed before the next is asked for, and none is kept."""
    events: list[str] = []
    refs: list[weakref.ref[pa.RecordBatch]] = []
    most_alive = 0

    class Recording(Strategy):
        __slots__ = ()

        def path_part(self, path: str) -> Any:
            events.append("keyed " + path.split("/")[1])
            return Strategy.path_part(self, path)

    def rows_of(b: int) -> list[dict[str, Any]]:  # each batch: one path of its own, then shared ones
        return [{"t": b * 100 + i, "pop": ("IAD89-C1", "FRA2-C1")[i % 2],
                 "uri": f"/b{b}/x.jpg" if i == 0 else f"/shared/{i % 7}.jpg?w={i % 3}"} for i in range(60)]

    def batches(n: int) -> Iterator[pa.RecordBatch]:
        nonlocal most_alive
        for b in range(n):
            batch = log(rows_of(b)).to_batches()[0]
            refs.append(weakref.ref(batch))
            most_alive = max(most_alive, sum(r() is not None for r in refs))
            events.append(f"yield b{b}")
            yield batch
            del batch

    n = 40
    strategy = Recording(get_strategy("passthrough").config)
    streamed = compare_strategies(batches(n), [strategy], capacity=5000, calibrate=False)
    # batch b's own path was keyed after it was handed over and before batch b+1 was asked for
    for b in range(n):
        assert events.index(f"keyed b{b}") == events.index(f"yield b{b}") + 1
    assert most_alive <= 2  # the batch being replayed (and, briefly, the next one): never the stream
    whole = log([r for b in range(n) for r in rows_of(b)])
    at_once = compare_strategies(whole, [Recording(get_strategy("passthrough").config)], capacity=5000,
                                 calibrate=False)
    assert streamed == at_once
    assert streamed["strategies"]["passthrough"]["requests"] == n * 60


POP_COUNTERS = ("requests", "hits", "misses", "cold", "expired", "evicted", "fragmented", "transforms",
                "unique_keys", "unique_variants")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 11), st.integers(0, 2), st.sampled_from([300, 700, 1500])),
             min_size=1, max_size=150),
    st.sampled_from([0, 9]), st.sampled_from([0, 2500]), st.sampled_from([0, 40]), st.integers(1, 12),
)
def test_pop_tier_fast_path_matches_the_general_model(
    steps: list[tuple[int, int, int, int]], ttl: int, cap: int, warmup: int, batch_rows: int,
) -> None:
    """The pop tier replays POP by POP in per-POP state (slots indexed by key id once a POP is dense, by
    hashing when sparse); the shield tier replays every cache in one hashed model. The POP caches must
    behave the same under both, across many small batches. ``f=auto`` spellings make one key serve
    several variants (by the served content type)."""
    pops = ("IAD89-C1", "FRA2-C1", "NRT5-C1", "GRU1-C1")
    spell = ("w={}&f=auto", "width={}&f=auto", "f=auto&w={}")
    rows = [{"t": i, "pop": pops[p], "uri": f"/a{k % 2}.jpg?" + spell[k % 3].format(k // 3),
             "ct": ("image/avif", "image/webp", "image/jpeg")[c], "bytes": size}
            for i, (p, k, c, size) in enumerate(steps)]
    table = log(rows)
    assert_same_pop_caches(lambda: iter(table.to_batches(max_chunksize=batch_rows)), ttl=ttl, capacity=cap or None,
                           warmup=warmup)


def assert_same_pop_caches(batches: Any, **kw: Any) -> dict[str, Any]:
    """``batches()`` replayed at the pop tier by the per-POP models and by the reference model."""
    names = ["passthrough", "aggressive"]
    fast = compare_strategies(batches(), names, tier="pop", calibrate=False, **kw)
    general = compare_strategies(batches(), names, tier="pop", calibrate=False, model="reference", **kw)
    for name in names:
        f, g = fast["strategies"][name], general["strategies"][name]
        assert {k: f[k] for k in POP_COUNTERS} == {k: g[k] for k in POP_COUNTERS}
    return fast


@pytest.mark.parametrize(("ttl", "cap"), [(0, None), (0, 9000), (50, 9000)])
def test_pop_index_switches_between_key_ids_and_hashing(ttl: int, cap: int | None) -> None:
    """A POP's slots are indexed by key id while it has seen >= 1/8 of the key ids, else hashed: dense from
    the start, sparse when many new keys arrive elsewhere, dense again (with cached keys and variant rings
    carried over) when it sees them too."""
    def uri(k: int) -> str:
        return f"/p{k // 2 % 9}.jpg?" + ("w={}&f=auto", "width={}&f=auto")[k % 2].format(k // 2)  # 2 spellings

    t = iter(range(10**6))
    phases = [
        [("IAD89-C1", k) for k in range(4)] + [("FRA2-C1", 0)],          # both POPs dense
        [("IAD89-C1", k) for k in range(4, 160)],                          # FRA (and IAD) sparse: hashing
        [("IAD89-C1", k) for k in range(160)] * 2,                         # IAD dense again
        [("FRA2-C1", k) for k in range(0, 160, 2)],                        # FRA, still sparse: rings hashed
        [("FRA2-C1", k) for k in range(160)] * 2,                          # FRA dense: odd keys join the rings
    ]
    tables = [log([{"t": next(t), "pop": pop, "uri": uri(k), "bytes": 300 + 200 * (k % 5),
                    "ct": ("image/avif", "image/webp")[k // 2 % 3 == 0]} for pop, k in phase]) for phase in phases]
    out = assert_same_pop_caches(lambda: iter(tables), ttl=ttl, capacity=cap)["strategies"]["passthrough"]
    assert out["requests"] == sum(len(phase) for phase in phases)
    assert out["fragmented"] > 0 and (cap is None or out["evicted"] > 0)


# ---------------------------------------------------------------- real samples
def test_samples_replay_without_error(samples_dir: Path) -> None:
    out = compare_strategies([str(samples_dir)], ["passthrough", "aggressive"], warmup="0", tier="shield")
    assert out["requests"] > 100 and out["replayed"] > 50
    assert out["bad_lines"] >= 1 and out["bad_line_examples"]
    for r in out["strategies"].values():
        assert r["hits"] + r["refresh_hits"] + r["misses"] == r["requests"] > 0
        assert r["cold"] + r["expired"] + r["evicted"] + r["fragmented"] == r["misses"]
        assert r["unique_keys"] > 0
    assert out["calibration"]["observed_hit_rate"] is not None


def test_accept_range_run_forks_where_the_inferences_first_disagree() -> None:
    """The second Accept inference is replayed from the first batch where it keys a row differently
    (a copy of the first inference's state then); each end of the range equals a replay of the same
    log with that inference's Accept written into cs_accept."""
    from edgeproof.analytics.replay import ACCEPT_BY_CLASS

    chrome = "Mozilla/5.0 Chrome/120.0 Safari/537.36"
    rows = []
    for i in range(80):
        late = i >= 50  # only late rows: a user agent (avif) that disagrees with the served type (jpeg)
        rows.append({"t": i, "pop": ("IAD89-C1", "FRA2-C1")[i % 2], "uri": f"/p{i % 7}.jpg?w={i % 3}&f=auto",
                     "ua": chrome if late else None, "ct": "image/jpeg" if late else "image/avif",
                     "bytes": 500 + i % 4 * 300})
    table = log(rows)
    batches = lambda: iter(table.to_batches(max_chunksize=16))  # noqa: E731
    got = compare_strategies(batches(), ["aggressive", "passthrough"], capacity=20_000)

    def explicit(late_class: int) -> float:
        accept = [ACCEPT_BY_CLASS[late_class if r["t"] >= 50 else 2] for r in rows]
        t = table.append_column("cs_accept", pa.array(accept)) if "cs_accept" not in table.schema.names else \
            table.set_column(table.schema.get_field_index("cs_accept"), "cs_accept", pa.array(accept))
        return compare_strategies(t, ["aggressive"], capacity=20_000)["strategies"]["aggressive"]["hit_rate"]

    by_ua, by_ct = explicit(2), explicit(0)
    assert got["strategies"]["aggressive"]["hit_rate"] == pytest.approx(by_ua)
    assert got["strategies"]["aggressive"]["hit_rate_range"] == pytest.approx(sorted([by_ua, by_ct]))
    assert by_ua != by_ct
    # never differing: one run, and the range is a point
    same = compare_strategies(log(rows[:50]), ["aggressive"])["strategies"]["aggressive"]
    assert same["hit_rate_range"] == [same["hit_rate"], same["hit_rate"]]
