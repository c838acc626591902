"""The exported CloudFront Function computes exactly what ``Strategy.apply`` computes: a property test.

Why: the function is what runs at the edge; the Python strategy is what the edge emulator runs and what
the replay predicts hit rates with. If the two differ, every prediction is about another system (the
known case: ``Accept: image/avif;q=0,image/webp`` gave ``f=avif`` at the edge and ``f=webp`` in Python).

Hypothesis generates viewer requests the way browsers and careless clients send them (parameter order,
case, every alias spelling, repeated names, empty values and empty segments, percent-encoded names and
values, tracking parameters, huge/negative/non-numeric numbers, canonical-form paths, traversal) and
``Accept`` headers (q=0, q=0.000, q=1, q=0.5, malformed weights, case, whitespace, several ranges,
wildcards, several header lines, no header). Each request is given to ``Strategy.apply`` and, as the
viewer-request event CloudFront builds for ``cloudfront-js-2.0`` ("CloudFront Functions event structure",
functions-event-structure.html: ``request.querystring`` has one field per name, ``{value}`` holding the
first value and ``multiValue: [{value}, …]`` when the name repeats, values still percent-encoded as
received; ``request.headers`` has lower-case names, repeated lines in ``multiValue``), to the exported
function running in Node. The outcomes must be equal: the URI the function sets is the cache key and the
origin path (the query string it leaves is empty), and a refusal is the function's generated 400 where
Python raises ``BadRequest``.

One Node process serves the whole module (``tests/cf_function_harness.js``, JSON lines on stdin/stdout);
it runs the exported source unchanged, in strict mode, in a context without Node's globals and with code
generation from strings disabled, as CloudFront's runtime has them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import string
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from edgeproof.analytics.deploy import querystring_object
from edgeproof.analytics.strategies import Strategy, get_strategy, list_strategies
from edgeproof.analytics.strategies._registry import BUILTIN_ORDER
from edgeproof.analytics.strategies.cf_function import CF_FUNCTION_MAX_BYTES, export_cf_function
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgeproof.canonical import FORMATS, PARAM_ALIASES
from edgeproof.errors import BadRequest, ConfigError

NODE = shutil.which("node")
HARNESS = Path(__file__).with_name("cf_function_harness.js")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

#: the built-ins that export (canonical mode); the query-mode ones are refused on export (see the test)
EXPORTED = [n for n in BUILTIN_ORDER if get_strategy(n).config.mode == "canonical"]
QUERY_MODE = [n for n in BUILTIN_ORDER if get_strategy(n).config.mode == "query"]
USER = "user_toml"
USER_TOML = """\
# A user's strategy, as a team would write it: every knob away from the built-ins' values.
name = "user_toml"
description = "written by tests/test_strategies_js_equiv.py"
mode = "canonical"
path_case = "lower"

[canonical]
breakpoints = [100, 300, 1000]
max_dpr = 2.5
quality_buckets = [40, 75]
formats = ["webp", "avif", "png"]
format_param = "ignore"
on_invalid = "reject"
"""
EXAMPLES_PER_STRATEGY = 300
OUTCOMES: Counter[tuple[str, str]] = Counter()


# ---------------------------------------------------------------- the Node side
class NodeFunctions:
    """One ``node tests/cf_function_harness.js`` process: load exported functions, run events."""

    def __init__(self) -> None:
        assert NODE is not None
        self.proc = subprocess.Popen([NODE, str(HARNESS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.loaded: set[str] = set()

    def _ask(self, message: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the node harness exited with {self.proc.wait(timeout=10)}")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"node: {answer['error']}")
        return answer["ok"]

    def load(self, fid: str, code: str) -> None:
        if fid not in self.loaded:
            self._ask({"op": "load", "id": fid, "code": code})
            self.loaded.add(fid)

    def run(self, fid: str, event: dict[str, Any]) -> dict[str, Any]:
        out = self._ask({"op": "run", "id": fid, "event": event})
        assert isinstance(out, dict), out
        return out

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def node() -> Iterator[NodeFunctions]:
    n = NodeFunctions()
    yield n
    n.close()


@pytest.fixture(scope="module")
def toml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("strategies")


@pytest.fixture(scope="module")
def functions(node: NodeFunctions, toml_dir: Path) -> dict[str, Strategy]:
    """Every exportable built-in and the user's TOML strategy, exported and loaded into Node."""
    user = toml_dir / "user_toml.toml"
    user.write_text(USER_TOML)
    found = {name: get_strategy(name) for name in EXPORTED}
    found[USER] = get_strategy(user)
    for name, strategy in found.items():
        node.load(name, export_cf_function(strategy))
    return found


