"""The exported CloudFront Function agrees byte for byte with the Python strategy (Node, one process)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgeproof.analytics.strategies import StrategyConfig, get_strategy
from edgeproof.analytics.strategies.cf_function import CF_FUNCTION_MAX_BYTES, export_cf_function
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeproof.errors import BadRequest, ConfigError

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

CUSTOM = StrategyConfig.from_dict({
    "name": "custom_strict", "mode": "canonical", "path_case": "lower",
    "canonical": {"breakpoints": [100, 300, 1000], "max_dpr": 2.5, "quality_buckets": [40, 75],
                  "formats": ["webp", "jpeg"], "format_param": "ignore", "on_invalid": "reject"},
})
STRATEGIES = [get_strategy("aggressive"), get_strategy("canonical"), get_strategy("breakpoints"),
              get_strategy(CUSTOM)]

#: the shared harness (one Node process, JSON lines): runs each export unchanged, in strict mode, in a
#: context without Node's globals and without code generation from strings, as CloudFront's runtime
HARNESS = Path(__file__).with_name("cf_function_harness.js")


class Node:
    def __init__(self) -> None:
        assert NODE is not None
        self.proc = subprocess.Popen([NODE, str(HARNESS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.run([json.dumps({"op": "load", "id": str(i), "code": export_cf_function(s)})
                  for i, s in enumerate(STRATEGIES)])

    def run(self, lines: list[str]) -> list[dict]:
        """Answers of a batch of harness lines (small answers: the pipe holds a whole batch)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("".join(line + "\n" for line in lines))
        self.proc.stdin.flush()
        answers = [json.loads(self.proc.stdout.readline()) for _ in lines]
        for answer in answers:
            assert "error" not in answer, answer["error"]
        return [a["ok"] for a in answers]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    n = Node()
    yield n
    n.close()


# ---------------------------------------------------------------- request generator
SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%+,;:!*'()/ #"
junk = st.text(alphabet=SAFE, max_size=8)
KNOWN_NAMES = (
    st.sampled_from(["w", "width", "W", "Width", " w", "w%20", "%57", "wid%74h", "h", "height", "HEIGHT", "q",
                     "quality", "f", "fmt", "format", "fm", "FORMAT", "fo%72mat", "g", "gravity", "crop", "bg",
                     "background", "fit", "FIT", "preset", "dpr", "DPR", "utm_source", "fbclid", "gclid", "v",
                     "cb", "_", "t", "__proto__", "constructor", "hasOwnProperty", "toString", ""])
)
names = st.one_of(KNOWN_NAMES, KNOWN_NAMES, KNOWN_NAMES, junk)  # weighted 3:1 towards real names
KNOWN_VALUES = (
    st.sampled_from(["640", " 640 ", "0640", "640%20", "%36%34%30", "1e3", "-1", "0", "1", "99", "100", "101",
                     "999999", "1000000", "100000", "100001", "2001", "webp", "WEBP", " Webp", "auto", "AUTO", "",
                     "jpg", "jpeg", "png", "avif", "gif", "%77ebp", "web+p", "cover", "contain", "inside", "fill",
                     "Contain", "stretch", "centre", "center", "attention", "smart", "north", "ffffff", "#FFF000",
                     "%23abcdef", "##abcdef", "ff00zz", "abc", "2", "1.5", "2.", ".5", "nan", "inf", "10", "0.5",
                     "1.1234", "3.000", "2.25", "thumb", "card", "pdp", "zoom", "ZOOM", "hero", "%1c640", "%e2%80%8a1"])
)
values = st.one_of(KNOWN_VALUES, KNOWN_VALUES, KNOWN_VALUES, junk)
pair = st.tuples(names, values, st.booleans())  # (name, value, with '=')
FRIENDLY = st.sampled_from(["/images/sku-1.jpg", "/Images/SKU-1.JPG", "/a.png", "/x/y/z.webp", "/images/a%20b.jpg"])
paths = st.one_of(
    FRIENDLY, FRIENDLY, FRIENDLY,
    st.sampled_from(["/images/sku-1.jpg", "/Images/SKU-1.JPG", "/a.png", "/x/y/z.webp", "/", "//a.jpg", "/../x.jpg",
                     "/a/./b.jpg", "/a//b.jpg", "/c:/x.jpg", "/C:x.jpg", "/%2e%2e/x.jpg", "/images/a%20b.jpg",
                     "/images/sku-1.jpg/w=640,h=0,fit=cover,q=80,f=webp", "/images/sku-1.jpg/preset=thumb",
                     "/images/sku-1.jpg/w=640,w=320", "/images/sku-1.jpg/W=640", "/images/sku-1.jpg/w=",
                     "/images/sku-1.jpg/w=600,fit=Contain,bg=#00ff00,q=77,f=avif", "/a=b.jpg", "/images/x.jpg/=5",
                     "/IMAGES/Sku.JPG/w=1000,h=500,g=attention,q=55,f=jpg"]),
    st.builds(lambda a, b: f"/{a}/{b}", junk, junk),
    st.builds(lambda a, ops: f"/images/{a}.jpg/" + ",".join(f"{k}={v}" for k, v in ops), junk,
              st.lists(st.tuples(st.sampled_from(["w", "h", "fit", "g", "bg", "q", "f", "preset", "x"]), values),
                       max_size=5)),
)
accepts = st.one_of(st.none(), st.sampled_from(["", "image/avif,image/webp,*/*", "image/webp,*/*", "*/*",
                                                "IMAGE/AVIF", "image/png", "text/html,image/webp;q=0.9"]), junk)
