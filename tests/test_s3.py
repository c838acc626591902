"""edgeproof.s3, the one S3 module: parsing, client reuse, the error boundary, pagination.

Everything runs against moto's server over HTTP (the ``s3_env`` / ``s3_bucket`` fixtures, and a
second moto server with authentication on for "access denied"); no client is patched. Which client
a caller used is observed through botocore's own event hooks on the client :func:`s3.client` hands
out, so a caller that made a client of its own would be seen making no calls.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError
from conftest import free_port, moto_server
from edgeproof.analytics.inputs import LogInput, expand_inputs, open_input
from edgeproof.analytics.reader import read_logs
from edgeproof.analytics.report.store import list_json, publish_dir, read_json, write_json
from edgeproof.analytics.synthetic import generate_logs
from edgeproof.edge.logsink import ROW_COLUMNS, LogSink
from edgeproof.origin.stores import S3Store, open_store
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeproof import s3
from edgeproof.errors import EXIT_USAGE, LogFormatError, StoreError, UsageError

EDGEPROOF = Path(sys.executable).with_name("edgeproof")


@contextmanager
def calls_on_this_threads_client() -> Iterator[list[str]]:
    """The S3 operations sent through this thread's :func:`s3.client` while the block runs."""
    seen: list[str] = []

    def record(model: Any, **_: Any) -> None:
        seen.append(model.name)

    events = s3.client().meta.events
    uid = f"test-{uuid.uuid4().hex}"
    events.register("before-call.s3", record, unique_id=uid)
    try:
        yield seen
    finally:
        events.unregister("before-call.s3", unique_id=uid)


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGEPROOF), *args], capture_output=True, text=True, timeout=120, env=env)


def _row() -> tuple[Any, ...]:
    values = dict.fromkeys(ROW_COLUMNS)
    values.update(timestamp=1_714_528_800_000, x_edge_location="IAD89-C1", sc_bytes=10, c_ip="127.0.0.1",
                  cs_method="GET", cs_host="d1.cloudfront.net", cs_uri_stem="/images/a.jpg", sc_status=200,
                  x_edge_result_type="Hit", x_edge_request_id="r", cs_protocol="http", cs_bytes=10,
                  time_taken=0.001, x_edge_response_result_type="Hit", cs_protocol_version="HTTP/1.1")
    return tuple(values[c] for c in ROW_COLUMNS)


# -- parsing -----------------------------------------------------------------------------------------

BUCKETS = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True)
KEYS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=300, deadline=None)
@given(BUCKETS, KEYS)
def test_parse_splits_at_the_first_slash_and_keeps_the_key_verbatim(bucket: str, key: str) -> None:
    url = s3.parse_s3_url(f"s3://{bucket}/{key}")
    assert url == s3.S3Url(bucket, key)
    assert s3.parse_s3_url(str(url)) == url  # printing and parsing agree
    assert url.prefix == key.strip("/")
    assert url.join("a.json") == (f"{key.strip('/')}/a.json" if key.strip("/") else "a.json")


def test_parse_examples() -> None:
    assert s3.parse_s3_url("s3://my-cf-logs/E2ABC/") == s3.S3Url("my-cf-logs", "E2ABC/")  # '/' kept: a listing prefix
    assert s3.parse_s3_url("s3://reports") == s3.S3Url("reports", "")
    assert str(s3.S3Url("reports", "history").child("2026-W47.json")) == "s3://reports/history/2026-W47.json"
    assert s3.parse_s3_url("s3://Legacy_Bucket/x").bucket == "Legacy_Bucket"  # us-east-1's old spelling


