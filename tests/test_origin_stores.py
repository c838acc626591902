"""Source/derivative stores: a real folder and a real S3 API (moto server over HTTP)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edgeproof.errors import BadRequest, PayloadTooLarge, StoreError
from origin.stores import FolderStore, S3Store, Store, content_type_for_key, open_store

DERIVED = "images/sku-00001-1.jpg/w=640,h=0,fit=cover,q=80,f=webp"


def _exercise(store: Store) -> None:
    assert store.get("images/missing.jpg") is None
    assert not store.exists("images/missing.jpg")
    assert store.head("images/missing.jpg") is None
    store.put("images/a.jpg", b"jpegbytes", "image/jpeg")
    store.put(DERIVED, b"webpbytes" * 10, "image/webp")
    assert store.get("images/a.jpg") == b"jpegbytes"
    assert store.exists(DERIVED)
    info = store.head(DERIVED)
    assert info is not None and info.size == 90 and info.content_type == "image/webp"
    assert store.get(DERIVED, max_bytes=90) == b"webpbytes" * 10
    with pytest.raises(PayloadTooLarge):
        store.get(DERIVED, max_bytes=89)
    assert sorted(store.iter_keys("images/")) == sorted([DERIVED, "images/a.jpg"])
    for bad in ("../etc/passwd", "/abs.jpg", "images/../x.jpg", "images//x.jpg"):
        with pytest.raises(BadRequest):
            store.get(bad)
    # concurrent writers and readers of one key: every read is a whole object
    payloads = [bytes([i]) * 50_000 for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: store.put("images/race.bin", p), payloads))
        reads = list(pool.map(lambda _: store.get("images/race.bin"), range(16)))
    assert all(r in payloads for r in reads)


def test_folder_store(tmp_path: Path) -> None:
    store = open_store(tmp_path / "d")
    assert isinstance(store, FolderStore) and str(tmp_path) in store.describe()
    _exercise(store)
    # no temp files left behind
    assert not [p for p in (tmp_path / "d").rglob(".*.tmp")]


def test_s3_store(s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}/deriv")
    assert isinstance(store, S3Store) and store.describe() == f"s3://{s3_bucket}/deriv"
    _exercise(store)


def test_s3_store_errors(s3_env: dict[str, str]) -> None:
    store = open_store("s3://no-such-bucket-here/x")
    with pytest.raises(StoreError):
        store.put("a.jpg", b"x", "image/jpeg")
    with pytest.raises(StoreError):
        open_store("ftp://host/x")


def test_folder_store_unwritable(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    store = FolderStore(tmp_path)
    with pytest.raises(StoreError):
        store.put("file/child.jpg", b"x")  # parent is a file


def test_content_type_for_key() -> None:
    assert content_type_for_key(DERIVED) == "image/webp"
    assert content_type_for_key("images/a.png") == "image/png"
    assert content_type_for_key("images/a.jpg/w=1,h=0,fit=cover,q=80,f=avif") == "image/avif"