request = st.tuples(paths, st.lists(pair, max_size=7), accepts, st.integers(0, len(STRATEGIES) - 1),
                    st.booleans())
BATCH = 100
EXAMPLES = 100  # 10,000 requests


def _query(pairs: list[tuple[str, str, bool]], empty_segment: bool) -> str:
    segments = [f"{n}={v}" if eq else n for n, v, eq in pairs]
    if empty_segment and segments:
        segments.insert(len(segments) // 2, "")
    return "&".join(segments)


def _event_qs(query: str) -> dict[str, dict]:
    """CloudFront's querystring object: one entry per name, repeated names in multiValue."""
    grouped: dict[str, list[str]] = {}
    for segment in query.split("&"):
        if segment:
            name, _, value = segment.partition("=")
            grouped.setdefault(name, []).append(value)
    qs: dict[str, dict] = {}
    for name, vals in grouped.items():
        qs[name] = {"value": vals[0]}
        if len(vals) > 1:
            qs[name]["multiValue"] = [{"value": v} for v in vals]
    return qs


COUNT = {"checked": 0, "refused": 0}


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(request, min_size=BATCH, max_size=BATCH))
def test_js_matches_python(node: Node, batch: list) -> None:
    lines, expected = [], []
    for path, pairs, accept, s, empty in batch:
        query = _query(pairs, empty)
        try:
            want: dict = {"uri": STRATEGIES[s].apply("GET", path, query, {"accept": accept or ""}).cache_key,
                          "qs": []}
        except BadRequest:
            want = {"status": 400}
        expected.append(want)
        headers = {} if accept is None else {"accept": {"value": accept}}
        event = {"version": "1.0", "context": {"eventType": "viewer-request"}, "viewer": {"ip": "127.0.0.1"},
                 "request": {"method": "GET", "uri": path, "querystring": _event_qs(query), "headers": headers,
                             "cookies": {}}}
        lines.append(json.dumps({"op": "run", "id": str(s), "event": event}))
    outs = node.run(lines)
    got = [{"status": o["statusCode"]} if "statusCode" in o else {"uri": o["uri"], "qs": list(o["querystring"])}
           for o in outs]
    for line, w, g in zip(lines, expected, got, strict=True):
        assert g == w, line
    COUNT["checked"] += len(lines)
    COUNT["refused"] += sum(1 for w in expected if "status" in w)


def test_enough_requests_were_compared() -> None:
    # runs after test_js_matches_python (file order): >= 10,000 requests, both outcomes exercised
    assert COUNT["checked"] >= 10_000
    assert 0 < COUNT["refused"] < COUNT["checked"]


def test_export_is_small_and_query_mode_refused(tmp_path: Path) -> None:
    code = export_cf_function(get_strategy("aggressive"))
    assert len(code.encode()) < CF_FUNCTION_MAX_BYTES
    assert "function handler(event)" in code
    with pytest.raises(ConfigError):
        export_cf_function(get_strategy("passthrough"))


def test_export_cli_writes_file(tmp_path: Path) -> None:
    out = tmp_path / "viewer-request.js"
    proc = subprocess.run([sys.executable, "-m", "edgeproof.cli", "strategies", "export-cf-function",
                           "aggressive", "-o", str(out)], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == export_cf_function(get_strategy("aggressive"))
    check = subprocess.run([NODE, "--check", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
