"""``edgeproof strategies deploy``: the CloudFront Function deploy, against moto's server over HTTP.

What moto 5.2.5 implements of the function API (checked by ``test_what_moto_implements``, so an upgrade
that adds more tells us to test more): CreateFunction, DescribeFunction, GetFunction (and List/Delete).
UpdateFunction answers 500, TestFunction and PublishFunction 404. So:

- end to end against the server, through the CLI: the first deploy creates the function with the
  exported code, runtime and comment (read back with DescribeFunction / GetFunction), then stops at
  TestFunction with one ``edgeproof: error:`` line (exit 2); the second deploy sends UpdateFunction with
  ``If-Match`` = the ETag DescribeFunction gave, and the exported code as its body. What went over the
  wire is read from moto's own request recorder (server side), not from a patched client;
- what moto cannot run: every request shape is checked with botocore's parameter validation against the
  service model (the dry run's calls, and shapes that must be refused), and the gate runs on TestFunction
  answers built from the documented ``TestResult`` shape (API_TestResult.html) — the same ``gate`` the
  deploy calls;
- the worst-case requests run under Node through the exported function (tests/cf_function_harness.js):
  each event is one CloudFront could send, within its URL limit and TestFunction's event limit, and the
  function gives what the strategy gives.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import free_port, moto_server
from edgeproof.analytics.deploy import (
    DEFAULT_MAX_UTILIZATION,
    RUNTIME,
    Call,
    WorstCaseRequest,
    create_call,
    describe_call,
    dry_run_calls,
    function_test_call,
    gate,
    publish_call,
    send_call,
    update_call,
    validate_call,
    worst_case_requests,
)
from edgeproof.analytics.replay import ACCEPT_BY_CLASS
from edgeproof.analytics.strategies import TRACKING_PARAMS, export_cf_function, get_strategy
from edgeproof.analytics.strategies._registry import BUILTIN_ORDER

from edgeproof.cloudfront import MAX_URL_LENGTH
from edgeproof.errors import AwsError, UsageError

EDGEPROOF = Path(sys.executable).with_name("edgeproof")
HARNESS = Path(__file__).with_name("cf_function_harness.js")
CANONICAL = [n for n in BUILTIN_ORDER if get_strategy(n).config.mode == "canonical"]
USER_TOML = """\
name = "user_deploy"
description = "written by tests/test_strategies_deploy.py"
mode = "canonical"
path_case = "lower"

[canonical]
breakpoints = [100, 300, 1000]
max_dpr = 2.5
quality_buckets = [40, 75]
formats = ["webp", "avif", "png"]
format_param = "ignore"
on_invalid = "fallback"
"""


# ---------------------------------------------------------------- moto's server, with its recorder
@pytest.fixture(scope="module")
def cloudfront_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A moto server (CloudFront and the rest) on loopback that records every request it receives."""
    recording = tmp_path_factory.mktemp("moto") / "recording.jsonl"
    with moto_server({"MOTO_ENABLE_RECORDING": "1", "MOTO_RECORDER_FILEPATH": str(recording)}) as env:
        # moto's 500 for UpdateFunction is not worth retrying
        yield {"env": {**env, "AWS_MAX_ATTEMPTS": "1"}, "recording": recording}