@settings(max_examples=200, deadline=None)
@given(BUCKETS, st.sampled_from(" ?#:@\\%*\t\n<>"), st.integers(0, 10))
def test_a_bucket_with_a_character_s3_never_allows_is_a_usage_error_naming_the_url(
        bucket: str, bad: str, at: int) -> None:
    name = bucket[:at] + bad + bucket[at:]
    url = f"s3://{name}/logs/"
    with pytest.raises(UsageError) as caught:
        s3.parse_s3_url(url)
    assert repr(url) in caught.value.message and caught.value.exit_code == EXIT_USAGE


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40).filter(lambda t: not t.startswith("s3://")))
def test_anything_not_s3_is_a_usage_error_naming_it(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        s3.parse_s3_url(text)
    assert repr(text) in caught.value.message


@pytest.mark.parametrize("bad", ["s3://", "s3:///logs", "s3://ab/x", "s3://a b/x", "s3://" + "b" * 256])
def test_every_caller_refuses_a_bad_url_with_the_same_error(bad: str, tmp_path: Path) -> None:
    """One parser, one error: before, the same URL was a UsageError, a ConfigError or a StoreError."""
    (tmp_path / "report.html").write_text("x")
    callers = {
        "log inputs": lambda: expand_inputs(bad),
        "report history": lambda: read_json(bad, "2026-W47.json"),
        "report publish": lambda: publish_dir(tmp_path, bad),
        "edge log bucket": lambda: LogSink(tmp_path / "logs", "E2TEST", log_bucket=bad),
        "origin store": lambda: open_store(bad),
    }
    for name, call in callers.items():
        with pytest.raises(UsageError) as caught:
            call()
        assert type(caught.value) is UsageError, name
        assert repr(bad) in caught.value.message, name


# -- the client ----------------------------------------------------------------------------------------


def test_one_client_per_thread_endpoint_and_region(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    first = s3.client()
    assert all(s3.client() is first for _ in range(50))
    assert first.meta.endpoint_url == s3_env["AWS_ENDPOINT_URL"]
    in_thread: list[Any] = []
    worker = threading.Thread(target=lambda: in_thread.extend([s3.client(), s3.client()]))
    worker.start()
    worker.join()
    assert in_thread[0] is in_thread[1] and in_thread[0] is not first
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    elsewhere = s3.client()
    assert elsewhere is not first and elsewhere.meta.endpoint_url == os.environ["AWS_ENDPOINT_URL"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env["AWS_ENDPOINT_URL"])
    assert s3.client() is first
    assert s3.client(region="eu-west-3") is not first


def test_clients_have_retries_and_timeouts(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    config = s3.client(region="ap-southeast-2").meta.config  # a region no other test uses: a new client
    assert config.retries == {"total_max_attempts": s3.MAX_ATTEMPTS, "mode": "standard"}
    assert (config.connect_timeout, config.read_timeout) == (s3.CONNECT_TIMEOUT, s3.READ_TIMEOUT)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")  # the user's own setting wins over our default
    assert s3.client(region="ca-central-1").meta.config.retries == {"total_max_attempts": 7, "mode": "standard"}


def test_log_reader_reuses_the_client_for_every_object(s3_bucket: str, tmp_path: Path) -> None:
    """The bug this module removes: the reader made a new client for each log object it fetched."""
    for path in generate_logs(tmp_path, "2024-05-01T00:00Z", 4, 20, hit_rate=0.9, seed=3):
        s3.upload_file(path, s3_bucket, f"cf/{path.name}")
    with calls_on_this_threads_client() as calls:
        stream = read_logs(f"s3://{s3_bucket}/cf/")
        assert stream.read_all().num_rows == 80
    assert calls.count("ListObjectsV2") == 1 and calls.count("GetObject") == 4


def test_stores_report_history_and_log_sink_use_the_same_client(s3_bucket: str, tmp_path: Path) -> None:
    store = open_store(f"s3://{s3_bucket}/der")
    sink = LogSink(tmp_path / "logs", "E2REUSE", log_bucket=f"s3://{s3_bucket}/cf-logs/")
    (tmp_path / "pub").mkdir()
    (tmp_path / "pub" / "summary.md").write_text("# week\n")
    with calls_on_this_threads_client() as calls:
        store.put("images/a.jpg", b"jpeg bytes")
        assert store.get("images/a.jpg") == b"jpeg bytes" and store.head("images/a.jpg") is not None
        assert list(store.iter_keys()) == ["images/a.jpg"]
        assert read_json(f"s3://{s3_bucket}/history", "2026-W46.json") is None
        write_json(f"s3://{s3_bucket}/history", "2026-W46.json", {"hit_rate": 0.97})
        assert list_json(f"s3://{s3_bucket}/history") == ["2026-W46.json"]
        assert publish_dir(tmp_path / "pub", f"s3://{s3_bucket}/reports") == [f"s3://{s3_bucket}/reports/summary.md"]
        sink.add(_row())
        sink.close()
    assert calls == ["PutObject", "GetObject", "HeadObject", "ListObjectsV2",
                     "GetObject", "PutObject", "ListObjectsV2", "PutObject", "PutObject"]
    uploaded = [o.key for o in s3.list_objects(s3_bucket, "cf-logs/")]
    assert len(uploaded) == 1 and uploaded[0].startswith("cf-logs/E2REUSE.2024-05-01-02.")
    assert b"/images/a.jpg" in gzip.decompress(s3.get_bytes(s3_bucket, uploaded[0]))
    head = s3.head_object(s3_bucket, "reports/summary.md")
    assert head is not None and head.content_type == "text/markdown; charset=utf-8"


# -- the error boundary --------------------------------------------------------------------------------


def test_missing_bucket_is_a_store_error_naming_it(s3_env: dict[str, str]) -> None:
    with pytest.raises(StoreError) as caught:
        list(s3.list_objects("edgeproof-nope", "E2ABC/"))
    err = caught.value
    assert err.message == "cannot list s3://edgeproof-nope/E2ABC/: no such bucket 'edgeproof-nope'"
    assert err.exit_code == EXIT_USAGE and isinstance(err.__cause__, ClientError)
    with pytest.raises(StoreError, match="^cannot write s3://edgeproof-nope/a.jpg: no such bucket"):
        open_store("s3://edgeproof-nope").put("a.jpg", b"x")
    with pytest.raises(StoreError, match="no such bucket"):  # a missing bucket is a wrong setting, not "no history"
        read_json("s3://edgeproof-nope/history", "2026-W46.json")


def test_missing_key_is_a_store_error_or_none_where_absence_is_an_answer(s3_bucket: str) -> None:
    with pytest.raises(StoreError) as caught:
        s3.get_bytes(s3_bucket, "history/2026-W01.json")
    assert caught.value.message == f"cannot read s3://{s3_bucket}/history/2026-W01.json: no such key"
    assert isinstance(caught.value.__cause__, ClientError)
    assert s3.get_bytes(s3_bucket, "history/2026-W01.json", missing_ok=True) is None
    assert s3.open_object(s3_bucket, "nothing", missing_ok=True) is None
    assert s3.head_object(s3_bucket, "nothing") is None
    assert S3Store(s3_bucket, "der").get("images/none.jpg") is None


def test_a_log_object_that_cannot_be_fetched_is_a_file_error_of_that_input(s3_bucket: str) -> None:
    """Gone between listing and download: the reader accounts that one input and reads the others."""
    inp = LogInput(f"s3://{s3_bucket}/cf/gone.gz", bucket=s3_bucket, key="cf/gone.gz")
    with pytest.raises(LogFormatError, match=f"^cannot read s3://{s3_bucket}/cf/gone.gz: no such key$"):
        open_input(inp)


def test_unreachable_endpoint_is_a_store_error(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", down)
    with pytest.raises(StoreError) as caught:
        s3.get_bytes("some-bucket", "k")
    assert caught.value.message == f"cannot read s3://some-bucket/k: cannot reach the S3 endpoint {down}"
    assert isinstance(caught.value.__cause__, BotoCoreError)


def test_log_upload_to_a_missing_bucket_fails_on_close_with_a_store_error(s3_env: dict[str, str],
                                                                         tmp_path: Path) -> None:
    """boto3's upload_file raised S3UploadFailedError, which no except clause of the sink caught."""
    sink = LogSink(tmp_path, "E2LOST", log_bucket="s3://edgeproof-no-log-bucket/cf")
    sink.add(_row())
    with pytest.raises(StoreError, match="^cannot write s3://edgeproof-no-log-bucket/cf/E2LOST.2024-05-01-02"):
        sink.close()
    assert sink.upload_errors and "no such bucket 'edgeproof-no-log-bucket'" in sink.upload_errors[0]


@pytest.fixture(scope="module")
def locked_bucket() -> Iterator[dict[str, str]]:
    """A moto server with authentication on, a bucket, and the keys of an IAM user with no policy."""
    # the first 3 requests go unauthenticated: the bucket, the user and its access key
    with moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as env:
        endpoint = env["AWS_ENDPOINT_URL"]
        admin = {"endpoint_url": endpoint, "region_name": "us-east-1",
                 "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        boto3.client("s3", **admin).create_bucket(Bucket="edgeproof-locked")
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        yield {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"], "AWS_DEFAULT_REGION": "us-east-1"}


def test_access_denied_is_a_store_error(locked_bucket: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in locked_bucket.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StoreError) as caught:
        s3.get_bytes("edgeproof-locked", "history/2026-W46.json", missing_ok=True)  # denied is not absent
    assert caught.value.message == ("cannot read s3://edgeproof-locked/history/2026-W46.json: "
                                    "access denied to bucket 'edgeproof-locked'")
    with pytest.raises(StoreError, match="^cannot list s3://edgeproof-locked/cf/: access denied"):
        expand_inputs("s3://edgeproof-locked/cf/")


def _cli_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "EDGEPROOF_DEBUG"}
    return {**base, **extra}


def test_cli_missing_bucket_exits_2_without_a_traceback(s3_env: dict[str, str]) -> None:
    done = run("logs", "summarize", "s3://nope/x", env=_cli_env(**s3_env))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[0] == "edgeproof: error: cannot list s3://nope/x: no such bucket 'nope'"
    assert "Traceback" not in done.stderr


def test_cli_endpoint_down_and_no_credentials_exit_2(s3_env: dict[str, str], tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    done = run("logs", "summarize", "s3://my-cf-logs/E2ABC/", env=_cli_env(**{**s3_env, "AWS_ENDPOINT_URL": down}))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[0] == (
        f"edgeproof: error: cannot list s3://my-cf-logs/E2ABC/: cannot reach the S3 endpoint {down}")
    assert "Traceback" not in done.stderr
    anonymous = _cli_env(AWS_ENDPOINT_URL=s3_env["AWS_ENDPOINT_URL"], AWS_DEFAULT_REGION="us-east-1",
                         AWS_EC2_METADATA_DISABLED="true",  # never ask an instance-metadata address
                         AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    done = run("logs", "summarize", "s3://my-cf-logs/E2ABC/", env=anonymous)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[0].startswith(
        "edgeproof: error: cannot list s3://my-cf-logs/E2ABC/: no AWS credentials")
    assert "Traceback" not in done.stderr


# -- pagination ----------------------------------------------------------------------------------------


def test_listing_pages_past_1000_keys(s3_bucket: str) -> None:
    keys = [f"history/2026-W{i:04d}.json" for i in range(1005)]
    with ThreadPoolExecutor(4) as pool:  # each worker thread puts through its own client
        list(pool.map(lambda k: s3.put_object(s3_bucket, k, b"{}", content_type="application/json"), keys))
    s3.put_object(s3_bucket, "other/x.json", b"{}")
    with calls_on_this_threads_client() as calls:
        listed = list(s3.list_objects(s3_bucket, "history/"))
    assert [o.key for o in listed] == keys and all(o.size == 2 for o in listed)
    assert calls == ["ListObjectsV2", "ListObjectsV2"]  # S3 answers at most 1,000 keys a page
    assert list_json(f"s3://{s3_bucket}/history") == [k.split("/")[1] for k in keys]
    assert sum(1 for _ in S3Store(s3_bucket, "history").iter_keys()) == 1005
