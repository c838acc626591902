"""Deploy a strategy's CloudFront Function safely: create or update it, test it on worst-case requests,
gate on what CloudFront measured, and publish it only when asked and only when the gate passed.

The steps, as the CloudFront API has them (API Reference, "CreateFunction", "UpdateFunction",
"DescribeFunction", "TestFunction", "PublishFunction"; Developer Guide, "Test functions",
test-function.html, and "Restrictions on CloudFront Functions" → "Compute utilization",
cloudfront-function-restrictions.html):

1. ``DescribeFunction`` (stage ``DEVELOPMENT``) tells whether the function exists and gives its ETag;
2. ``CreateFunction`` when it does not, else ``UpdateFunction`` with ``IfMatch`` = that ETag (a function
   changed by someone else in between is refused, not overwritten); ``FunctionConfig`` is the runtime
   ``cloudfront-js-2.0`` and a comment naming the strategy; the code is
   :func:`~edgeproof.analytics.strategies.export_cf_function`'s, byte for byte;
3. ``TestFunction`` (stage ``DEVELOPMENT``) on every request of :func:`worst_case_requests`, each as the
   ``cloudfront-js-2.0`` viewer-request event CloudFront builds ("CloudFront Functions event structure",
   functions-event-structure.html);
4. :func:`gate`: every answer must carry no ``FunctionErrorMessage`` and a ``ComputeUtilization`` (the
   run time as a percentage of the maximum CloudFront allows; at 100 the function is stopped) of at most
   ``max_utilization`` (70 by default: headroom for the busier edge hosts a test does not see);
5. ``PublishFunction`` (DEVELOPMENT → LIVE) only with ``publish=True`` and a passed gate.

Every request is checked before it is sent, and in a dry run instead of being sent, by
:func:`validate_call`: botocore's own parameter validation against the CloudFront service model's input
shape (required members, types, minimum lengths), plus what botocore leaves to the server and the same
model states (maximum lengths, enums, patterns: a 64-character function name, a 40 KB event).

AWS errors become one :class:`~edgeproof.errors.AwsError` line each (exit 2) at one boundary
(:func:`send_call`); a failed gate is the command's verdict (exit 1), not an error. The client is
:func:`edgeproof.s3.client` (``"cloudfront"``): the one factory, with its retries, timeouts and
``AWS_ENDPOINT_URL`` handling. botocore is imported lazily.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import count, cycle
from typing import Any

from edgeproof.analytics.strategies import TRACKING_PARAMS, Strategy, export_cf_function

from edgeproof.canonical import DEFAULT_PRESETS, PARAM_ALIASES
from edgeproof.cloudfront import MAX_URL_LENGTH
from edgeproof.errors import AwsError, BadRequest, UsageError

__all__ = [
    "DEFAULT_MAX_UTILIZATION",
    "RUNTIME",
    "STAGE",
    "Call",
    "check_max_utilization",
    "DeployResult",
    "GateVerdict",
    "RequestOutcome",
    "WorstCaseRequest",
    "deploy",
    "dry_run_calls",
    "format_call",
    "gate",
    "outcome_of",
    "send_call",
    "validate_call",
    "viewer_request_event",
    "worst_case_requests",
]

RUNTIME = "cloudfront-js-2.0"
#: the stage a function is created, updated and tested in; PublishFunction copies it to LIVE
STAGE = "DEVELOPMENT"
#: the gate's default: highest ComputeUtilization (percent) a worst-case request may reach
DEFAULT_MAX_UTILIZATION = 70.0
#: the dry run's stand-in for the ETag a real run reads from DescribeFunction / CreateFunction / UpdateFunction
ETAG_PLACEHOLDER = "<ETag>"
#: the long Accept header of the worst-case set: many mixed-case media ranges with weights (bytes)
LONG_ACCEPT_BYTES = 2048
#: the Accept classes the replay knows (edgeproof.analytics.replay.ACCEPT_BY_CLASS), named
_ACCEPT_CLASS_NAMES = ("jpeg/png only", "webp", "avif+webp")
_SOURCE = "images/Sku-1.JPG"
#: the longest source key (edgeproof.canonical.validate_source_key)
_MAX_SOURCE_KEY = 1024
#: CloudFront's own error codes that say what to do, in words
_CODE_REASONS = {
    "FunctionAlreadyExists": "a function of that name already exists",
    "FunctionSizeLimitExceeded": "the code is over CloudFront's function size limit",
    "TooManyFunctions": "the account is at its CloudFront Functions quota",
    "PreconditionFailed": "the function changed since it was read (ETag mismatch): run the deploy again",
    "InvalidIfMatchVersion": "the function changed since it was read (ETag mismatch): run the deploy again",
    "TestFunctionFailed": "CloudFront could not run the test",
    "UnsupportedOperation": "CloudFront does not support this operation here",
    "AccessDenied": "access denied (the credentials may not call this CloudFront operation)",
}


# -- the worst-case requests -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorstCaseRequest:
    """One viewer request the function is tested on."""

    label: str
    uri: str                 # the path as received (percent-encoded)
    query: str               # the raw query string, without '?'
    accept: str | None       # the Accept header; None: no Accept header
    note: str = ""           # how the request was bounded (URL limit, TestFunction's event size)

    @property
    def url_bytes(self) -> int:
        """Length of the request-target (path and query), the quantity CloudFront's URL limit bounds."""
        return len((self.uri + ("?" + self.query if self.query else "")).encode())

    def event(self) -> dict[str, Any]:
        return viewer_request_event(self.uri, self.query, self.accept)

    def event_object(self) -> bytes:
        """The event as TestFunction's ``EventObject``: compact JSON."""
        return json.dumps(self.event(), separators=(",", ":")).encode()

    def expected(self, strategy: Strategy) -> str:
        """What the strategy gives for this request: the canonical request the function should set, or 400."""
        headers = {} if self.accept is None else {"accept": self.accept}
        try:
            return strategy.apply("GET", self.uri, self.query, headers).cache_key
        except BadRequest:
            return "400"


