"""End to end against ``edgeproof origin serve`` running in a subprocess on 127.0.0.1.

Real pyvips, real files, real HTTP. Each bad input gets its 4xx with a JSON body, never a 500.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _origin_helpers import (
    BLUE,
    RED,
    OriginProc,
    alpha_png,
    bomb_png,
    cmyk_jpeg,
    decode,
    jpeg,
    loader,
    metric,
    metric_labelled,
    near,
    oriented_jpeg,
    pixel,
    request,
)
from conftest import free_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CANON = "/images/a.jpg/w=640,h=0,fit=cover,q=80,f=webp"


def write_sources(root: Path) -> Path:
    images = root / "images"
    images.mkdir(parents=True)
    (images / "a.jpg").write_bytes(jpeg(1600, 1200))
    (images / "rotated.jpg").write_bytes(oriented_jpeg(6))
    (images / "cmyk.jpg").write_bytes(cmyk_jpeg())
    (images / "cutout.png").write_bytes(alpha_png())
    (images / "text.jpg").write_bytes(b"this is not an image at all\n" * 20)
    full = jpeg(800, 600)
    (images / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (images / "bomb.png").write_bytes(bomb_png())
    (images / "huge.jpg").write_bytes(jpeg(64, 64) + b"\x00" * (2 * 1024 * 1024))  # over --max-source-mb 1
    return root


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProc]:
    root = tmp_path_factory.mktemp("origin")
    write_sources(root / "src")
    proc = OriginProc(free_port(), ["--sources", str(root / "src"), "--derivatives", str(root / "der"),
                                    "--workers", "1", "--max-source-mb", "1", "--max-concurrency", "2"],
                      log=root / "log.txt")
    proc.der = root / "der"  # type: ignore[attr-defined]
    try:
        proc.wait_ready()
        yield proc
    finally:
        assert proc.stop() == 0


def test_health_ready_metrics(origin: OriginProc) -> None:
    assert request(origin.port, "/healthz").json() == {"status": "ok"}
    ready = request(origin.port, "/readyz")
    assert ready.status == 200 and ready.json()["ready"] is True
    m = request(origin.port, "/metrics")
    assert m.status == 200 and m.headers["content-type"].startswith("text/plain")
    text = m.body.decode()
    for name in ("requests_total", "request_duration_seconds_bucket", "transforms_total", "queue_depth",
                 "singleflight_joins_total", "store_reads_total", "store_writes_total", "local_cache_hits_total"):
        assert f"edgeproof_origin_{name}" in text


def test_transform_then_derivative_store(origin: OriginProc) -> None:
    first = request(origin.port, CANON)
    assert first.status == 200
    assert first.headers["content-type"] == "image/webp"
    assert first.headers["cache-control"] == "public, max-age=2592000, immutable"
    assert first.headers["etag"].startswith('"') and not first.headers["etag"].startswith('W/')
    assert int(first.headers["content-length"]) == len(first.body)
    assert "vary" not in first.headers  # format was explicit
    image = decode(first.body)
    assert (image.width, image.height) == (640, 480) and loader(first.body).startswith("webpload")
    # the write happens after the response; wait for it, then the next answer comes from the store
    stored = origin.der / CANON.lstrip("/")  # type: ignore[attr-defined]
    for _ in range(100):
        if stored.exists():
            break
        time.sleep(0.05)
    assert stored.read_bytes() == first.body
    second = request(origin.port, CANON)
    assert second.body == first.body and second.headers["etag"] == first.headers["etag"]
    assert second.headers["x-origin-source"] in ("derivative_store", "transform")
    # conditional request and HEAD
    assert request(origin.port, CANON, {"If-None-Match": first.headers["etag"]}).status == 304
    head = request(origin.port, CANON, method="HEAD")
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == str(len(first.body))


def test_friendly_form_same_bytes(origin: OriginProc) -> None:
    canon = request(origin.port, "/images/a.jpg/w=320,h=0,fit=cover,q=70,f=jpeg")
    friendly = request(origin.port, "/images/a.jpg?quality=70&width=320&format=jpg&utm_source=news&fbclid=x")
    assert canon.status == friendly.status == 200
    assert friendly.body == canon.body and friendly.headers["etag"] == canon.headers["etag"]
    # reordered / aliased ops in the path are the same variant too
    again = request(origin.port, "/images/a.jpg/f=jpg,q=70,fit=cover,h=0,w=320")
    assert again.body == canon.body


@pytest.mark.parametrize(
    "accept, fmt",
    [("image/avif,image/webp,*/*", "avif"), ("image/webp,*/*;q=0.8", "webp"), ("*/*", "jpeg"), (None, "jpeg")],
)
def test_format_auto(origin: OriginProc, accept: str | None, fmt: str) -> None:
    headers = {"Accept": accept} if accept else {}
    reply = request(origin.port, "/images/a.jpg?w=200&format=auto", headers)
    assert reply.status == 200 and reply.headers["content-type"] == f"image/{fmt}"
    assert reply.headers["vary"] == "Accept"
    assert decode(reply.body).width == 200


def test_output_orientation_colour_alpha(origin: OriginProc) -> None:
    rotated = decode(request(origin.port, "/images/rotated.jpg/w=100,h=0,fit=cover,q=90,f=jpeg").body)
    assert (rotated.width, rotated.height) == (100, 50)
    assert near(pixel(rotated, 50, 5), RED) and near(pixel(rotated, 50, 45), BLUE)
    assert not rotated.get_typeof("exif-data")
    cmyk = decode(request(origin.port, "/images/cmyk.jpg?w=120&format=png").body)
    assert cmyk.interpretation == "srgb" and cmyk.bands == 3 and not cmyk.get_typeof("icc-profile-data")
    cutout = decode(request(origin.port, "/images/cutout.png/w=100,h=100,fit=contain,bg=000000,q=80,f=jpeg").body)
    assert cutout.bands == 3 and near(pixel(cutout, 2, 2), (0, 0, 0), tol=10)


@pytest.mark.parametrize(
    "path, status, error",
    [
        ("/images/a.jpg/w=100,zz=1", 400, "bad_request"),  # unknown op
        ("/images/a.jpg/w=abc,h=0,fit=cover,q=80,f=jpeg", 400, "bad_request"),  # malformed op
        ("/images/a.jpg/w=100,h=0,fit=cover,q=0,f=jpeg", 400, "bad_request"),
        ("/images/a.jpg?w=100&format=gif", 400, "bad_request"),
        ("/images/a.jpg?w=100&fit=stretch", 400, "bad_request"),
        ("/images/a.jpg/w=5000,h=0,fit=cover,q=80,f=jpeg", 400, "bad_request"),  # over max dimension
        ("/images/a.jpg?w=100&h=99999", 400, "bad_request"),
        ("/images/missing.jpg?w=100", 404, "not_found"),
        ("/images/missing.jpg/w=100,h=0,fit=cover,q=80,f=jpeg", 404, "not_found"),
        ("/images/" + "x" * 300 + ".jpg?w=100", 404, "not_found"),  # a name too long for the filesystem
        ("/images/text.jpg?w=100", 422, "unprocessable"),  # not an image
        ("/images/truncated.jpg?w=100", 422, "unprocessable"),  # corrupt
        ("/images/bomb.png?w=100", 422, "unprocessable"),  # decompression bomb: over the pixel limit
        ("/images/huge.jpg?w=100", 413, "payload_too_large"),  # over the byte limit
        ("/images/..%2f..%2fetc/passwd?w=10", 400, "bad_request"),  # percent-encoded traversal
        ("/images/%2e%2e/%2e%2e/etc/passwd/w=1,h=0,fit=cover,q=80,f=jpeg", 400, "bad_request"),
        ("/../../etc/passwd?w=10", 400, "bad_request"),  # raw traversal, sent as is
        ("/images/..%5c..%5cwin.ini?w=10", 400, "bad_request"),  # backslash
        ("//etc/passwd?w=10", 400, "bad_request"),  # absolute key
        ("/%2fetc%2fpasswd?w=10", 400, "bad_request"),
        ("/images/a%00.jpg?w=10", 400, "bad_request"),  # NUL
        ("/images/%ff%fe.jpg?w=10", 400, "bad_request"),  # not UTF-8
        ("/", 400, "bad_request"),
    ],
)
def test_bad_requests(origin: OriginProc, path: str, status: int, error: str) -> None:
    reply = request(origin.port, path)
    assert reply.status == status, reply.body
    body = reply.json()
    assert body["error"] == error and body["detail"]
    assert reply.headers["content-type"].startswith("application/json")


def test_method_not_allowed(origin: OriginProc) -> None:
    reply = request(origin.port, CANON, method="POST")
    assert reply.status == 405 and reply.json()["error"] == "method_not_allowed"


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["images", "a.jpg", "..", ".", "%2e%2e", "%2f", "w=1", "w=1,h=2", "f=webp",
                                  "q=999", "fit=cover", "=", ",", "%00", "%ZZ", "x" * 30, "", "text.jpg",
                                  "bomb.png", "?w=5", "&format=avif", "?preset=thumb"]), max_size=6))
def test_fuzzed_paths_never_500(origin: OriginProc, parts: list[str]) -> None:
    reply = request(origin.port, "/" + "/".join(parts))
    assert reply.status < 500, (parts, reply.body)
    if reply.status >= 400:
        assert set(reply.json()) == {"error", "detail"}


def test_single_flight(origin: OriginProc) -> None:
    path = "/images/a.jpg/w=720,h=540,fit=cover,g=attention,q=60,f=avif"
    before = {n: metric(origin.port, n) for n in ("transforms_total", "singleflight_joins_total",
                                                   "local_cache_hits_total")}
    before_hits = metric_labelled(origin.port, 'edgeproof_origin_store_reads_total{store="derivative",result="hit"}')
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: request(origin.port, path), range(8)))
    assert all(r.status == 200 for r in replies)
    assert len({r.body for r in replies}) == 1
    transforms = metric(origin.port, "transforms_total") - before["transforms_total"]
    joins = metric(origin.port, "singleflight_joins_total") - before["singleflight_joins_total"]
    hits = metric_labelled(origin.port,
                           'edgeproof_origin_store_reads_total{store="derivative",result="hit"}') - before_hits
    assert transforms == 1
    assert joins + hits == 7  # every other request shared the one transform or read its result
    assert joins >= 1


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    return write_sources(tmp_path / "src")


def test_load_shedding(tmp_path: Path, sources: Path) -> None:
    proc = OriginProc(free_port(), ["--sources", str(sources), "--derivatives", str(tmp_path / "der"),
                                    "--workers", "1", "--max-concurrency", "1", "--queue-limit", "2"],
                      log=tmp_path / "log.txt")
    try:
        proc.wait_ready()
        paths = [f"/images/a.jpg/w={900 + i},h=0,fit=cover,q=80,f=webp" for i in range(24)]
        with ThreadPoolExecutor(24) as pool:
            replies = list(pool.map(lambda p: request(proc.port, p), paths))
        ok = [r for r in replies if r.status == 200]
        shed = [r for r in replies if r.status == 503]
        assert len(ok) + len(shed) == len(replies)
        assert len(ok) >= 3  # one running + two queued at the moment of the burst, at least
        assert shed, "a burst 8x the queue must be shed"
        for r in shed:
            assert r.headers["retry-after"].isdigit() and r.json()["error"] == "overloaded"
        for r in ok:
            assert decode(r.body).width >= 900
        assert metric_labelled(proc.port, 'edgeproof_origin_shed_total{reason="queue"}') == len(shed)
        # the server is fine afterwards
        assert request(proc.port, "/images/a.jpg?w=64&format=png").status == 200
    finally:
        assert proc.stop() == 0


def test_sigterm_drains_in_flight(tmp_path: Path, sources: Path) -> None:
    proc = OriginProc(free_port(), ["--sources", str(sources), "--derivatives", str(tmp_path / "der"),
                                    "--workers", "2", "--max-concurrency", "1", "--queue-limit", "16"],
                      log=tmp_path / "log.txt")
    try:
        proc.wait_ready()
        paths = [f"/images/a.jpg/w={1200 + i},h=0,fit=cover,q=80,f=webp" for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(request, proc.port, p) for p in paths]
            pending = 0.0
            ok_series = 'edgeproof_origin_requests_total{status="200",source="transform"}'
            for _ in range(400):  # until the server has accepted all 8 (bounded): running, queued or done
                pending = metric(proc.port, "queue_depth") + metric(proc.port, "in_flight")
                if pending + metric_labelled(proc.port, ok_series) >= len(paths):
                    break
                time.sleep(0.01)
            proc.proc.terminate()  # SIGTERM to the parent, which forwards it to both workers
            replies = [f.result(timeout=60) for f in futures]
        assert [r.status for r in replies] == [200] * len(paths)
        assert all(decode(r.body).width >= 1200 for r in replies)
        assert proc.proc.wait(timeout=60) == 0
        assert pending >= 1
        with pytest.raises(OSError):
            request(proc.port, "/healthz", timeout=2)
    finally:
        proc.stop()


def test_signed_urls(tmp_path: Path, sources: Path) -> None:
    import subprocess
    import sys

    proc = OriginProc(free_port(), ["--sources", str(sources), "--derivatives", str(tmp_path / "der"),
                                    "--workers", "1", "--signing-key", "new-key", "--signing-key", "old-key"],
                      log=tmp_path / "log.txt")

    def signed(url: str, key: str) -> str:
        out = subprocess.run([sys.executable, "-m", "edgeproof.cli", "origin", "sign", "--key", key, url],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    try:
        proc.wait_ready()
        assert request(proc.port, CANON).status == 403
        assert request(proc.port, CANON).json()["error"] == "forbidden"
        assert request(proc.port, CANON + "?sig=" + "0" * 64).status == 403
        assert request(proc.port, CANON + "?sig=%C3%A9").status == 403  # non-ASCII: 403, not 500
        assert request(proc.port, signed(CANON, "wrong-key")).status == 403
        for key in ("new-key", "old-key"):  # rotation: either key is accepted
            assert request(proc.port, signed(CANON, key)).status == 200
        # friendly form with a negotiated format: one signature for every Accept
        url = signed("/images/a.jpg?w=200&utm_source=x", "new-key")
        assert request(proc.port, url, {"Accept": "image/webp"}).headers["content-type"] == "image/webp"
        assert request(proc.port, url, {"Accept": "*/*"}).headers["content-type"] == "image/jpeg"
        # the signature covers the variant: changing the width breaks it
        assert request(proc.port, url.replace("w=200", "w=201")).status == 403
    finally:
        assert proc.stop() == 0


def test_s3_stores_and_local_cache(tmp_path: Path, s3_bucket: str, s3_env: dict[str, str]) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    s3.put_object(Bucket=s3_bucket, Key="src/images/a.jpg", Body=jpeg(1200, 900), ContentType="image/jpeg")
    s3.put_object(Bucket=s3_bucket, Key="src/images/text.jpg", Body=b"not an image")
    proc = OriginProc(free_port(), ["--sources", f"s3://{s3_bucket}/src", "--derivatives", f"s3://{s3_bucket}/der",
                                    "--workers", "1", "--local-cache-mb", "8"], env=s3_env, log=tmp_path / "log.txt")
    try:
        proc.wait_ready()
        first = request(proc.port, CANON)
        assert first.status == 200 and first.headers["x-origin-source"] == "transform"
        assert decode(first.body).width == 640
        second = request(proc.port, CANON)
        assert second.headers["x-origin-source"] == "local_cache" and second.body == first.body
        assert metric(proc.port, "local_cache_hits_total") >= 1
        key = "der/" + CANON.lstrip("/")
        for _ in range(100):
            listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix=key).get("Contents", [])
            if listed:
                break
            time.sleep(0.05)
        obj = s3.get_object(Bucket=s3_bucket, Key=key)
        assert obj["Body"].read() == first.body and obj["ContentType"] == "image/webp"
        assert obj["ETag"] == first.headers["etag"]  # one ETag whichever member of an origin group answers
        # the object is listed as soon as S3 has it; the writer counts it when put_object returns
        for _ in range(100):
            if metric_labelled(proc.port, 'edgeproof_origin_store_writes_total{result="ok"}') >= 1:
                break
            time.sleep(0.05)
        assert metric_labelled(proc.port, 'edgeproof_origin_store_writes_total{result="ok"}') == 1
        assert request(proc.port, "/images/missing.jpg?w=10").status == 404
        assert request(proc.port, "/images/text.jpg?w=10").status == 422
    finally:
        assert proc.stop() == 0
    # a fresh process (empty local cache) reads the stored derivative
    proc = OriginProc(free_port(), ["--sources", f"s3://{s3_bucket}/src", "--derivatives", f"s3://{s3_bucket}/der",
                                    "--workers", "1"], env=s3_env)
    try:
        proc.wait_ready()
        third = request(proc.port, "/images/a.jpg?w=640&format=webp&quality=80")
        assert third.headers["x-origin-source"] == "derivative_store" and third.body == first.body
    finally:
        assert proc.stop() == 0


def test_failed_derivative_write_is_not_an_error(tmp_path: Path, sources: Path) -> None:
    der = tmp_path / "der"
    der.mkdir()
    (der / "images").write_text("a file where the derivative folder should be")  # every write fails
    proc = OriginProc(free_port(), ["--sources", str(sources), "--derivatives", str(der), "--workers", "1"],
                      log=tmp_path / "log.txt")
    try:
        proc.wait_ready()
        reply = request(proc.port, CANON)
        assert reply.status == 200 and decode(reply.body).width == 640
        for _ in range(100):
            if metric_labelled(proc.port, 'edgeproof_origin_store_writes_total{result="error"}') >= 1:
                break
            time.sleep(0.05)
        assert metric_labelled(proc.port, 'edgeproof_origin_store_writes_total{result="error"}') == 1
    finally:
        assert proc.stop() == 0
    assert "derivative write failed" in (tmp_path / "log.txt").read_text()


def test_deadline_gives_503(tmp_path: Path, sources: Path) -> None:
    proc = OriginProc(free_port(), ["--sources", str(sources), "--derivatives", str(tmp_path / "der"),
                                    "--workers", "1", "--deadline-ms", "1"], log=tmp_path / "log.txt")
    try:
        proc.wait_ready()
        reply = request(proc.port, CANON)
        assert reply.status == 503 and reply.json()["error"] == "overloaded"
        assert reply.headers["retry-after"].isdigit()
        assert metric_labelled(proc.port, 'edgeproof_origin_shed_total{reason="deadline"}') == 1
        assert metric(proc.port, "transforms_total") == 0
        assert not (tmp_path / "der" / CANON.lstrip("/")).exists()
    finally:
        assert proc.stop() == 0


def test_presets_cache_control_no_writes(tmp_path: Path, sources: Path) -> None:
    presets = tmp_path / "presets.toml"
    presets.write_text('[presets.hero]\nw = 300\nh = 100\nfit = "cover"\nf = "png"\n')
    proc = OriginProc(free_port(), ["--sources", str(sources), "--derivatives", str(tmp_path / "der"),
                                    "--workers", "1", "--presets", str(presets), "--no-write-derivatives",
                                    "--cache-control", "public, max-age=60"], log=tmp_path / "log.txt")
    try:
        proc.wait_ready()
        by_path = request(proc.port, "/images/a.jpg/preset=hero")
        # the friendly form negotiates the format unless one is given (the preset's is not used)
        by_query = request(proc.port, "/images/a.jpg?preset=hero&format=png&utm_campaign=x")
        negotiated = request(proc.port, "/images/a.jpg?preset=hero", {"Accept": "image/webp"})
        assert negotiated.headers["content-type"] == "image/webp" and negotiated.headers["vary"] == "Accept"
        assert by_path.status == by_query.status == 200
        assert by_path.body == by_query.body and by_path.headers["cache-control"] == "public, max-age=60"
        image = decode(by_path.body)
        assert (image.width, image.height) == (300, 100) and loader(by_path.body).startswith("pngload")
        thumb = decode(request(proc.port, "/images/a.jpg?preset=thumb").body)  # built-ins still there
        assert (thumb.width, thumb.height) == (160, 160)
        assert request(proc.port, "/images/a.jpg?preset=nope").status == 400
        time.sleep(0.3)
        assert not (tmp_path / "der").exists() or not any((tmp_path / "der").rglob("*=*"))
        assert metric(proc.port, "store_writes_total") == 0
    finally:
        assert proc.stop() == 0
