"""Shared fixtures: the real samples folder, free ports, an S3-compatible server (moto, over HTTP)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples" / "cloudfront"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers (any HTTP status), or fail."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError as err:
            last = err
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout}s: {last}")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """../shared/samples/cloudfront, read in place. Missing: skip locally, fail under CI=true."""
    if not SAMPLES.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared samples missing at {SAMPLES} (CI=true)")
        pytest.skip(f"shared samples not found at {SAMPLES}")
    return SAMPLES


#: what a boto3 client needs besides the endpoint (moto accepts any keys unless auth is turned on)
MOTO_CLIENT_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def moto_server(server_env: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """moto's server mode in its own process on loopback (every service it has, over HTTP), started with
    ``server_env`` added to its environment (recording, auth); yields the env a boto3 client needs."""
    port = free_port()
    env = {**MOTO_CLIENT_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(server_env or {})},
    )
    try:
        wait_http(env["AWS_ENDPOINT_URL"] + "/moto-api/", proc=proc)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """A moto server (S3, DynamoDB and the rest) shared by the session; yields the env a boto3 client needs."""
    with moto_server() as env:
        yield env


@pytest.fixture
def s3_env(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point this test's process (and subprocesses given os.environ) at the moto server."""
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    return dict(s3_server)


@pytest.fixture
def s3_bucket(s3_env: dict[str, str]) -> str:
    """A fresh, empty bucket on the moto server."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    return name