def querystring_object(query: str) -> dict[str, dict[str, Any]]:
    """``request.querystring`` as CloudFront builds it: split at ``&`` (empty segments skipped) and the
    first ``=`` (none: value ""); one field per name in first-seen order; a repeated name keeps its first
    value in ``value`` and all of them in ``multiValue``; nothing decoded."""
    grouped: dict[str, list[str]] = {}
    for segment in query.split("&"):
        if segment:
            name, _, value = segment.partition("=")
            grouped.setdefault(name, []).append(value)
    out: dict[str, dict[str, Any]] = {}
    for name, values in grouped.items():
        out[name] = {"value": values[0]}
        if len(values) > 1:
            out[name]["multiValue"] = [{"value": v} for v in values]
    return out


def viewer_request_event(uri: str, query: str, accept: str | None) -> dict[str, Any]:
    """The ``cloudfront-js-2.0`` viewer-request event of a GET (functions-event-structure.html)."""
    headers: dict[str, Any] = {"host": {"value": "d111111abcdef8.cloudfront.net"},
                               "user-agent": {"value": "Mozilla/5.0 (edgeproof worst-case test)"}}
    if accept is not None:
        headers["accept"] = {"value": accept}
    return {
        "version": "1.0",
        "context": {"distributionDomainName": "d111111abcdef8.cloudfront.net", "distributionId": "EDFDVBD6EXAMPLE",
                    "eventType": "viewer-request", "requestId": "edgeproof-worst-case"},
        "viewer": {"ip": "198.51.100.11"},
        "request": {"method": "GET", "uri": uri, "querystring": querystring_object(query), "headers": headers,
                    "cookies": {}},
    }


def _mixed(text: str) -> str:
    """``width`` → ``WiDtH``: every other letter upper-case (CloudFront passes names as received)."""
    return "".join(c.upper() if i % 2 == 0 else c.lower() for i, c in enumerate(text))


def _pct(text: str) -> str:
    """Every character percent-encoded, the hex digits in alternating case (``%57%69``…): the slowest
    spelling for the function's decoder, one ``%XX`` per character."""
    return "".join(f"%{ord(c):02X}" if i % 2 == 0 else f"%{ord(c):02x}" for i, c in enumerate(text))