def cf_client(env: dict[str, str]) -> Any:
    return boto3.client("cloudfront", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def clean_env(extra: dict[str, str], tmp: Path) -> dict[str, str]:
    """The test process's environment without any AWS setting of the machine, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"HOME": str(tmp), "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CA_BUNDLE": os.environ.get("AWS_CA_BUNDLE", "")})
    if not env["AWS_CA_BUNDLE"]:
        del env["AWS_CA_BUNDLE"]
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGEPROOF), "strategies", *args], capture_output=True, text=True, timeout=180,
                          env=env)


def recorded(recording: Path, function_name: str) -> list[dict[str, Any]]:
    """The requests moto received for one function, in order: method, path, headers, body bytes."""
    out = []
    for line in recording.read_text().splitlines():
        entry = json.loads(line)
        path = urllib.request.urlparse(entry["url"]).path
        if f"/function/{function_name}" not in path and not (path.endswith("/function") and entry["method"] == "POST"
                                                             and function_name.encode() in _body(entry)):
            continue
        out.append({"method": entry["method"], "path": path, "headers": {k.lower(): v for k, v in entry["headers"].items()},
                    "body": _body(entry)})
    return out


def _body(entry: dict[str, Any]) -> bytes:
    body = entry.get("body") or ""
    return base64.b64decode(body) if entry.get("body_encoded") else body.encode()


def xml_fields(body: bytes) -> dict[str, str]:
    """The leaf elements of a CloudFront REST-XML request body, by local name."""
    root = ET.fromstring(body)
    return {el.tag.split("}")[-1]: (el.text or "") for el in root.iter() if len(el) == 0}


# ---------------------------------------------------------------- what moto implements
def test_what_moto_implements(cloudfront_server: dict[str, Any]) -> None:
    """The premise of this module: create/describe/get work, update/test/publish do not (moto 5.2.5)."""
    cf = cf_client(cloudfront_server["env"])
    name = f"probe-{uuid.uuid4().hex[:8]}"
    made = cf.create_function(Name=name, FunctionConfig={"Comment": "probe", "Runtime": RUNTIME},
                              FunctionCode=b"function handler(event) { return event.request; }")
    etag = made["ETag"]
    assert cf.describe_function(Name=name, Stage="DEVELOPMENT")["ETag"] == etag
    assert cf.get_function(Name=name, Stage="DEVELOPMENT")["FunctionCode"].read().startswith(b"function handler")
    unimplemented = {
        "update_function": {"Name": name, "IfMatch": etag, "FunctionCode": b"x",
                            "FunctionConfig": {"Comment": "probe", "Runtime": RUNTIME}},
        "test_function": {"Name": name, "IfMatch": etag, "Stage": "DEVELOPMENT", "EventObject": b"{}"},
        "publish_function": {"Name": name, "IfMatch": etag},
    }
    for method, params in unimplemented.items():
        with pytest.raises(ClientError) as caught:
            getattr(cf, method)(**params)
        status = caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status in (404, 500), (method, status)  # not implemented: if this fails, test it end to end


# ---------------------------------------------------------------- end to end through the CLI
def test_deploy_creates_then_updates_with_the_etag(cloudfront_server: dict[str, Any], tmp_path: Path) -> None:
    env = clean_env(cloudfront_server["env"], tmp_path)
    name = f"img-{uuid.uuid4().hex[:8]}"
    code = export_cf_function(get_strategy("aggressive"))
    cf = cf_client(cloudfront_server["env"])
    with pytest.raises(ClientError):  # it does not exist yet
        cf.describe_function(Name=name, Stage="DEVELOPMENT")

    before = len(recorded(cloudfront_server["recording"], name))
    first = run("deploy", "aggressive", "--function-name", name, env=env)
    calls = recorded(cloudfront_server["recording"], name)[before:]  # what the deploy sent
    # created, then TestFunction, which moto does not implement: one error line, exit 2, nothing published
    assert first.returncode == 2, first.stdout + first.stderr
    assert first.stderr.splitlines() == [
        f"edgeproof: error: CloudFront TestFunction of function {name!r} failed: CloudFront answered 404: Not Found "
        f"(the endpoint {env['AWS_ENDPOINT_URL']} may not implement TestFunction)"]
    assert f"created function {name} (DEVELOPMENT, ETag " in first.stdout
    summary = cf.describe_function(Name=name, Stage="DEVELOPMENT")
    config = summary["FunctionSummary"]["FunctionConfig"]
    assert config["Runtime"] == "cloudfront-js-2.0"
    assert config["Comment"].startswith("edgeproof strategy aggressive: ")
    got = cf.get_function(Name=name, Stage="DEVELOPMENT")
    assert got["FunctionCode"].read().decode() == code  # the exported code, byte for byte
    etag = summary["ETag"]

    # moto records what it routes; TestFunction's path it does not route (its 404 is the error line above)
    assert [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in calls] == [("GET", "describe"), ("POST", "function")]
    assert calls[0]["path"].endswith(f"/function/{name}/describe")
    sent = xml_fields(calls[1]["body"])  # CreateFunction's body
    assert sent["Name"] == name and sent["Runtime"] == RUNTIME and sent["Comment"] == config["Comment"]
    assert base64.b64decode(sent["FunctionCode"]).decode() == code

    before = len(recorded(cloudfront_server["recording"], name))
    second = run("deploy", "aggressive", "--function-name", name, "--publish", env=env)
    assert second.returncode == 2, second.stdout + second.stderr
    assert len(second.stderr.splitlines()) == 1
    assert second.stderr.startswith(f"edgeproof: error: CloudFront UpdateFunction of function {name!r} failed: ")
    calls = recorded(cloudfront_server["recording"], name)[before:]
    assert [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in calls] == [("GET", "describe"), ("PUT", name)]
    update = calls[1]
    assert update["headers"]["if-match"] == etag  # the ETag DescribeFunction gave
    fields = xml_fields(update["body"])
    assert base64.b64decode(fields["FunctionCode"]).decode() == code and fields["Runtime"] == RUNTIME


def test_dry_run_makes_no_call_and_validates(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: any AWS call would fail
    env = clean_env({"AWS_ENDPOINT_URL": down}, tmp_path)  # and there are no credentials
    out = run("deploy", "aggressive", "--function-name", "img-key", "--dry-run", env=env)
    assert out.returncode == 0, out.stderr
    ops = re.findall(r"^\s*\d+\. (\w+) ", out.stdout, flags=re.M)
    n = len(worst_case_requests(get_strategy("aggressive")))
    assert ops == ["DescribeFunction", "CreateFunction", "UpdateFunction", *["TestFunction"] * n]
    assert "PublishFunction: not without --publish" in out.stdout
    assert "function handler" not in out.stdout  # the code is abbreviated
    assert re.search(r'"FunctionCode": "<[\d,]+ bytes: // edgeproof cache-key strategy', out.stdout)
    published = run("deploy", "aggressive", "--function-name", "img-key", "--dry-run", "--publish", env=env)
    assert re.findall(r"^\s*\d+\. (\w+) ", published.stdout, flags=re.M)[-1] == "PublishFunction"

    bad = run("deploy", "aggressive", "--function-name", "not a name!", "--dry-run", env=env)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert "Name 'not a name!' does not match [a-zA-Z0-9-_]{1,64}" in bad.stderr
    limit = run("deploy", "aggressive", "--function-name", "img-key", "--dry-run", "--max-utilization", "0", env=env)
    assert limit.returncode == 2 and "--max-utilization must be in (0, 100]" in limit.stderr
    query_mode = run("deploy", "passthrough", "--function-name", "img-key", "--dry-run", env=env)
    assert query_mode.returncode == 2 and "query-mode strategy" in query_mode.stderr


def test_unreachable_endpoint_and_no_credentials_are_one_line_exit_2(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    env = clean_env({"AWS_ENDPOINT_URL": down, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                     "AWS_MAX_ATTEMPTS": "1"}, tmp_path)
    out = run("deploy", "aggressive", "--function-name", "img-key", env=env)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"edgeproof: error: CloudFront DescribeFunction of function 'img-key' failed: cannot reach the CloudFront "
        f"endpoint {down}"]
    anonymous = clean_env({"AWS_ENDPOINT_URL": down}, tmp_path)
    out = run("deploy", "aggressive", "--function-name", "img-key", env=anonymous)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "edgeproof: error: CloudFront DescribeFunction of function 'img-key' failed: no AWS credentials (set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"]


def test_a_refusal_from_the_server_is_an_aws_error(cloudfront_server: dict[str, Any]) -> None:
    """A real ClientError through the deploy's one boundary: creating a function that exists."""
    cf = cf_client(cloudfront_server["env"])
    strategy = get_strategy("canonical")
    code = export_cf_function(strategy)
    name = f"dup-{uuid.uuid4().hex[:8]}"
    assert send_call(cf, describe_call(name), missing_ok=True) is None  # "it does not exist" is an answer
    with pytest.raises(AwsError) as missing:
        send_call(cf, describe_call(name))
    assert missing.value.message == f"CloudFront DescribeFunction of function {name!r} failed: no function named {name!r}"
    send_call(cf, create_call(name, strategy, code))
    with pytest.raises(AwsError) as caught:
        send_call(cf, create_call(name, strategy, code))
    assert caught.value.exit_code == 2
    assert caught.value.message == (f"CloudFront CreateFunction of function {name!r} failed: a function of that "
                                    "name already exists")


# ---------------------------------------------------------------- request shapes (botocore's validation)
def test_every_planned_call_passes_botocore_validation_and_bad_shapes_do_not() -> None:
    for strategy in [get_strategy(n) for n in CANONICAL]:
        calls = dry_run_calls(strategy, "img-key", publish=True)
        assert {c.operation for c in calls} == {"DescribeFunction", "CreateFunction", "UpdateFunction",
                                                "TestFunction", "PublishFunction"}
        for call in calls:
            validate_call(call)  # raises on a bad shape
    strategy = get_strategy("aggressive")
    request = worst_case_requests(strategy)[0]
    good = function_test_call("img-key", "E2QWRUHEXAMPLE", request)
    bad_shapes = {
        "Missing required parameter in input: \"IfMatch\"":
            Call("TestFunction", {k: v for k, v in good.params.items() if k != "IfMatch"}),
        "Invalid type for parameter EventObject":
            Call("TestFunction", {**good.params, "EventObject": request.event()}),
        "EventObject is 40,961 bytes, over the 40,960 the API takes":
            Call("TestFunction", {**good.params, "EventObject": b" " * 40961}),
        "Stage 'PRODUCTION' is not one of DEVELOPMENT, LIVE": Call("TestFunction", {**good.params, "Stage": "PRODUCTION"}),
        "Name '' does not match": update_call("", "E1", strategy, "x"),
        "Invalid length for parameter Name, value: 0": publish_call("", "E1"),
        "Missing required parameter in input: \"FunctionCode\"":
            Call("CreateFunction", {k: v for k, v in create_call("f", strategy, "x").params.items() if k != "FunctionCode"}),
        "Missing required parameter in FunctionConfig: \"Runtime\"":
            Call("CreateFunction", {**create_call("f", strategy, "x").params, "FunctionConfig": {"Comment": "c"}}),
    }
    for expected, call in bad_shapes.items():
        with pytest.raises(UsageError) as caught:
            validate_call(call)
        assert expected in caught.value.message, caught.value.message


# ---------------------------------------------------------------- the gate, on TestFunction's documented answer
def answer(utilization: str | None, error: str = "", output: str = "{}") -> dict[str, Any]:
    """A TestFunction response as boto3 returns it (API_TestResult.html)."""
    result: dict[str, Any] = {
        "FunctionSummary": {"Name": "img-key", "Status": "UNASSOCIATED",
                            "FunctionConfig": {"Comment": "c", "Runtime": RUNTIME},
                            "FunctionMetadata": {"FunctionARN": "arn:aws:cloudfront::123456789012:function/img-key",
                                                 "Stage": "DEVELOPMENT"}},
        "FunctionExecutionLogs": [],
        "FunctionErrorMessage": error,
        "FunctionOutput": output,
    }
    if utilization is not None:
        result["ComputeUtilization"] = utilization
    return {"ResponseMetadata": {"HTTPStatusCode": 200}, "TestResult": result}


def test_the_answer_shape_is_the_service_models() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("cloudfront")
    members = set(model.operation_model("TestFunction").output_shape.members["TestResult"].members)
    assert set(answer("12")["TestResult"]) | {"ComputeUtilization"} <= members


def test_gate_on_test_results() -> None:
    requests = worst_case_requests(get_strategy("aggressive"))
    low = [(r, answer(str(10 + i))) for i, r in enumerate(requests)]
    verdict = gate(low)
    assert verdict.passed and verdict.max_utilization == DEFAULT_MAX_UTILIZATION
    assert verdict.worst is not None and verdict.worst.request == requests[-1]
    assert verdict.headline.startswith("gate passed: worst compute utilization ")

    at_limit = [(r, answer("70")) for r in requests]
    assert gate(at_limit).passed  # at most 70: 70 passes
    over = [*low[:3], (requests[3], answer("83")), (requests[4], answer("71")), *low[5:]]
    verdict = gate(over)
    assert not verdict.passed
    assert verdict.headline == f"gate failed: compute utilization 83% > 70% on the worst request: {requests[3].label}"
    assert len(verdict.failures) == 2
    assert gate(over, max_utilization=90).passed  # the limit is the caller's

    failed = [*low[:1], (requests[1], answer("5", error="TypeError: cannot read property 'value' of undefined"))]
    verdict = gate(failed)
    assert not verdict.passed and verdict.failures == (
        f"{requests[1].label}: the function failed: TypeError: cannot read property 'value' of undefined",)
    assert not gate([(requests[0], answer(None))]).passed  # no ComputeUtilization: cannot tell, so not passed
    assert not gate([(requests[0], answer("n/a"))]).passed
    assert not gate([]).passed


# ---------------------------------------------------------------- the worst-case requests
def test_worst_case_requests_cover_the_limits() -> None:
    strategy = get_strategy("aggressive")
    requests = worst_case_requests(strategy)
    event_limit = 40960
    assert all(r.url_bytes <= MAX_URL_LENGTH for r in requests)
    assert max(r.url_bytes for r in requests) >= MAX_URL_LENGTH - 16  # the longest query reaches the limit
    assert all(len(r.event_object()) <= event_limit for r in requests)
    accepts = {r.accept for r in requests}
    assert set(ACCEPT_BY_CLASS) <= accepts and None in accepts
    assert max(len(r.accept or "") for r in requests) >= 2000
    queries = "&".join(r.query for r in requests)
    names = {s.partition("=")[0] for s in queries.split("&")}
    lowered = {n.lower() for n in names}
    for tracking in TRACKING_PARAMS:
        assert any(n.startswith(tracking[:-1]) if tracking.endswith("*") else n == tracking for n in lowered), tracking
    assert any(n != n.lower() and n != n.upper() for n in names)  # mixed case
    most = max(len(r.query.split("&")) for r in requests)
    assert most > 1000  # the most parameters
    assert any(r.query.count("%") * 3 >= len(r.query) * 0.9 for r in requests)  # percent-encoded throughout


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_worst_case_events_run_through_the_exported_function(tmp_path: Path) -> None:
    """Each worst-case event, given to the exported function in Node, gives the strategy's own answer."""
    user = tmp_path / "user_deploy.toml"
    user.write_text(USER_TOML)
    strategies = [get_strategy(n) for n in CANONICAL] + [get_strategy(user)]
    proc = subprocess.Popen([shutil.which("node") or "node", str(HARNESS)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdin is not None and proc.stdout is not None

    def ask(message: dict[str, Any]) -> Any:
        proc.stdin.write(json.dumps(message) + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        reply = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        assert "error" not in reply, reply
        return reply["ok"]

    try:
        for strategy in strategies:
            ask({"op": "load", "id": strategy.name, "code": export_cf_function(strategy)})
            for request in worst_case_requests(strategy):
                out = ask({"op": "run", "id": strategy.name, "event": json.loads(request.event_object())})
                expected = request.expected(strategy)
                got = str(out["statusCode"]) if "statusCode" in out else out["uri"]
                assert got == expected, (strategy.name, request.label)
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_worst_case_request_shape() -> None:
    r = WorstCaseRequest("x", "/a.jpg", "w=1&w=2&b", "image/webp")
    event = r.event()
    assert event["request"]["querystring"] == {"w": {"value": "1", "multiValue": [{"value": "1"}, {"value": "2"}]},
                                               "b": {"value": ""}}
    assert event["request"]["headers"]["accept"] == {"value": "image/webp"}
    assert r.url_bytes == len("/a.jpg?w=1&w=2&b")
