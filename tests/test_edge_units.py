"""Edge emulator pieces without a server: TTL policy, LRU cache, POP ids and selection, CLI parsing."""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

import pytest
from edgeproof.edge import BackendPool, Entry, LruCache, PopSelector, TtlPolicy, parse_origin_group, pop_ids
from edgeproof.edge.config import EdgeConfig

from edgeproof.cloudfront import region_of
from edgeproof.errors import ConfigError, UsageError


def _entry(size: int) -> Entry:
    return Entry(200, b"x" * size, "image/jpeg", None, b"", 0.0, 1e12)


def test_ttl_policy_follows_cache_control_and_clamps() -> None:
    p = TtlPolicy(min_ttl=5, default_ttl=100, max_ttl=1000, error_ttl=10)
    assert p.ttl(200, {}) == 100
    assert p.ttl(200, {"cache-control": "public, max-age=60"}) == 60
    assert p.ttl(200, {"cache-control": "max-age=60, s-maxage=600"}) == 600
    assert p.ttl(200, {"cache-control": "max-age=1"}) == 5  # clamped up to min
    assert p.ttl(200, {"cache-control": "max-age=99999"}) == 1000  # clamped down to max
    assert p.ttl(200, {"cache-control": "no-store"}) == 5  # min TTL wins, as CloudFront
    assert TtlPolicy().ttl(200, {"cache-control": "private"}) == 0
    expires = email.utils.formatdate(time.time() + 300, usegmt=True)
    assert 290 <= p.ttl(200, {"expires": expires}) <= 300
    assert p.ttl(200, {"expires": "garbage"}) == 5
    assert p.ttl(201, {}) == 0


def test_ttl_policy_for_errors_follows_aws() -> None:
    """HTTPStatusCodes.html ("HTTP 4xx and 5xx status codes that CloudFront caches") and
    custom-error-pages-expiration.html ("Control how long CloudFront caches errors")."""
    p = TtlPolicy(default_ttl=100, max_ttl=1000, error_ttl=10)
    for status in (404, 414, 500, 501, 502, 503, 504):  # always cached, for the minimum TTL
        assert p.ttl(status, {}) == 10
    assert p.ttl(503, {"retry-after": "3"}) == 10
    # the greater of the origin's max-age / s-maxage / Expires and the minimum TTL, at most the max TTL
    assert p.ttl(500, {"cache-control": "max-age=2"}) == 10
    assert p.ttl(500, {"cache-control": "max-age=60"}) == 60
    assert p.ttl(404, {"cache-control": "max-age=5, s-maxage=300"}) == 300
    assert p.ttl(404, {"cache-control": "max-age=99999"}) == 1000
    expires = email.utils.formatdate(time.time() + 300, usegmt=True)
    assert 290 <= p.ttl(502, {"expires": expires}) <= 300
    # no-store / no-cache / private: honoured for 404, 410, 414, 501 only; ignored by the others
    for status in (404, 414, 501):
        assert p.ttl(status, {"cache-control": "no-store"}) == 0
        assert p.ttl(status, {"cache-control": "private"}) == 0
    for status in (500, 502, 503, 504):
        assert p.ttl(status, {"cache-control": "no-store"}) == 10
        assert p.ttl(status, {"cache-control": "no-cache, max-age=60"}) == 60
    # 400, 403, 405, 412, 415: cached only with max-age / s-maxage (then the greater, as above)
    for status in (400, 403, 405, 412, 415):
        assert p.ttl(status, {}) == 0
        assert p.ttl(status, {"expires": expires}) == 0
        assert p.ttl(status, {"cache-control": "max-age=60"}) == 60
        assert p.ttl(status, {"cache-control": "s-maxage=1"}) == 10
    for status in (401, 416, 429, 505):  # never cached
        assert p.ttl(status, {}) == 0
        assert p.ttl(status, {"cache-control": "max-age=60"}) == 0
    assert TtlPolicy(error_ttl=0).ttl(404, {}) == 0
    assert TtlPolicy(error_ttl=0).ttl(404, {"cache-control": "max-age=30"}) == 30
    with pytest.raises(ValueError):
        TtlPolicy(min_ttl=10, default_ttl=5)


def test_lru_cache_is_bounded_by_bytes() -> None:
    one = _entry(1000).size
    cache = LruCache("t", capacity_bytes=3 * one)
    for k in "abc":
        assert cache.put(k, _entry(1000))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", _entry(1000))
    assert cache.get("b") is None and cache.get("a") is not None
    assert cache.bytes <= cache.capacity and cache.evictions == 1
    assert not cache.put("huge", _entry(10 * one))
    cache.put("a", _entry(10))  # replacing frees the old size
    assert cache.bytes == 2 * one + _entry(10).size


def test_pop_ids_and_selection() -> None:
    ids = pop_ids(20)
    assert ids[:2] == ["IAD89-C1", "FRA56-P5"] and len(set(ids)) == 20
    sel = PopSelector(ids[:4])
    assert sel.pick("2", "10.0.0.1") == 2
    assert sel.pick("6", "10.0.0.1") == 2  # an index is taken modulo N
    assert sel.pick("fra56-p5", "10.0.0.1") == 1
    by_ip = sel.pick(None, "10.0.0.7")
    assert all(sel.pick(None, "10.0.0.7") == by_ip for _ in range(5))
    assert sel.pick("nowhere", "10.0.0.7") == by_ip
    assert len({sel.pick(None, f"10.0.{i}.1") for i in range(64)}) == 4
    assert region_of("FRA56-P5") == region_of("AMS54-C1") == "eu-central-1"  # the kernel's one table
    assert region_of("LHR61-C2") == region_of("CDG50-C1") != region_of("IAD89-C1")
    with pytest.raises(ValueError):
        pop_ids(0)