#: one valid value per op, mixed case where the op lower-cases it
_VALID = {"w": "600", "h": "400", "fit": "Contain", "q": "85", "f": "AUTO", "g": "Attention", "bg": "#FF0000",
          "preset": _mixed(next(iter(DEFAULT_PRESETS))), "dpr": "2.5"}
#: one invalid value per op (a fallback strategy tries each op alone, then drops it)
_INVALID = {"w": "-1", "h": "abc", "fit": "Stretchy", "q": "1000", "f": "GIF", "g": "North", "bg": "zzzzzz",
            "preset": "nope", "dpr": "1e9"}


def _tracking_names() -> list[str]:
    names: list[str] = []
    for name in TRACKING_PARAMS:
        if name.endswith("*"):
            names.extend(name[:-1] + suffix for suffix in ("source", "medium", "campaign", "term", "content", "id"))
        else:
            names.append(name)
    return names


def _long_accept() -> str:
    ranges = ["Image/AVIF;q=0.9", "image/WEBP;Q=0.8", "IMAGE/apng;q=0.7", "image/svg+xml;q=0.6", "image/*;q=0.5",
              "*/*;q=0.1", "image/avif-sequence;q=0", "image/jxl;q=0.000", "image/heic;q=abc", "text/html;level=1"]
    out, i = [], 0
    while len(", ".join(out)) < LONG_ACCEPT_BYTES:
        out.append(ranges[i % len(ranges)])
        i += 1
    return ", ".join(out)[:LONG_ACCEPT_BYTES].rstrip(", ;")


def _all_params_pairs(values: Mapping[str, str]) -> list[str]:
    """Every alias spelling once, the names in mixed case (some padded with ``+``: decoded to spaces)."""
    pairs = []
    for i, (name, op) in enumerate(PARAM_ALIASES.items()):
        spelled = _mixed(name) if i % 3 else f"+{_mixed(name)}+"
        pairs.append(f"{spelled}={values[op].replace('#', '%23')}")  # a raw '#' would end the URL
    return pairs


def _bounded(label: str, uri: str, pairs: Sequence[str], accept: str | None,
             fill: Iterator[str] | None, event_limit: int) -> WorstCaseRequest:
    """A request of ``pairs`` then as many ``fill`` pairs as CloudFront's URL limit takes, cut back (when
    needed) to the most that fit in TestFunction's event."""
    query = "&".join(pairs)
    budget = MAX_URL_LENGTH - len(uri.encode()) - 1
    if len(query.encode()) > budget:
        raise ValueError(f"{label}: the fixed part is over the URL limit")  # a bug in this module
    extra: list[str] = []
    if fill is not None:
        used = len(query.encode())
        for pair in fill:
            step = len(pair.encode()) + (1 if used else 0)
            if used + step > budget:
                break
            extra.append(pair)
            used += step
    note = f"URL {MAX_URL_LENGTH:,} bytes at most (CloudFront's URL limit)" if fill is not None else ""

    def build(n: int) -> WorstCaseRequest:
        return WorstCaseRequest(label, uri, "&".join([*pairs, *extra[:n]]), accept, note)

    request = build(len(extra))
    if len(request.event_object()) > event_limit:  # the most fill pairs whose event still fits
        low, high = 0, len(extra)
        while low < high:
            mid = (low + high + 1) // 2
            if len(build(mid).event_object()) <= event_limit:
                low = mid
            else:
                high = mid - 1
        note = f"cut to the {event_limit:,}-byte event TestFunction takes ({len(pairs) + low:,} parameters)"
        request = WorstCaseRequest(label, uri, build(low).query, accept, note)
    return request