# ---------------------------------------------------------------- requests
@dataclass(frozen=True)
class Req:
    uri: str                                 # the path as received (percent-encoded)
    query: str                               # the raw query string, without '?'
    accept: tuple[str, ...] | None = None    # Accept header lines; None: no Accept header


#: ``request.querystring`` as CloudFront builds it: the deploy's own builder (one definition)
querystring_event = querystring_object


def event_of(req: Req) -> dict[str, Any]:
    headers: dict[str, Any] = {"host": {"value": "d111111abcdef8.cloudfront.net"}}
    if req.accept is not None:
        headers["accept"] = {"value": req.accept[0]}
        if len(req.accept) > 1:
            headers["accept"]["multiValue"] = [{"value": v} for v in req.accept]
    return {
        "version": "1.0",
        "context": {"distributionDomainName": "d111111abcdef8.cloudfront.net", "distributionId": "EDFDVBD6EXAMPLE",
                    "eventType": "viewer-request", "requestId": "EXAMPLE"},
        "viewer": {"ip": "198.51.100.11"},
        "request": {"method": "GET", "uri": req.uri, "querystring": querystring_event(req.query),
                    "headers": headers, "cookies": {}},
    }


def python_outcome(strategy: Strategy, req: Req) -> dict[str, Any]:
    # several Accept lines are one comma-separated list (RFC 9110 section 5.3)
    headers = {} if req.accept is None else {"accept": ", ".join(req.accept)}
    try:
        kr = strategy.apply("GET", req.uri, req.query, headers)
    except BadRequest:
        return {"status": 400}
    assert kr.origin_uri == kr.cache_key  # canonical mode: the key is also what the origin is asked for
    return {"uri": kr.cache_key, "querystring": {}}


def js_outcome(out: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    if "statusCode" in out:  # a generated response
        body = json.loads(out["body"]["data"])
        assert out["body"]["encoding"] == "text" and body["error"] == "bad_request", out
        assert out["headers"]["content-type"]["value"] == "application/json", out
        return {"status": out["statusCode"]}
    request = event["request"]
    assert out["method"] == request["method"] and out["headers"] == request["headers"], out
    assert out["uri"].startswith("/"), out  # CloudFront refuses a uri that does not start with '/'
    return {"uri": out["uri"], "querystring": out["querystring"]}


# how clients spell things
@st.composite
def cased(draw: st.DrawFn, words: st.SearchStrategy[str]) -> str:
    word = draw(words)
    how = draw(st.sampled_from(["keep", "keep", "upper", "title", "mixed"]))
    if how == "upper":
        return word.upper()
    if how == "title":
        return word.title()
    if how == "mixed":
        flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
        return "".join(c.upper() if f else c.lower() for c, f in zip(word, flips, strict=True))
    return word


RAW_NAME = string.ascii_letters + string.digits + "-._~!$'()*,;:@/?"  # may stay unencoded in a query name
RAW_VALUE = RAW_NAME + "="


@st.composite
def spelled(draw: st.DrawFn, text: str, raw_ok: str) -> str:
    """One wire spelling of ``text``: some characters percent-encoded (either hex case), spaces as '+' or
    %20, characters that cannot appear raw always encoded (non-ASCII as its UTF-8 bytes)."""
    out = []
    for c in text:
        if c == " ":
            out.append(draw(st.sampled_from(["+", "%20"])))
        elif c not in raw_ok or draw(st.integers(0, 7)) == 0:
            upper = draw(st.booleans())
            out.append("".join(f"%{b:02X}" if upper else f"%{b:02x}" for b in c.encode()))
        else:
            out.append(c)
    return "".join(out)


WS = ["", "", "", " ", "  ", "\t", "\x0b", "\x1c", "\n"]
TRACKING = ["utm_source", "utm_medium", "utm_campaign", "utm_", "UTM_Source", "fbclid", "gclid", "dclid",
            "msclkid", "mc_cid", "mc_eid", "_ga", "v", "cb", "_", "t"]
JUNK_NAMES = ["", "x", "ww", "widths", "w h", "wid th", "0", "1", "10", "__proto__", "constructor",
              "hasOwnProperty", "toString", "valueOf", "é", "w\u200a"]
name_texts = st.one_of(
    cased(st.sampled_from(sorted(PARAM_ALIASES))), cased(st.sampled_from(sorted(PARAM_ALIASES))),
    cased(st.sampled_from(sorted(PARAM_ALIASES))), st.sampled_from(TRACKING), st.sampled_from(JUNK_NAMES),
    st.text(alphabet=string.printable, max_size=6),
)
WORDS = ["auto", "jpg", "jpeg", "png", "webp", "avif", "gif", "web p", "cover", "contain", "inside", "fill",
         "stretch", "centre", "center", "attention", "smart", "north", "ffffff", "#FFF000", "#abcdef",
         "##abcdef", "ff00zz", "abc", "fff", "thumb", "card", "pdp", "zoom", "hero", "é", "\u00a0640"]
numbers = st.one_of(
    st.integers(0, 2500).map(str), st.integers(0, 120).map(str), st.integers(-10**6, 10**40).map(str),
    st.sampled_from(["0", "00", "0640", "640.0", "6.4e2", "1e3", "0x280", "+640", "-0", "-1", "1_000", "999999",
                     "1000000", "100000", "100001", "101", "NaN", "Infinity", "\u0661\u0662", "6 40"]),
)
DPRS = ["1", "1.0", "1.5", "2", "2.", ".5", "3", "3.000", "2.25", "2.5", "1.125", "1.1234", "10", "99", "100",
        "0.5", "nan", "inf", "1e1", "-2", "2,5", "02"]
value_texts = st.one_of(numbers, numbers, st.sampled_from(DPRS), cased(st.sampled_from(WORDS)),
                        cased(st.sampled_from(WORDS)), st.just(""), st.text(alphabet=string.printable, max_size=8))


@st.composite
def padded(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> str:
    return draw(st.sampled_from(WS)) + draw(texts) + draw(st.sampled_from(WS))


@st.composite
def queries(draw: st.DrawFn) -> str:
    segments: list[str] = []
    names: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["pair"] * 6 + ["repeat"] * 2 + ["bare", "empty", "odd"]))
        if kind == "empty":
            segments.append("")
            continue
        if kind == "odd":
            segments.append(draw(st.sampled_from(["=", "==", "=640", "%", "%zz", "%4", "&", "w=%", "w=%2", "+"])))
            continue
        if kind == "repeat" and names:
            name = draw(st.sampled_from(names))
        else:
            name = draw(spelled(draw(padded(name_texts)), RAW_NAME))
            names.append(name)
        if kind == "bare":
            segments.append(name)
        else:
            segments.append(name + "=" + draw(spelled(draw(padded(value_texts)), RAW_VALUE)))
    return "&".join(segments)


