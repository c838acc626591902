"""Source/derivative stores: a real folder and a real S3 API (moto server over HTTP)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from edgeproof.origin.stores import FolderStore, S3Store, Store, content_type_for_key, open_store

from edgeproof.errors import BadRequest, PayloadTooLarge, StoreError

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


def _orphans(root: Path, pid: int = 999_999_999) -> dict[str, Path]:
    """Temp files as a writer killed mid-write leaves them, aged past ORPHAN_AGE, plus one fresh."""
    import os
    import time

    from edgeproof.origin.stores import ORPHAN_AGE

    folder = root / "images" / "a.jpg"
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "killed": folder / f".w=640,h=0,fit=cover,q=80,f=webp.{pid}-0123456789ab.tmp",
        "old_format": folder / ".w=320,h=0,fit=cover,q=80,f=webp.abcdef012345.tmp",  # no PID in the name
        "top": root / f".x.jpg.{pid}-ffffffffffff.tmp",
        "fresh": folder / f".w=160,h=0,fit=cover,q=80,f=webp.{pid}-aaaaaaaaaaaa.tmp",  # a write in progress
        "own": folder / f".w=80,h=0,fit=cover,q=80,f=webp.{os.getpid()}-bbbbbbbbbbbb.tmp",
        "object": folder / "w=640,h=0,fit=cover,q=80,f=jpeg",
        "dotfile": root / ".keep",
    }
    old = time.time() - ORPHAN_AGE - 5
    for name, path in files.items():
        path.write_bytes(b"partial")
        if name != "fresh":
            os.utime(path, (old, old))
    return files


def test_folder_store_removes_orphan_temp_files(tmp_path: Path) -> None:
    files = _orphans(tmp_path / "d")
    store = FolderStore(tmp_path / "d")
    assert store.remove_orphans() == 3
    gone = {"killed", "old_format", "top"}
    assert {n for n, p in files.items() if not p.exists()} == gone
    # this process's own temp file (a write of ours in progress) and the fresh one are kept
    assert files["own"].exists() and files["fresh"].exists()
    assert store.remove_orphans() == 0
    # what put() leaves in flight carries this process's PID, so a clean-up never takes it
    store.put("images/b.jpg", b"x")
    assert not list((tmp_path / "d" / "images").glob(".b.jpg.*"))


def test_s3_store_has_no_orphans(s3_bucket: str) -> None:
    assert open_store(f"s3://{s3_bucket}/x").remove_orphans() == 0


def test_origin_start_removes_orphans(tmp_path: Path) -> None:
    import time

    from _origin_helpers import OriginProc, jpeg
    from conftest import free_port

    (tmp_path / "src" / "images").mkdir(parents=True)
    (tmp_path / "src" / "images" / "a.jpg").write_bytes(jpeg(200, 100))
    files = _orphans(tmp_path / "der")
    proc = OriginProc(free_port(), ["--sources", str(tmp_path / "src"), "--derivatives", str(tmp_path / "der"),
                                    "--workers", "1"], log=tmp_path / "log.txt")
    try:
        proc.wait_ready()
        for _ in range(200):  # the clean-up runs in the background after start (bounded wait)
            if not files["killed"].exists():
                break
            time.sleep(0.05)
        assert not files["killed"].exists() and not files["old_format"].exists() and not files["top"].exists()
        assert files["fresh"].exists() and files["object"].exists() and files["dotfile"].exists()
        # "own" was made by the test process: for the server it is another process's, and old
        assert not files["own"].exists()
    finally:
        assert proc.stop() == 0
    assert "removed 4 orphan temp files" in (tmp_path / "log.txt").read_text()


def test_prescale_removes_orphans(tmp_path: Path) -> None:
    from _origin_helpers import jpeg
    from edgeproof.origin.prescale import run_prescale

    (tmp_path / "src" / "images").mkdir(parents=True)
    (tmp_path / "src" / "images" / "a.jpg").write_bytes(jpeg(200, 100))
    files = _orphans(tmp_path / "der")
    summary = run_prescale(sources=str(tmp_path / "src"), derivatives=str(tmp_path / "der"), variants="thumb")
    assert summary.made == 1 and not files["killed"].exists() and files["fresh"].exists()