def test_parse_origin_group() -> None:
    assert parse_origin_group("/data/der,http://127.0.0.1:8081") == ("/data/der", ["http://127.0.0.1:8081"])
    assert parse_origin_group("s3://b/p,http://a:1;http://b:2", ["http://c:3"]) == (
        "s3://b/p", ["http://a:1", "http://b:2", "http://c:3"])
    assert parse_origin_group("-,http://a:1") == (None, ["http://a:1"])
    assert parse_origin_group("/data/der") == ("/data/der", [])
    with pytest.raises(UsageError):
        parse_origin_group("/data/der,not-a-url")
    with pytest.raises(UsageError):
        parse_origin_group("-")


def test_backend_pool_round_robin_add_remove() -> None:
    pool = BackendPool(["http://a:1", "http://b:2/"])
    assert [pool.next() for _ in range(4)] == ["http://a:1", "http://b:2"] * 2
    assert pool.add("http://c:3") and not pool.add("http://c:3")
    assert pool.remove("http://a:1") and not pool.remove("http://a:1")
    assert {pool.next() for _ in range(4)} == {"http://b:2", "http://c:3"}
    with pytest.raises(ConfigError):
        pool.add("ftp://x")


def test_edge_config_defaults_are_cloudfronts_and_validation() -> None:
    config = EdgeConfig(distribution_id="E2ABC")
    assert config.host.endswith(".cloudfront.net")
    # regional edge caches on, origin attempts / timeouts as CloudFront's defaults (DownloadDistValuesOrigin.html)
    assert (config.tier, config.origin_connection_attempts, config.origin_connection_timeout,
            config.origin_response_timeout, config.realtime_log_dir) == ("regional", 3, 10.0, 30.0, None)
    for bad in ({"origin_connection_attempts": 0}, {"origin_connection_attempts": 4},
                {"origin_connection_timeout": 0}, {"origin_connection_timeout": 11},
                {"origin_response_timeout": 61}):
        with pytest.raises(ConfigError):
            EdgeConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        EdgeConfig(tier="planet")
    with pytest.raises(ConfigError):
        EdgeConfig(pops=0)


def test_docs_cover_every_edge_serve_flag_and_its_default() -> None:
    import argparse

    from edgeproof.edge.cli import register

    parser = argparse.ArgumentParser()
    register(parser)
    serve = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    docs = (Path(__file__).resolve().parents[1] / "docs" / "edge.md").read_text()
    flags = [opt for action in serve._actions for opt in action.option_strings if opt.startswith("--")]
    missing = [f for f in flags if f not in docs and f != "--help"]
    assert not missing, f"docs/edge.md does not mention {missing}"
    defaults = {a.dest: a.default for a in serve._actions}
    assert defaults["tier"] == "regional" and "| `regional` |" in docs
    assert (defaults["origin_connection_attempts"], defaults["origin_connection_timeout"],
            defaults["origin_response_timeout"], defaults["error_ttl"]) == (3, 10.0, 30.0, 10.0)


def test_store_primary_sends_the_origins_etag_and_the_error_trees_body(tmp_path: Path) -> None:
    """One ETag function (the origin's, :func:`edgeproof.origin.stores.etag_for`) and one JSON error
    shape (:func:`edgeproof.errors.error_body`) whichever part answers."""
    import asyncio
    import json

    from edgeproof.edge.origin_group import OriginGroup
    from edgeproof.origin.stores import etag_for, open_store

    from edgeproof.errors import error_json

    key = "images/sku-1.jpg/w=64,h=0,fit=cover,q=80,f=webp"
    body = b"RIFF-variant-bytes"
    open_store(str(tmp_path)).put(key, body, "image/webp")

    async def scenario() -> None:
        group = OriginGroup(str(tmp_path), [])
        await group.start()
        try:
            hit = await group.fetch("/" + key)
            assert hit.status == 200 and hit.body == body and hit.headers["etag"] == etag_for(body)
            assert (await group.fetch("/" + key, etag_for(body))).status == 304
            missing = await group.fetch("/images/none.jpg/w=64,h=0,fit=cover,q=80,f=webp")
            assert missing.status == 404 and missing.headers["content-type"] == "application/json"
            assert json.loads(missing.body) == error_json("origin", "not in the derivative store")
        finally:
            await group.close()

    asyncio.run(scenario())


def test_error_classes_live_in_the_one_tree() -> None:
    """The classes once defined beside their users are the tree's, still importable where they were."""
    from edgeproof.origin import connections

    from edgeproof import errors, settings

    assert settings.ConfigTypeError is errors.ConfigTypeError
    assert connections.UriTooLong is errors.UriTooLong and connections.RequestTimeout is errors.RequestTimeout
    assert connections.HeaderTooLarge is errors.HeaderTooLarge
    statuses = {cls.status: cls.error for cls in (errors.MethodNotAllowed, errors.RequestTimeout, errors.UriTooLong,
                                                  errors.HeaderTooLarge)}
    assert statuses == {405: "method_not_allowed", 408: "request_timeout", 414: "uri_too_long",
                        431: "request_header_fields_too_large"}
    err = errors.UriTooLong("URL too long", detail="the URL is over 8192 bytes")
    assert err.to_json() == {"error": "uri_too_long", "detail": "the URL is over 8192 bytes"}
    assert err.to_body() == errors.error_body("uri_too_long", "the URL is over 8192 bytes")
    assert issubclass(errors.ConfigTypeError, errors.ConfigError) and issubclass(errors.ConfigTypeError, TypeError)