def worst_case_requests(strategy: Strategy) -> list[WorstCaseRequest]:
    """The requests a deploy tests the function on: a typical request under every Accept class the
    project knows (the replay's inferred classes and no Accept at all) and a 2 KB mixed-case Accept,
    then the heavy shapes under that long Accept: every parameter spelling in mixed case, every
    tracking parameter, the longest percent-encoded query within CloudFront's URL limit, the most
    parameters, one name repeated, invalid values, the longest source key, a canonical-form path. A
    shape bigger than TestFunction's event is cut to the most that fits (its ``note`` says so)."""
    from edgeproof.analytics.replay import ACCEPT_BY_CLASS  # the one list of Accept classes

    limit = _event_limit()
    long_accept = _long_accept()
    path = "/" + _SOURCE
    requests = [WorstCaseRequest(f"typical request, Accept {name}", path, "width=600&format=auto", accept)
                for name, accept in zip(_ACCEPT_CLASS_NAMES, ACCEPT_BY_CLASS, strict=True)]
    requests.append(WorstCaseRequest("typical request, no Accept header", path, "width=600&format=auto", None))
    requests.append(WorstCaseRequest(f"typical request, {LONG_ACCEPT_BYTES:,}-byte mixed-case Accept", path,
                                     "width=600&format=auto", long_accept))
    tracking = _tracking_names()
    every = _all_params_pairs(_VALID)
    requests.append(_bounded("every parameter spelling, mixed case", path, every, long_accept, None, limit))
    requests.append(_bounded(
        "every tracking parameter, mixed case", path,
        ["width=600", "format=auto", *(f"{_mixed(n)}={_mixed('x' * 40 + n)}" for n in tracking)], long_accept,
        None, limit))
    encoded = [f"{_pct(name)}={_pct(_VALID[op])}" for name, op in PARAM_ALIASES.items()]
    encoded += [f"{_pct(n)}={_pct('Campaign-' + n)}" for n in tracking]
    requests.append(_bounded("longest query, every byte percent-encoded", path, [], long_accept, cycle(encoded),
                             limit))
    requests.append(_bounded("most parameters (distinct short names)", path, [], long_accept,
                             (f"{_base36(i)}=1" for i in count()), limit))
    requests.append(_bounded("one parameter name repeated (multiValue)", path, [], long_accept,
                             cycle(["Width=640", "width=%36%34%30"]), limit))
    requests.append(_bounded("invalid value for every parameter", path, _all_params_pairs(_INVALID), long_accept,
                             cycle(f"{_mixed(n)}={_INVALID[op]}" for n, op in PARAM_ALIASES.items()), limit))
    key = _long_source_key()
    requests.append(_bounded(f"longest source key ({len(key):,} bytes), every parameter", "/" + key, every,
                             long_accept, cycle(encoded), limit))
    requests.append(_bounded("canonical-form path with a long key", f"/{key}/w=640,h=480,fit=Contain,bg=FF0000,"
                             "q=85,f=WEBP", [], long_accept, cycle(f"{_mixed(n)}=1" for n in tracking), limit))
    return requests


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return "p" + out


def _long_source_key() -> str:
    """A valid source key of the longest length, in many short mixed-case segments."""
    tail = "/Sku-1.JPG"
    segments, size = [], len(tail)
    for i in count():
        segment = ("Ab", "cD", "Ef")[i % 3]
        if size + len(segment) + 1 > _MAX_SOURCE_KEY:
            break
        segments.append(segment)
        size += len(segment) + 1
    return "/".join(segments) + tail


# -- request shapes: the service model and botocore's validation -----------------------------------


@cache
def _service_model() -> Any:
    """CloudFront's service model as botocore ships it (no client, no credentials, no network)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("cloudfront")


def _event_limit() -> int:
    """TestFunction's largest ``EventObject`` in bytes, as the service model states it."""
    shape = _service_model().operation_model("TestFunction").input_shape.members["EventObject"]
    return int(shape.metadata["max"])


@dataclass(frozen=True, slots=True)
class Call:
    """One CloudFront API request: the operation's name in the API (``CreateFunction``) and its parameters."""

    operation: str
    params: dict[str, Any]
    when: str = ""   # a dry run's note on when the call is made

    @property
    def method(self) -> str:
        """The boto3 client method (``create_function``)."""
        from botocore import xform_name

        return str(xform_name(self.operation))


