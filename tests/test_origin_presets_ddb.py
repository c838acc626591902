"""Presets and path policies in DynamoDB: ``origin presets push/list`` and ``origin serve --presets-table``.

Everything real: moto's server in its own process answers DynamoDB over HTTP (the conftest's
``s3_server``: moto serves every service on one port), the CLI runs as a subprocess, the origin is a
real ``edgeproof origin serve`` on 127.0.0.1 pointed at moto with ``AWS_ENDPOINT_URL``, and outputs are
decoded with pyvips. Items the CLI would refuse (malformed ones) are written with boto3 directly.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from _origin_helpers import OriginProc, Reply, decode, jpeg, request
from conftest import free_port
from edgeproof.origin.presets import Policy, load_preset_file, policy_from_item, preset_from_item
from edgeproof.origin.presets_table import PresetResolver, PresetsTable

from edgeproof.canonical import DEFAULT_PRESETS, Variant
from edgeproof.errors import BadPresetItem, BadRequest, ConfigError, PresetsUnavailable

PRESETS_TOML = """
[presets.fileonly]          # only in the file: the table has no item, the file is the fallback
w = 120
h = 90
fit = "fill"
f = "png"

[presets.shared]            # in the file and (pushed differently) in the table: the table wins
w = 50
h = 50
fit = "fill"
f = "png"

[policies."/images/filepolicy/"]
widths = [100]
"""

TABLE_TOML = """
[presets.hero]
w = 320
h = 120
fit = "cover"
f = "webp"

[presets.thumb_hq]
preset = "thumb"
q = 95

[presets.shared]
w = 240
h = 100
fit = "fill"
f = "webp"