KEY_SEGMENTS = ["images", "images", "sku-1.jpg", "sku-1.jpg", "SKU-1.JPG", "a.png", "x", "a%20b.jpg", "%2e%2e",
                "%2F", "a=b.jpg", "%00", "%1f", "sku-0001-2.webp", "Product_Shots", "~x"]
BAD_KEY_SEGMENTS = ["..", ".", "", "c:x.jpg", "C:"]
OP_NAMES = ["w", "h", "fit", "g", "bg", "q", "f", "preset", "W", "F", "dpr", "width", "x", ""]


@st.composite
def valid_ops(draw: st.DrawFn) -> str:
    """A correct ops segment, in any order, some values re-cased or re-spelled."""
    items = [f"w={draw(st.integers(0, 3000))}", f"h={draw(st.integers(0, 3000))}",
             "fit=" + draw(cased(st.sampled_from(["cover", "contain", "inside", "fill"]))),
             f"q={draw(st.integers(1, 100))}", "f=" + draw(cased(st.sampled_from(["jpeg", "jpg", "png", "webp", "avif"])))]
    if draw(st.booleans()):
        items.append("g=" + draw(st.sampled_from(["centre", "center", "attention", "smart"])))
    if draw(st.booleans()):
        items.append("bg=" + draw(st.sampled_from(["ffffff", "000000", "%23a0b1c2", "A0B1C2"])))
    if draw(st.integers(0, 4)) == 0:
        items = [draw(st.sampled_from(["preset=thumb", "preset=ZOOM", "preset=hero"]))] + items[:2]
    return ",".join(draw(st.permutations(items)))


@st.composite
def any_ops(draw: st.DrawFn) -> str:
    items = draw(st.lists(st.tuples(st.sampled_from(OP_NAMES), padded(value_texts)), max_size=7))
    return ",".join(f"{n}={draw(spelled(v, RAW_VALUE.replace(',', '').replace('/', '')))}" for n, v in items)


