"""The edge in front of the real origin (`edgeproof origin serve`, pyvips): origin-group failover from
the derivative store to the transformer, write-back, and request collapsing down to one transform."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from _edge_helpers import EdgeProc, get, running_origin, start_edge


def _transforms(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("edgeproof_origin_transforms_total")))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeProc, int, Path]]:
    import pyvips

    tmp = tmp_path_factory.mktemp("stack")
    sources, derivatives = tmp / "sources", tmp / "derivatives"
    (sources / "images").mkdir(parents=True)
    derivatives.mkdir()
    image = (pyvips.Image.black(96, 64) + [200, 120, 40]).cast("uchar").copy(interpretation="srgb")
    image.write_to_file(str(sources / "images" / "sku-1.jpg"))
    with running_origin(sources, derivatives) as port:
        edge = start_edge(tmp, f"{derivatives},http://127.0.0.1:{port}", "--strategy", "canonical", "--pops", "2")
        try:
            yield edge, port, derivatives
        finally:
            edge.stop()


def test_failover_to_transformer_then_served_from_store(stack: tuple[EdgeProc, int, Path]) -> None:
    edge, origin_port, derivatives = stack
    target = "/images/sku-1.jpg?w=32&format=webp&utm_source=x"
    key = "images/sku-1.jpg/w=32,h=0,fit=cover,q=80,f=webp"
    before = _transforms(origin_port)
    first = get(edge.port, target, pop=0)
    assert first.status == 200 and first.headers["x-cache"] == "Miss from cloudfront"
    assert first.headers["content-type"] == "image/webp" and first.body[8:12] == b"WEBP"
    st = edge.stats()["origin"]
    assert (st["primary"], st["secondary"], st["failovers"]) == (1, 1, 1)  # 404 in the store → transformer
    assert _transforms(origin_port) == before + 1
    deadline = time.monotonic() + 15
    while not (derivatives / key).is_file():  # the transformer writes the variant back in the background
        assert time.monotonic() < deadline, "variant never written to the derivative store"
        time.sleep(0.1)
    second = get(edge.port, target, pop=1)  # another POP: a miss there, answered by the primary
    assert second.status == 200 and second.headers["x-cache"] == "Miss from cloudfront"
    assert second.body == first.body == (derivatives / key).read_bytes()
    st = edge.stats()["origin"]
    assert (st["primary"], st["secondary"]) == (2, 1)
    assert _transforms(origin_port) == before + 1
    assert get(edge.port, target, pop=1).headers["x-cache"] == "Hit from cloudfront"


def test_hundred_cold_requests_make_one_transform(stack: tuple[EdgeProc, int, Path]) -> None:
    edge, origin_port, _ = stack
    before_t = _transforms(origin_port)
    before = edge.stats()["origin"]

    async def burst() -> list[int]:
        async with aiohttp.ClientSession() as s:
            async def one() -> int:
                async with s.get(f"{edge.url}/images/sku-1.jpg?w=48&format=jpeg",
                                 headers={"X-Edge-Pop": "0"}) as r:
                    await r.read()
                    return r.status
            return await asyncio.gather(*(one() for _ in range(100)))

    assert asyncio.run(burst()) == [200] * 100
    after = edge.stats()["origin"]
    assert after["primary"] - before["primary"] == 1
    assert after["secondary"] - before["secondary"] == 1
    assert _transforms(origin_port) == before_t + 1


def test_s3_primary_and_log_bucket_upload(s3_bucket: str, s3_env: dict[str, str], tmp_path: Path) -> None:
    import gzip

    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    s3.put_object(Bucket=s3_bucket, Key="der/images/s3.jpg/w=10,h=0,fit=cover,q=80,f=jpeg", Body=b"s3 bytes",
                  ACL="public-read")  # readable by the plain-HTTP primary below
    edge = start_edge(tmp_path, f"s3://{s3_bucket}/der", "--strategy", "canonical", "--pops", "1",
                      "--log-bucket", f"s3://{s3_bucket}/cf-logs", "--distribution-id", "E2S3TEST", env=s3_env)
    try:
        ok = get(edge.port, "/images/s3.jpg?w=10&format=jpeg", pop=0)
        assert ok.status == 200 and ok.body == b"s3 bytes" and ok.headers["content-type"] == "image/jpeg"
        missing = get(edge.port, "/images/none.jpg?w=10&format=jpeg", pop=0)
        assert missing.status == 404 and missing.headers["x-cache"] == "Error from cloudfront"
    finally:
        assert edge.stop() == 0
    # the same bucket as an S3-compatible HTTP endpoint primary (plain GET of the path)
    http_primary = f"{s3_env['AWS_ENDPOINT_URL']}/{s3_bucket}/der"
    edge2 = start_edge(tmp_path, http_primary, "--strategy", "canonical", "--pops", "1")
    try:
        ok = get(edge2.port, "/images/s3.jpg?w=10&format=jpeg", pop=0)
        assert ok.status == 200 and ok.body == b"s3 bytes"
        assert get(edge2.port, "/images/none.jpg?w=10&format=jpeg", pop=0).status in (403, 404)
    finally:
        edge2.stop()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="cf-logs/").get("Contents", [])]
    assert len(keys) == 1 and keys[0].startswith("cf-logs/E2S3TEST.") and keys[0].endswith(".gz")
    body = gzip.decompress(s3.get_object(Bucket=s3_bucket, Key=keys[0])["Body"].read()).decode()
    lines = body.splitlines()
    assert lines[0] == "#Version: 1.0" and lines[1].startswith("#Fields: date time x-edge-location")
    assert len(lines) == 4 and all(len(line.split("\t")) == 33 for line in lines[2:])