[policies."/images/products/"]
widths = [160, 320]
formats = ["webp", "jpeg"]
max_quality = 70
"""

TTL = 5.0  # the origin's --presets-ttl


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeproof.cli", "origin", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def ddb(env: dict[str, str]) -> Any:
    return boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def put_preset(env: dict[str, str], table: str, name: str, ops: dict[str, Any]) -> None:
    """A preset item written by hand (the layout docs/origin.md gives), not through push."""
    from boto3.dynamodb.types import TypeSerializer

    ser = TypeSerializer()
    ddb(env).put_item(TableName=table, Item={"pk": {"S": "preset"}, "sk": {"S": name}, "ops": ser.serialize(ops)})


def size(reply: Reply) -> tuple[int, int]:
    assert reply.status == 200, (reply.status, reply.body[:300])
    image = decode(reply.body)
    return image.width, image.height


@pytest.fixture(scope="module")
def aws(s3_server: dict[str, str]) -> dict[str, str]:
    return dict(s3_server)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("presets")
    for key in ("images/a.jpg", "images/products/p.jpg", "images/filepolicy/f.jpg", "images/broken/b.jpg"):
        (root / "src" / key).parent.mkdir(parents=True, exist_ok=True)
        (root / "src" / key).write_bytes(jpeg(800, 600))
    (root / "presets.toml").write_text(PRESETS_TOML)
    (root / "table.toml").write_text(TABLE_TOML)
    return root


@pytest.fixture(scope="module")
def table(aws: dict[str, str], files: Path) -> str:
    name = f"presets-{uuid.uuid4().hex[:10]}"
    res = cli("presets", "push", str(files / "table.toml"), "--table", name, "--create", env=aws)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"pushed 3 presets and 1 policies to {name} (table created, on-demand billing)"
    return name


def start(files: Path, args: list[str], env: dict[str, str], log: str) -> OriginProc:
    proc = OriginProc(free_port(), ["--sources", str(files / "src"), "--derivatives", str(files / f"der-{log}"),
                                    "--workers", "1", "--no-write-derivatives", "--presets", str(files / "presets.toml"),
                                    "--server-timing", *args],
                      env=env, log=files / f"{log}.log")
    proc.wait_ready()
    return proc


@pytest.fixture(scope="module")
def origin(files: Path, table: str, aws: dict[str, str]) -> Iterator[OriginProc]:
    proc = start(files, ["--presets-table", table, "--presets-ttl", str(TTL)], aws, "origin")
    try:
        yield proc
    finally:
        assert proc.stop() == 0


# ------------------------------------------------------------------------------ push and list


def test_push_refuses_bad_files_and_list_prints_the_table(files: Path, aws: dict[str, str]) -> None:
    table = f"pushed-{uuid.uuid4().hex[:10]}"  # its own table: other tests add malformed items to theirs
    assert cli("presets", "push", str(files / "table.toml"), "--table", table, "--create", env=aws).returncode == 0
    listed = cli("presets", "list", "--table", table, env=aws)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert "preset  hero  w=320,h=120,fit=cover,q=80,f=webp" in lines
    assert "preset  thumb_hq  w=160,h=160,fit=cover,q=95,f=webp" in lines  # resolved on push: no reference left
    assert "policy  /images/products/  widths=160,320 formats=webp,jpeg max_quality=70" in lines

    bad = files / "bad.toml"
    for text, needle in [('[presets.x]\nw = "wide"\n', "preset 'x': malformed w"),
                         ('[policies."/a/"]\nwidths = [true]\n', 'widths[0]: expected a whole number, got true'),
                         ('[policies."a/"]\nwidths = [1]\n', "must be a path starting with '/'"),
                         ('[presets.Hero]\nw = 1\n', "lower-case letters"),
                         ('[presets."a b"]\nw = 1\n', "lower-case letters"),
                         ('[presets.x\n', "not valid TOML")]:
        bad.write_text(text)
        res = cli("presets", "push", str(bad), "--table", table, env=aws)
        assert res.returncode == 2 and needle in res.stderr, (text, res.stderr)
        assert "Traceback" not in res.stderr
    assert cli("presets", "list", "--table", table, env=aws).stdout == listed.stdout  # nothing was written


def test_aws_errors_are_one_line_exit_2(files: Path, aws: dict[str, str]) -> None:
    missing = cli("presets", "list", "--table", "no-such-presets-table", env=aws)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "edgeproof: error: cannot read presets table no-such-presets-table: no such table "
        "(make it with: edgeproof origin presets push FILE --table T --create)"]
    down = {**aws, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    res = cli("presets", "push", str(files / "table.toml"), "--table", "t-down", env=down)
    assert res.returncode == 2
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("edgeproof: error: cannot describe presets table t-down: cannot reach") or \
        line.startswith("edgeproof: error: cannot write presets table t-down: cannot reach"), line


# ------------------------------------------------------------------------------ serving


def test_preset_only_in_the_table(origin: OriginProc) -> None:
    for path in ("/images/a.jpg/preset=hero", "/images/a.jpg?preset=HERO&format=webp"):
        reply = request(origin.port, path)
        assert size(reply) == (320, 120)
        assert reply.headers["content-type"] == "image/webp"
        assert reply.headers["x-origin-preset"] == "hero; from=table"


def test_table_first_then_the_file(origin: OriginProc) -> None:
    shared = request(origin.port, "/images/a.jpg/preset=shared")  # in both: the table's item
    assert size(shared) == (240, 100) and shared.headers["x-origin-preset"] == "shared; from=table"
    fileonly = request(origin.port, "/images/a.jpg/preset=fileonly")  # no item: the file's
    assert size(fileonly) == (120, 90) and fileonly.headers["content-type"] == "image/png"
    assert fileonly.headers["x-origin-preset"] == "fileonly; from=file"
    thumb = request(origin.port, "/images/a.jpg/preset=thumb")  # a built-in
    assert size(thumb) == (160, 160) and thumb.headers["x-origin-preset"] == "thumb; from=file"


def test_unknown_preset_is_a_400_json(origin: OriginProc, table: str) -> None:
    for path in ("/images/a.jpg/preset=nosuch", "/images/a.jpg?preset=nosuch", "/images/a.jpg?preset=" + "n" * 300):
        reply = request(origin.port, path)
        assert reply.status == 400 and reply.headers["content-type"].startswith("application/json")
        body = reply.json()
        assert body["error"] == "bad_request"
        assert "'nosuch'" in body["detail"] or "'nnnn" in body["detail"]
        assert table in body["detail"] and "thumb" in body["detail"]


def test_malformed_items_are_json_errors_naming_them(origin: OriginProc, table: str, aws: dict[str, str]) -> None:
    put_preset(aws, table, "broken", {"w": "wide", "h": 10})
    put_preset(aws, table, "nested", {"w": {"px": 10}})
    ddb(aws).put_item(TableName=table, Item={"pk": {"S": "preset"}, "sk": {"S": "noops"}, "w": {"N": "10"}})
    for name in ("broken", "nested", "noops"):
        reply = request(origin.port, f"/images/a.jpg/preset={name}")
        assert reply.status == 502, (name, reply.status, reply.body)
        body = reply.json()
        assert body["error"] == "bad_preset_item" and f"preset {name!r}" in body["detail"]
        assert size(request(origin.port, "/images/a.jpg/preset=hero")) == (320, 120)  # still serving
    assert "w='wide' is not a whole number" in request(origin.port, "/images/a.jpg/preset=broken").json()["detail"]
    listed = cli("presets", "list", "--table", table, env=aws)
    assert listed.returncode == 2 and "preset  hero  w=320,h=120,fit=cover,q=80,f=webp" in listed.stdout
    for name in ("broken", "nested", "noops"):
        assert f"preset  {name}  MALFORMED: " in listed.stdout
    assert "malformed items in presets table" in listed.stderr


def test_path_policies(origin: OriginProc, table: str, aws: dict[str, str]) -> None:
    def get(path: str, accept: str | None = None) -> Reply:
        return request(origin.port, path, {"Accept": accept} if accept else None)

    ok = get("/images/products/p.jpg/w=320,h=0,fit=inside,q=90,f=webp")
    assert size(ok) == (320, 240) and ok.headers["x-origin-policy"] == "/images/products/; from=table"
    for path, word in [("/images/products/p.jpg/w=500,f=webp", "widths 160, 320"),
                       ("/images/products/p.jpg/w=160,f=png", "formats webp, jpeg")]:
        reply = get(path)
        assert reply.status == 400 and word in reply.json()["detail"], (path, reply.body)
    negotiated = get("/images/products/p.jpg?w=160", accept="image/avif,image/webp,*/*")
    assert negotiated.headers["content-type"] == "image/webp"  # avif is not among the policy's formats
    assert negotiated.headers["vary"] == "Accept"
    assert get("/images/a.jpg?w=160", accept="image/avif").headers["content-type"] == "image/avif"  # no policy
    assert "x-origin-policy" not in get("/images/a.jpg/w=500,f=webp").headers
    # the file's policy where the table has none; refused widths name their policy
    assert get("/images/filepolicy/f.jpg/w=100,f=webp").headers["x-origin-policy"] == "/images/filepolicy/; from=file"
    assert get("/images/filepolicy/f.jpg/w=101,f=webp").status == 400
    # quality is lowered to max_quality, not refused: the same bytes as asking for q=70
    high = get("/images/products/p.jpg/w=160,h=0,fit=inside,q=95,f=jpeg")
    capped = get("/images/products/p.jpg/w=160,h=0,fit=inside,q=70,f=jpeg")
    assert high.status == 200 and high.body == capped.body


def test_malformed_policy_item_fails_only_its_prefix(origin: OriginProc, table: str, aws: dict[str, str]) -> None:
    ddb(aws).put_item(TableName=table, Item={"pk": {"S": "policy"}, "sk": {"S": "/images/broken/"},
                                             "widths": {"L": [{"S": "wide"}]}})
    deadline = time.monotonic() + 60  # the policies entry may be cached: wait for the origin to read it again
    while True:
        reply = request(origin.port, "/images/broken/b.jpg/w=100,f=webp")
        if reply.status != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert reply.status == 502, reply.body
    assert reply.json()["error"] == "bad_preset_item" and "policy '/images/broken/'" in reply.json()["detail"]
    assert request(origin.port, "/images/a.jpg/w=100,f=webp").status == 200
    ddb(aws).delete_item(TableName=table, Key={"pk": {"S": "policy"}, "sk": {"S": "/images/broken/"}})


def test_ttl_cache(origin: OriginProc, table: str, aws: dict[str, str]) -> None:
    """Within the TTL the worker answers from what it read; after it, from the changed item. Whether
    the second request came within the TTL is measured, not assumed (the machine is noisy)."""
    put_preset(aws, table, "ttl", {"w": 200, "h": 100, "fit": "fill", "f": "webp"})
    before = time.monotonic()
    assert size(request(origin.port, "/images/a.jpg/preset=ttl")) == (200, 100)  # read and cached
    put_preset(aws, table, "ttl", {"w": 300, "h": 100, "fit": "fill", "f": "webp"})
    again = size(request(origin.port, "/images/a.jpg/preset=ttl"))
    if time.monotonic() - before < TTL:
        assert again == (200, 100), "the item changed, but the cached copy is still within its TTL"
    deadline = time.monotonic() + 60
    while size(request(origin.port, "/images/a.jpg/preset=ttl")) != (300, 100):
        assert time.monotonic() < deadline, "the changed item was never read again"
        time.sleep(0.25)


_SPAN = re.compile(r"(\w+);start=([\d.]+);end=([\d.]+);dur=([\d.]+)")


def test_preset_and_source_are_read_in_parallel(origin: OriginProc, table: str, aws: dict[str, str]) -> None:
    """A preset the worker has not read yet: its table read and the source read overlap in time (both
    started before either ended), as the Server-Timing spans on the worker's monotonic clock show."""
    put_preset(aws, table, "cold", {"w": 64, "h": 64, "fit": "cover", "f": "jpeg"})
    reply = request(origin.port, "/images/a.jpg/preset=cold")
    assert size(reply) == (64, 64)
    spans = {name: (float(s), float(e)) for name, s, e, _ in _SPAN.findall(reply.headers["server-timing"])}
    assert set(spans) == {"preset", "source"}, reply.headers["server-timing"]
    (p0, p1), (s0, s1) = spans["preset"], spans["source"]
    assert max(p0, s0) < min(p1, s1), f"preset {p0}-{p1} and source {s0}-{s1} did not overlap"
    warm = request(origin.port, "/images/a.jpg/preset=cold")  # cached now: no table read, the source alone
    assert set(dict((n, 1) for n, *_ in _SPAN.findall(warm.headers["server-timing"]))) == {"source"}