@st.composite
def uris(draw: st.DrawFn) -> str:
    segments = draw(st.lists(cased(st.sampled_from(KEY_SEGMENTS)), min_size=1, max_size=4))
    if draw(st.integers(0, 7)) == 0:  # a malformed key now and then: traversal, empty segment, drive letter
        segments.insert(draw(st.integers(0, len(segments))), draw(st.sampled_from(BAD_KEY_SEGMENTS)))
    key = "/".join(segments)
    if draw(st.integers(0, 30)) == 0:
        key = "k" * draw(st.sampled_from([1023, 1024, 1025]))
    lead = draw(st.sampled_from(["/"] * 15 + ["//"]))  # CloudFront's uri always starts with '/'
    shape = draw(st.sampled_from(["friendly"] * 5 + ["valid_ops"] * 3 + ["any_ops"] * 2))
    if shape == "friendly":
        return lead + key
    return lead + key + "/" + draw(valid_ops() if shape == "valid_ops" else any_ops())


MEDIA = ["image/avif", "image/avif", "image/webp", "image/webp", "image/png", "image/jpeg", "image/*", "*/*",
         "text/html", "application/xhtml+xml", "image/avif-sequence", "image/webp2", "image/apng", "image/svg+xml",
         "image", "avif", "image/ avif", ""]
QVALUES = ["0", "0", "0.", "0.0", "0.00", "0.000", "0.0000", "1", "1", "1.", "1.0", "1.000", "1.0000", "0.5", "0.5",
           "0.8", "0.001", "0.009", "0.999", "1.001", "2", "-0", "-1", "01", "abc", "", "inf", "nan", "1e0",
           "1e-3", ".5", "0.5000", '"0.5"', "0x1", "\u0660"]
BROWSER_ACCEPTS = [
    "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",  # Chrome
    "image/avif,image/webp,*/*",                                          # Firefox
    "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,"
    "image/*;q=0.8,*/*;q=0.5",                                            # Safari 17
    "image/webp,*/*", "*/*", "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5",
    "image/avif;q=0,image/webp", "image/avif;q=0.000, image/webp;q=0.5, */*;q=0.1",
]


@st.composite
def media_ranges(draw: st.DrawFn) -> str:
    ows = st.sampled_from(["", "", "", " ", "  ", "\t"])
    out = draw(ows) + draw(cased(st.sampled_from(MEDIA)))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["q", "q", "q", "Q", "level", "charset"]))
        eq = draw(st.sampled_from(["="] * 6 + [" =", "= ", ""]))
        out += draw(ows) + ";" + draw(ows) + name + eq + draw(st.sampled_from(QVALUES))
    return out + draw(ows)


accept_values = st.one_of(st.lists(media_ranges(), max_size=5).map(",".join),
                          st.lists(media_ranges(), max_size=5).map(",".join), st.sampled_from(BROWSER_ACCEPTS))
accepts = st.one_of(st.none(), st.lists(accept_values, min_size=1, max_size=3).map(tuple),
                    st.lists(accept_values, min_size=1, max_size=1).map(tuple))
viewer_requests = st.builds(Req, uris(), queries(), accepts)


# ---------------------------------------------------------------- the properties
def check(node: NodeFunctions, fid: str, strategy: Strategy, req: Req) -> dict[str, Any]:
    event = event_of(req)
    want = python_outcome(strategy, req)
    got = js_outcome(node.run(fid, event), event)
    assert got == want, f"{fid}: {req!r}"
    return want


def _tally(name: str, outcome: dict[str, Any]) -> None:
    if "status" in outcome:
        OUTCOMES[name, "refused"] += 1
        return
    OUTCOMES[name, "served"] += 1
    OUTCOMES[name, "f=" + outcome["uri"].rsplit(",f=", 1)[-1]] += 1


@pytest.mark.parametrize("name", [*EXPORTED, USER])
@settings(max_examples=EXAMPLES_PER_STRATEGY, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=viewer_requests)
# the bug this test was written for, and its neighbours: a zero weight is "not acceptable" (RFC 9110 12.4.2)
@example(req=Req("/images/sku-1.jpg", "w=500", ("image/avif;q=0,image/webp",)))
@example(req=Req("/images/sku-1.jpg", "width=500&format=auto", ("image/avif;q=0.000, image/webp;q=0.5",)))
@example(req=Req("/images/sku-1.jpg", "w=500", ("image/avif;Q=0,image/webp;q=1",)))
@example(req=Req("/images/sku-1.jpg", "w=500", ("image/avif-sequence,image/webpx",)))
@example(req=Req("/images/sku-1.jpg", "w=500", ("image/png", "image/avif;q=0.5")))
@example(req=Req("/images/sku-1.jpg/w=640,h=0,fit=cover,q=80,f=avif", "", ("image/avif;q=0",)))
# dpr on a free width (w=0) is never bounded by breakpoints: over 100,000 px it is refused or ignored
@example(req=Req("/images/sku-1.jpg", "w=0&h=50000&dpr=3", None))
def test_exported_function_equals_strategy(functions: dict[str, Strategy], node: NodeFunctions, name: str,
                                           req: Req) -> None:
    _tally(name, check(node, name, functions[name], req))


