"""Where reports go: a local folder or ``s3://bucket/prefix`` (publishing, the week-over-week history).

boto3 is imported lazily, inside the functions that need it; ``AWS_ENDPOINT_URL`` is honoured (boto3
reads it itself), so an S3-compatible server (moto, MinIO) works the same way.
"""

from __future__ import annotations

import json
import mimetypes
import shutil
from pathlib import Path
from typing import Any

from edgeproof.errors import StoreError, UsageError

__all__ = ["is_s3", "publish_dir", "read_json", "split_s3", "write_json", "list_json"]


def is_s3(location: str | Path) -> bool:
    return str(location).startswith("s3://")


def split_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")`` (prefix without leading/trailing slash)."""
    rest = url[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise UsageError(f"bad S3 location {url!r}", detail="expected s3://bucket/prefix")
    return bucket, prefix.strip("/")


def _client() -> Any:
    import boto3

    return boto3.client("s3")


def _key(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def publish_dir(src: str | Path, dest: str) -> list[str]:
    """Copy every file of ``src`` (not recursive) to ``dest`` (folder or s3://); returns the written names."""
    files = sorted(p for p in Path(src).iterdir() if p.is_file())
    if is_s3(dest):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, prefix = split_s3(dest)
        client = _client()
        written = []
        try:
            for path in files:
                ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                if path.suffix == ".md":
                    ctype = "text/markdown; charset=utf-8"
                elif ctype.startswith("text/") or ctype == "application/json":
                    ctype += "; charset=utf-8"
                client.upload_file(str(path), bucket, _key(prefix, path.name), ExtraArgs={"ContentType": ctype})
                written.append(f"s3://{bucket}/{_key(prefix, path.name)}")
        except (BotoCoreError, ClientError) as err:
            raise StoreError(f"cannot publish the report to {dest}", detail=str(err)) from err
        return written
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy2(path, out / path.name)
    return [str(out / p.name) for p in files]


def read_json(location: str | Path, name: str) -> dict[str, Any] | None:
    """``location/name`` parsed as JSON, or None when it does not exist."""
    if is_s3(location):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, prefix = split_s3(str(location))
        try:
            body = _client().get_object(Bucket=bucket, Key=_key(prefix, name))["Body"].read()
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
                return None
            raise StoreError(f"cannot read {location}/{name}", detail=str(err)) from err
        except BotoCoreError as err:
            raise StoreError(f"cannot read {location}/{name}", detail=str(err)) from err
        return json.loads(body)
    path = Path(location) / name
    if not path.exists():
        return None
    return json.loads(path.read_text())


def write_json(location: str | Path, name: str, data: dict[str, Any]) -> str:
    """Write ``data`` as ``location/name``; returns where it went."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    if is_s3(location):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, prefix = split_s3(str(location))
        try:
            _client().put_object(Bucket=bucket, Key=_key(prefix, name), Body=text.encode(),
                                 ContentType="application/json")
        except (BotoCoreError, ClientError) as err:
            raise StoreError(f"cannot write {location}/{name}", detail=str(err)) from err
        return f"s3://{bucket}/{_key(prefix, name)}"
    path = Path(location) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def list_json(location: str | Path) -> list[str]:
    """Names of the ``*.json`` objects directly under ``location`` (sorted)."""
    if is_s3(location):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, prefix = split_s3(str(location))
        names: list[str] = []
        try:
            pages = _client().get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=_key(prefix, "") if prefix else "")
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix) + 1 if prefix else 0:]
                    if "/" not in name and name.endswith(".json"):
                        names.append(name)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return []
            raise StoreError(f"cannot list {location}", detail=str(err)) from err
        except BotoCoreError as err:
            raise StoreError(f"cannot list {location}", detail=str(err)) from err
        return sorted(names)
    path = Path(location)
    return sorted(p.name for p in path.glob("*.json")) if path.is_dir() else []