def _model_problems(value: Any, shape: Any, where: str) -> list[str]:
    """What the model states and botocore does not check client-side: max lengths, enums, patterns."""
    problems: list[str] = []
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                problems += _model_problems(value[name], member, f"{where}.{name}" if where else name)
    elif kind == "list" and isinstance(value, list | tuple):
        for i, item in enumerate(value):
            problems += _model_problems(item, shape.member, f"{where}[{i}]")
    elif kind == "string" and isinstance(value, str):
        top = shape.metadata.get("max")
        if top is not None and len(value) > top:
            problems.append(f"{where} is {len(value):,} characters, over the {top:,} the API takes")
        if shape.enum and value not in shape.enum:
            problems.append(f"{where} {value!r} is not one of {', '.join(shape.enum)}")
        pattern = shape.metadata.get("pattern")
        if pattern and re.fullmatch(pattern, value) is None:
            problems.append(f"{where} {value!r} does not match {pattern}")
    elif kind == "blob" and isinstance(value, bytes | bytearray):
        top = shape.metadata.get("max")
        if top is not None and len(value) > top:
            problems.append(f"{where} is {len(value):,} bytes, over the {top:,} the API takes")
    return problems


def validate_call(call: Call) -> None:
    """Check ``call`` against the CloudFront model's input shape: botocore's own parameter validation
    (``botocore.validate.validate_parameters``) and the limits it leaves to the server. A bad shape is a
    :class:`~edgeproof.errors.UsageError` naming the operation and each problem."""
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    shape = _service_model().operation_model(call.operation).input_shape
    problems: list[str] = []
    try:
        validate_parameters(call.params, shape)
    except ParamValidationError as err:
        problems += [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
    problems += _model_problems(call.params, shape, "")
    if problems:
        raise UsageError(f"CloudFront {call.operation}: {'; '.join(problems)}")


def _comment(strategy: Strategy) -> str:
    comment = f"edgeproof strategy {strategy.name}: {strategy.config.description}"
    # the model states no maximum for the comment; 128 characters, as CloudFront's other comments, is safe
    top = _service_model().shape_for("FunctionConfig").members["Comment"].metadata.get("max", 128)
    return comment if len(comment) <= top else comment[: top - 1] + "…"


def _config(strategy: Strategy) -> dict[str, str]:
    return {"Comment": _comment(strategy), "Runtime": RUNTIME}


def describe_call(name: str) -> Call:
    return Call("DescribeFunction", {"Name": name, "Stage": STAGE})


def create_call(name: str, strategy: Strategy, code: str) -> Call:
    return Call("CreateFunction", {"Name": name, "FunctionConfig": _config(strategy), "FunctionCode": code.encode()})


def update_call(name: str, etag: str, strategy: Strategy, code: str) -> Call:
    return Call("UpdateFunction", {"Name": name, "IfMatch": etag, "FunctionConfig": _config(strategy),
                                   "FunctionCode": code.encode()})


def function_test_call(name: str, etag: str, request: WorstCaseRequest) -> Call:
    return Call("TestFunction", {"Name": name, "IfMatch": etag, "Stage": STAGE, "EventObject": request.event_object()})


def publish_call(name: str, etag: str) -> Call:
    return Call("PublishFunction", {"Name": name, "IfMatch": etag})


def dry_run_calls(strategy: Strategy, name: str, *, publish: bool) -> list[Call]:
    """Every request a deploy would send, in order, each validated (:func:`validate_call`); no AWS call."""
    code = export_cf_function(strategy)
    calls = [
        describe_call(name),
        _when(create_call(name, strategy, code), "when DescribeFunction answers NoSuchFunctionExists"),
        _when(update_call(name, ETAG_PLACEHOLDER, strategy, code), "when the function exists (IfMatch: its ETag)"),
    ]
    requests = worst_case_requests(strategy)
    calls += [_when(function_test_call(name, ETAG_PLACEHOLDER, r), f"request {i}/{len(requests)}: {r.label}")
              for i, r in enumerate(requests, 1)]
    if publish:
        calls.append(_when(publish_call(name, ETAG_PLACEHOLDER), "only when every test passes the gate"))
    for call in calls:
        validate_call(call)
    return calls


def _when(call: Call, when: str) -> Call:
    return Call(call.operation, call.params, when)


def _shown(value: Any) -> Any:
    """Parameters for printing: bytes abbreviated (size and first characters)."""
    if isinstance(value, bytes | bytearray):
        text = bytes(value[:60]).decode("utf-8", "replace").replace("\n", "\\n")
        return f"<{len(value):,} bytes: {text}…>"
    if isinstance(value, Mapping):
        return {k: _shown(v) for k, v in value.items()}
    return value


def format_call(call: Call) -> str:
    """One line: ``OperationName {parameters}`` with blobs abbreviated."""
    return f"{call.operation} {json.dumps(_shown(call.params), ensure_ascii=False)}"


# -- the gate --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What TestFunction answered for one request (its ``TestResult``)."""

    request: WorstCaseRequest
    utilization: float | None        # ComputeUtilization, percent; None when absent or unreadable
    error: str | None                # FunctionErrorMessage; None when empty
    output: str | None = None        # FunctionOutput: the event the function returned
    logs: tuple[str, ...] = ()


def outcome_of(request: WorstCaseRequest, response: Mapping[str, Any]) -> RequestOutcome:
    """A TestFunction response (``{"TestResult": {...}}``, API_TestResult.html) → :class:`RequestOutcome`."""
    result = response.get("TestResult") or {}
    raw = result.get("ComputeUtilization")
    try:
        utilization: float | None = float(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        utilization = None
    error = result.get("FunctionErrorMessage") or None
    return RequestOutcome(request, utilization, error, result.get("FunctionOutput"),
                       tuple(result.get("FunctionExecutionLogs") or ()))


@dataclass(frozen=True, slots=True)
class GateVerdict:
    passed: bool
    max_utilization: float
    outcomes: tuple[RequestOutcome, ...]
    worst: RequestOutcome | None            # the highest ComputeUtilization
    failures: tuple[str, ...] = ()       # one line per failed request

    @property
    def headline(self) -> str:
        worst = self.worst
        shown = "" if worst is None or worst.utilization is None else \
            f"worst compute utilization {worst.utilization:g}% ({worst.request.label})"
        if self.passed:
            return f"gate passed: {shown}, limit {self.max_utilization:g}%"
        if worst is not None and worst.utilization is not None and worst.utilization > self.max_utilization:
            return (f"gate failed: compute utilization {worst.utilization:g}% > {self.max_utilization:g}% on the "
                    f"worst request: {worst.request.label}")
        return f"gate failed: {self.failures[0] if self.failures else 'no test result'}"


def gate(results: Iterable[tuple[WorstCaseRequest, Mapping[str, Any]]],
         max_utilization: float = DEFAULT_MAX_UTILIZATION) -> GateVerdict:
    """The deploy's verdict on TestFunction's answers: passed when every answer has no
    ``FunctionErrorMessage`` and a ``ComputeUtilization`` of at most ``max_utilization`` percent."""
    outcomes = tuple(outcome_of(request, response) for request, response in results)
    failures: list[str] = []
    for o in outcomes:
        if o.error is not None:
            failures.append(f"{o.request.label}: the function failed: {o.error}")
        elif o.utilization is None:
            failures.append(f"{o.request.label}: TestFunction reported no ComputeUtilization")
        elif o.utilization > max_utilization:
            failures.append(f"{o.request.label}: compute utilization {o.utilization:g}% > {max_utilization:g}%")
    measured = [o for o in outcomes if o.utilization is not None]
    worst = max(measured, key=lambda o: o.utilization or 0.0) if measured else None
    if not outcomes:
        failures.append("no request was tested")
    return GateVerdict(not failures, max_utilization, outcomes, worst, tuple(failures))


# -- the deploy ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeployResult:
    function_name: str
    created: bool                    # CreateFunction (True) or UpdateFunction (False)
    etag: str                        # the DEVELOPMENT stage's ETag after the upload
    code_bytes: int
    verdict: GateVerdict
    published: bool = False
    status: str | None = None        # the function's status after publishing


def _aws_error(err: Exception, call: Call) -> AwsError:
    """A botocore error of ``call`` as one line a user can act on."""
    from botocore.exceptions import ClientError

    from edgeproof.s3 import aws_reason, endpoint_url

    name = call.params.get("Name", "?")
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code, message = str(error.get("Code", "")), " ".join(str(error.get("Message", "")).split())[:200]
        if code == "NoSuchFunctionExists":
            reason = f"no function named {name!r}"
        else:
            reason = _CODE_REASONS.get(code) or aws_reason(err, "cloudfront")
            if message and message != code and code not in _CODE_REASONS:
                reason += f": {message}"
            endpoint = endpoint_url("cloudfront")
            if endpoint and (code.isdigit() or code in ("NotImplemented", "InternalFailure")):
                reason += f" (the endpoint {endpoint} may not implement {call.operation})"
    else:
        reason = aws_reason(err, "cloudfront")
    return AwsError(f"CloudFront {call.operation} of function {name!r} failed: {reason}")


def send_call(client: Any, call: Call, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """Validate and send one call; every botocore error becomes an :class:`AwsError` (the one boundary).
    ``missing_ok``: a NoSuchFunctionExists answer is None (DescribeFunction's "it does not exist")."""
    from botocore.exceptions import BotoCoreError, ClientError

    validate_call(call)
    try:
        response: dict[str, Any] = getattr(client, call.method)(**call.params)
    except ClientError as err:
        if missing_ok and err.response.get("Error", {}).get("Code") == "NoSuchFunctionExists":
            return None
        raise _aws_error(err, call) from err
    except BotoCoreError as err:
        raise _aws_error(err, call) from err
    return response


def check_max_utilization(max_utilization: float) -> None:
    """The gate's limit is a percentage of CloudFront's maximum run time: above 0, at most 100."""
    if not 0 < max_utilization <= 100:
        raise UsageError(f"--max-utilization must be in (0, 100], not {max_utilization:g}")


def deploy(strategy: Strategy, function_name: str, *, publish: bool = False,
           max_utilization: float = DEFAULT_MAX_UTILIZATION, client: Any = None,
           progress: Callable[[str], None] | None = None) -> DeployResult:
    """Upload the strategy's function, test it on :func:`worst_case_requests`, gate, publish if asked.

    ``client``: a boto3 CloudFront client (default: :func:`edgeproof.s3.client` ``("cloudfront")``);
    ``progress`` is told each step as it is done. Raises :class:`AwsError` for an AWS error; a failed
    gate is in the result (``verdict.passed``), and then nothing is published.
    """
    check_max_utilization(max_utilization)
    say = progress or (lambda _line: None)
    code = export_cf_function(strategy)
    requests = worst_case_requests(strategy)
    if client is None:
        from edgeproof.s3 import client as aws_client

        # CloudFront's API is global, signed in us-east-1 (botocore asks for a region with a custom endpoint)
        client = aws_client("cloudfront", region="us-east-1")
    found = send_call(client, describe_call(function_name), missing_ok=True)
    if found is None:
        answer = send_call(client, create_call(function_name, strategy, code))
        created = True
    else:
        answer = send_call(client, update_call(function_name, str(found["ETag"]), strategy, code))
        created = False
    assert answer is not None
    etag = str(answer["ETag"])
    say(f"{'created' if created else 'updated'} function {function_name} ({STAGE}, ETag {etag}) from strategy "
        f"{strategy.name}: {len(code.encode()):,} bytes, {RUNTIME}")
    results = []
    for i, request in enumerate(requests, 1):
        response = send_call(client, function_test_call(function_name, etag, request))
        assert response is not None
        results.append((request, response))
        o = outcome_of(request, response)
        shown = "-" if o.utilization is None else f"{o.utilization:g}%"
        say(f"  test {i:>2}/{len(requests)}  {shown:>5}  {request.label}" + (f"  ERROR: {o.error}" if o.error else ""))
    verdict = gate(results, max_utilization)
    if not verdict.passed or not publish:
        return DeployResult(function_name, created, etag, len(code.encode()), verdict)
    published = send_call(client, publish_call(function_name, etag))
    assert published is not None
    status = published.get("FunctionSummary", {}).get("Status")
    return DeployResult(function_name, created, etag, len(code.encode()), verdict, True, status)