@st.composite
def toml_declarations(draw: st.DrawFn) -> str:
    """A user's canonical-mode TOML file, any valid combination of the knobs."""
    breakpoints = sorted(draw(st.sets(st.integers(1, 100_000), max_size=6)))
    buckets = sorted(draw(st.sets(st.integers(1, 100), max_size=4)))
    formats = draw(st.lists(st.sampled_from(FORMATS), min_size=1, max_size=4, unique=True))
    max_dpr = draw(st.integers(1000, 10_000).map(lambda m: m / 1000))
    lines = ['mode = "canonical"', f'path_case = "{draw(st.sampled_from(["keep", "lower"]))}"', "[canonical]",
             f"breakpoints = {json.dumps(breakpoints)}", f"quality_buckets = {json.dumps(buckets)}",
             f"max_dpr = {max_dpr!r}", f"formats = {json.dumps(formats)}",
             f'format_param = "{draw(st.sampled_from(["honor", "ignore"]))}"',
             f'on_invalid = "{draw(st.sampled_from(["reject", "fallback"]))}"']
    return "\n".join(lines) + "\n"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(declaration=toml_declarations(), reqs=st.lists(viewer_requests, min_size=15, max_size=15))
def test_exported_function_equals_strategy_for_any_toml(node: NodeFunctions, toml_dir: Path, declaration: str,
                                                         reqs: list[Req]) -> None:
    name = "gen_" + hashlib.sha256(declaration.encode()).hexdigest()[:16]
    path = toml_dir / f"{name}.toml"  # one file per declaration: get_strategy caches by path
    path.write_text(declaration)
    strategy = get_strategy(path)
    node.load(name, export_cf_function(strategy))
    for req in reqs:
        check(node, name, strategy, req)


def test_generated_requests_reach_every_outcome() -> None:
    # runs after the property test (file order): each strategy served and refused, and negotiated formats
    ran = {name for name, _ in OUTCOMES}
    if not ran:
        pytest.skip("the property test did not run in this session")
    for name in ran:
        assert OUTCOMES[name, "served"] > 0 and OUTCOMES[name, "refused"] > 0, (name, OUTCOMES)
    for fmt in ("avif", "webp", "jpeg"):
        assert any(OUTCOMES[name, "f=" + fmt] for name in ran), (fmt, OUTCOMES)
    if USER in ran:
        assert OUTCOMES[USER, "f=png"] > 0, OUTCOMES  # its formats end in png: nothing acceptable → png


def test_fallback_ignores_a_dpr_that_overflows_a_free_width() -> None:
    # "fallback": an invalid parameter is dropped, never a 400; breakpoints do not bound h when w = 0
    for name in ("aggressive", "breakpoints"):
        kr = get_strategy(name).apply("GET", "/images/a.jpg", "w=0&h=50000&dpr=3", {})
        assert kr.cache_key.startswith("/images/a.jpg/w=0,h=50000,fit=cover,"), (name, kr)


# ---------------------------------------------------------------- what CloudFront accepts as a function
def test_every_builtin_export_fits_cloudfront_and_evaluates_no_code() -> None:
    assert EXPORTED and QUERY_MODE and set(EXPORTED) | set(QUERY_MODE) <= set(list_strategies())
    for name in EXPORTED:
        code = export_cf_function(get_strategy(name))
        size = len(code.encode())
        # CloudFront Functions quotas: function size 10 KB ("Quotas on CloudFront Functions")
        assert size < CF_FUNCTION_MAX_BYTES == 10_240, (name, size)
        # "Restricted features: dynamic code evaluation": eval() and the Function constructor throw
        assert "Function(" not in code and "eval(" not in code, name
        assert "function handler(event)" in code


@pytest.mark.parametrize("name", QUERY_MODE)
def test_query_mode_builtins_are_not_exported(name: str) -> None:
    # A query-mode key is the raw query string; the event has already grouped repeated names and dropped
    # empty segments and the difference between "a" and "a=", so no function can rebuild that key exactly.
    with pytest.raises(ConfigError, match="query-mode"):
        export_cf_function(get_strategy(name))