def test_table_unreachable(files: Path, aws: dict[str, str]) -> None:
    """The file's presets and policies are the fallback (and the response says so); a preset only the
    table could have is a 503 JSON."""
    down = {**aws, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    proc = start(files, ["--presets-table", "presets-down", "--presets-ttl", "30"], down, "down")
    try:
        fallback = request(proc.port, "/images/a.jpg/preset=fileonly")
        assert size(fallback) == (120, 90) and fallback.headers["x-origin-preset"] == "fileonly; from=file-fallback"
        unavailable = request(proc.port, "/images/a.jpg/preset=hero")
        assert unavailable.status == 503, unavailable.body
        assert unavailable.json()["error"] == "presets_unavailable" and "'hero'" in unavailable.json()["detail"]
        assert "127.0.0.1" not in unavailable.json()["detail"]  # the endpoint goes to the log, not the client
        policy = request(proc.port, "/images/filepolicy/f.jpg/w=100,f=webp")
        assert policy.headers["x-origin-policy"] == "/images/filepolicy/; from=file-fallback"
        assert request(proc.port, "/images/filepolicy/f.jpg/w=101,f=webp").status == 400
        assert size(request(proc.port, "/images/a.jpg/w=80,h=80,fit=fill,f=webp")) == (80, 80)  # no preset: served
    finally:
        assert proc.stop() == 0
    assert "cannot read presets table presets-down: cannot reach" in (files / "down.log").read_text()


# ------------------------------------------------------------------------------ units


def test_item_parsing_is_the_file_parsing() -> None:
    from decimal import Decimal

    item = {"pk": "preset", "sk": "x", "ops": {"w": Decimal("640"), "h": Decimal("0"), "fit": "inside", "f": "webp"}}
    assert preset_from_item(item, DEFAULT_PRESETS, table="t") == Variant(w=640, h=0, fit="inside", f="webp")
    on_thumb = {"pk": "preset", "sk": "y", "ops": {"preset": "thumb", "q": Decimal(50)}}
    assert preset_from_item(on_thumb, DEFAULT_PRESETS, table="t").ops == "w=160,h=160,fit=cover,q=50,f=webp"
    for ops in ({"w": Decimal("1.5")}, {"q": Decimal(101)}, {"fit": "stretch"}, {"preset": "nosuch"}, {}):
        with pytest.raises(BadPresetItem, match="the preset item 'z' is malformed"):
            preset_from_item({"pk": "preset", "sk": "z", "ops": ops}, DEFAULT_PRESETS, table="t")
    rule = policy_from_item({"pk": "policy", "sk": "/p/", "widths": {Decimal(320), Decimal(160)},
                             "max_quality": Decimal(60)}, table="t")
    assert rule.policy == Policy(widths=(160, 320), max_quality=60)
    bad = policy_from_item({"pk": "policy", "sk": "/p/", "max_qualty": Decimal(60)}, table="t")
    assert isinstance(bad.policy, BadPresetItem) and "max_qualty: unknown key" in bad.policy.message


def test_policy_apply() -> None:
    policy = Policy(widths=(160, 320), formats=("webp", "jpeg"), max_quality=70)
    v = Variant(w=320, q=90, f="webp")
    assert policy.apply(v, negotiated=False, accept=None, prefix="/p/") == Variant(w=320, q=70, f="webp")
    assert policy.apply(Variant(w=160, f="avif"), negotiated=True, accept="image/avif,image/webp",
                        prefix="/p/").f == "webp"
    assert policy.apply(Variant(w=160, f="avif"), negotiated=True, accept="image/avif", prefix="/p/").f == "jpeg"
    with pytest.raises(BadRequest, match="width 200"):
        policy.apply(Variant(w=200, f="webp"), negotiated=False, accept=None, prefix="/p/")
    with pytest.raises(BadRequest, match="format png"):
        policy.apply(Variant(w=160, f="png"), negotiated=False, accept=None, prefix="/p/")
    same = Variant(w=160, q=60, f="jpeg")
    assert policy.apply(same, negotiated=False, accept=None, prefix="/p/") is same


def test_preset_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[presets.a]\nw = 10\n[other]\nx = 1\n')
    with pytest.raises(ConfigError, match="other: unknown table"):
        load_preset_file(path)
    path.write_text('[policies."/x/"]\nmax_quality = 0\n')
    with pytest.raises(ConfigError, match=r'\[policies\."/x/"\] max_quality: must be 1..100, got 0'):
        load_preset_file(path)


class CountingTable(PresetsTable):
    """The real table (moto over HTTP), with its reads counted."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gets = 0
        self.queries = 0

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        return super().get(kind, name)

    def query(self, kind: str) -> list[dict[str, Any]]:
        self.queries += 1
        return super().query(kind)


def test_resolver_single_flight_and_ttl(table: str, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent requests for one cold preset share one GetItem (one of them leads); within the TTL
    none reads again (on a clock the test moves); after it, one read again; unreachable → fallback."""
    counting = CountingTable(table)
    now = [1000.0]
    resolver = PresetResolver(load_preset_file(None), counting, ttl=10, clock=lambda: now[0])

    async def burst(n: int) -> list[Any]:
        started = [resolver.fetch("hero") for _ in range(n)]
        assert sum(led for _, led in started) == 1
        return await asyncio.gather(*(aw for aw, _ in started))

    try:
        results = asyncio.run(burst(20))
        assert counting.gets == 1 and counting.queries == 1
        assert {r.presets["hero"].ops for r in results} == {"w=320,h=120,fit=cover,q=80,f=webp"}
        assert resolver.ready("hero") is not None and resolver.ready("other") is None
        now[0] += 9.9
        assert resolver.ready("hero") is not None
        now[0] += 0.2
        assert resolver.ready("hero") is None
        asyncio.run(burst(3))
        assert counting.gets == 2
        with pytest.raises(BadRequest, match="unknown preset"):  # no preset could have this name: no read
            asyncio.run(_resolve(resolver, "n" * 100))
        assert counting.gets == 2
    finally:
        resolver.close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    down = PresetResolver(load_preset_file(None), PresetsTable(table), ttl=10)
    try:
        assert asyncio.run(_resolve(down, "thumb")).preset == ("thumb", "file-fallback")
        with pytest.raises(PresetsUnavailable, match="cannot reach"):
            asyncio.run(_resolve(down, "hero"))
    finally:
        down.close()


async def _resolve(resolver: PresetResolver, name: str) -> Any:
    pending, _led = resolver.fetch(name)
    return await pending
