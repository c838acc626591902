"""Where reports go: a local folder or ``s3://bucket/prefix`` (publishing, the week-over-week history).

S3 goes through :mod:`edgeproof.s3`: the one URL parser (a bad URL is a UsageError), one client per
thread (``AWS_ENDPOINT_URL`` honoured, so moto or MinIO work the same way) and its error boundary
(any S3 failure is a :class:`~edgeproof.errors.StoreError` naming the bucket and key, exit 2). A
missing history *object* reads as "no history yet"; a missing *bucket* is a wrong setting and fails.
"""

from __future__ import annotations

import json
import mimetypes
import shutil
from pathlib import Path
from typing import Any

from edgeproof import s3

__all__ = ["list_json", "publish_dir", "read_json", "write_json"]


def _content_type(path: Path) -> str:
    """The Content-Type a browser needs to show a published file (text with its charset)."""
    if path.suffix == ".md":
        return "text/markdown; charset=utf-8"
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype == "application/json":
        ctype += "; charset=utf-8"
    return ctype


def publish_dir(src: str | Path, dest: str) -> list[str]:
    """Copy every file of ``src`` (not recursive) to ``dest`` (folder or s3://); returns the written names."""
    files = sorted(p for p in Path(src).iterdir() if p.is_file())
    if s3.is_s3_url(dest):
        where = s3.parse_s3_url(dest)
        written = []
        for path in files:
            target = where.child(path.name)
            s3.upload_file(path, target.bucket, target.key, content_type=_content_type(path))
            written.append(str(target))
        return written
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy2(path, out / path.name)
    return [str(out / p.name) for p in files]


def read_json(location: str | Path, name: str) -> dict[str, Any] | None:
    """``location/name`` parsed as JSON, or None when it does not exist."""
    if s3.is_s3_url(location):
        target = s3.parse_s3_url(location).child(name)
        body = s3.get_bytes(target.bucket, target.key, missing_ok=True)
        return None if body is None else json.loads(body)
    path = Path(location) / name
    if not path.exists():
        return None
    return json.loads(path.read_text())


def write_json(location: str | Path, name: str, data: dict[str, Any]) -> str:
    """Write ``data`` as ``location/name``; returns where it went."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    if s3.is_s3_url(location):
        target = s3.parse_s3_url(location).child(name)
        s3.put_object(target.bucket, target.key, text.encode(), content_type="application/json")
        return str(target)
    path = Path(location) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def list_json(location: str | Path) -> list[str]:
    """Names of the ``*.json`` objects directly under ``location`` (sorted)."""
    if s3.is_s3_url(location):
        where = s3.parse_s3_url(location)
        folder = where.join("")  # "prefix/", or "" at the bucket root
        names = (obj.key[len(folder):] for obj in s3.list_objects(where.bucket, folder))
        return sorted(n for n in names if "/" not in n and n.endswith(".json"))
    path = Path(location)
    return sorted(p.name for p in path.glob("*.json")) if path.is_dir() else []
