"""``edgeproof origin sample-catalog`` / ``prescale`` from the CLI, and the docs cover every flag."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyvips
from _origin_helpers import decode
from edgeproof.origin.catalog import _encode, _spec, catalog_keys
from edgeproof.origin.config import add_arguments

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeproof.cli", "origin", *args], capture_output=True,
                          text=True, check=check, timeout=300)


def test_catalog_key_contract_and_reuse(tmp_path: Path) -> None:
    out = tmp_path / "cat"
    first = cli("sample-catalog", "--count", "5", "--out", str(out), "--quiet")
    assert "6 images (6 generated, 0 reused)" in first.stdout  # rounded up to whole SKUs of 2
    manifest = (out / "catalog.txt").read_text().split()
    assert [k.rsplit(".", 1)[0] for k in manifest] == [
        f"images/sku-{sku:05d}-{n}" for sku in (1, 2, 3) for n in (1, 2)
    ]
    assert manifest == catalog_keys(5, 2, 1)
    for key in manifest:
        image = decode((out / key).read_bytes())
        assert 800 <= max(image.width, image.height) <= 4000
        assert key.endswith(".png") == str(image.get("vips-loader")).startswith("png")
    again = cli("sample-catalog", "--count", "5", "--out", str(out), "--quiet")
    assert "(0 generated, 6 reused)" in again.stdout
    other = cli("sample-catalog", "--count", "5", "--out", str(out), "--seed", "2", "--quiet")
    assert "(6 generated, 0 reused)" in other.stdout
    k3 = cli("sample-catalog", "--count", "3", "--images-per-sku", "3", "--out", str(tmp_path / "k3"), "--quiet")
    assert "3 images" in k3.stdout
    assert (tmp_path / "k3" / "catalog.txt").read_text().split()[2].startswith("images/sku-00001-3.")


def test_catalog_mix() -> None:
    specs = [_spec(key, 1) for key in catalog_keys(400)]
    assert all(800 <= max(s.width, s.height) <= 4000 for s in specs)
    share = lambda pred: sum(map(pred, specs)) / len(specs)  # noqa: E731
    assert 0.15 < share(lambda s: s.fmt == "png") < 0.35
    assert share(lambda s: max(s.width, s.height) <= 1600) > 0.6
    assert share(lambda s: max(s.width, s.height) >= 2000) > 0.03
    assert share(lambda s: s.orientation != 1) > 0.05 and share(lambda s: s.cmyk) > 0.03
    assert share(lambda s: s.transparent) > 0.05
    # render one of each special kind and check what is in the file
    oriented = next(s for s in specs if s.orientation == 6 and max(s.width, s.height) <= 1600)
    image = decode(_encode(oriented))
    assert image.get("orientation") == 6 and (image.width, image.height) == (oriented.height, oriented.width)
    cmyk = next(s for s in specs if s.cmyk and max(s.width, s.height) <= 1600)
    image = decode(_encode(cmyk))
    assert image.interpretation == "cmyk" and image.get_typeof("icc-profile-data")
    cutout = next(s for s in specs if s.transparent and max(s.width, s.height) <= 1600)
    image = decode(_encode(cutout))
    assert image.bands == 4 and image(2, 2)[3] == 0  # transparent corner


def test_prescale_skips_and_resumes(tmp_path: Path) -> None:
    cat, der = tmp_path / "cat", tmp_path / "der"
    cli("sample-catalog", "--count", "10", "--out", str(cat), "--quiet")
    vfile = tmp_path / "variants.txt"  # presets and ops strings mixed: one per line
    vfile.write_text("thumb\ncard  # a preset\nw=1200,h=0,fit=inside,q=85,f=webp\n\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeproof.cli", "origin", "prescale", "--sources", str(cat),
         "--derivatives", str(der), "--variants", str(vfile), "--keys", str(cat / "catalog.txt"), "--jobs", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    for _ in range(600):  # interrupt as soon as the first variant lands (bounded wait)
        if der.exists() and any(p.is_file() for p in der.rglob("f=*")) or proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    first = [p for p in der.rglob("*") if p.is_file()]
    assert first, "the interrupted run wrote nothing"
    rerun = cli("prescale", "--sources", str(cat), "--derivatives", str(der), "--variants", str(vfile),
                "--jobs", "2", "--quiet")
    made = int(rerun.stdout.split(" variants made")[0].rsplit(" ", 1)[1])
    skipped = int(rerun.stdout.split(" already there")[0].rsplit(" ", 1)[1])
    assert made + skipped == 30 and skipped >= len([p for p in first if not p.name.startswith(".")])
    finals = sorted(p for p in der.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert len(finals) == 30
    for path in finals:  # every derivative is whole and matches its key
        image = decode(path.read_bytes())
        fmt = path.name.rsplit("f=", 1)[1]
        assert str(image.get("vips-loader")).startswith({"webp": "webpload", "jpeg": "jpegload"}[fmt])
    thumb = next(p for p in finals if p.name == "w=160,h=160,fit=cover,q=75,f=webp")
    assert (decode(thumb.read_bytes()).width, decode(thumb.read_bytes()).height) == (160, 160)
    again = cli("prescale", "--sources", str(cat), "--derivatives", str(der), "--variants", "thumb", "--quiet")
    assert "0 variants made, 10 already there" in again.stdout


def test_prescale_reports_bad_sources(tmp_path: Path) -> None:
    src = tmp_path / "src" / "images"
    src.mkdir(parents=True)
    (src / "ok.jpg").write_bytes(bytes(pyvips.Image.black(900, 900, bands=3).jpegsave_buffer()))
    (src / "bad.jpg").write_bytes(b"nope")
    (tmp_path / "keys.txt").write_text("images/ok.jpg\nimages/bad.jpg\nimages/missing.jpg\n")
    run = cli("prescale", "--sources", str(tmp_path / "src"), "--derivatives", str(tmp_path / "der"),
              "--variants", "w=100,h=0,fit=cover,q=80,f=jpeg", "--keys", str(tmp_path / "keys.txt"), "--quiet",
              check=False)
    assert run.returncode == 1
    assert "1 variants made" in run.stdout and "2 failed" in run.stdout
    assert "images/missing.jpg: source not found" in run.stdout
    bad = cli("prescale", "--sources", str(tmp_path / "src"), "--derivatives", str(tmp_path / "der"),
              "--variants", "w=100,zz=1", check=False)
    assert bad.returncode == 2 and "bad variant" in bad.stderr


def test_serve_usage_errors(tmp_path: Path) -> None:
    run = cli("serve", "--port", "0", "--workers", "2", "--sources", str(tmp_path), check=False)
    assert run.returncode == 2 and "--port 0 needs --workers 1" in run.stderr
    run = cli("serve", "--sources", "ftp://x/y", check=False)
    assert run.returncode == 2 and "unsupported store" in run.stderr  # unreadable input: 2


def test_docs_cover_every_flag() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    docs = (REPO / "docs" / "origin.md").read_text()
    flags = [opt for action in parser._actions for opt in action.option_strings if opt.startswith("--")]
    missing = [f for f in flags if f not in docs and f != "--help"]
    assert not missing, f"docs/origin.md does not mention {missing}"
    for sub in ("sample-catalog", "prescale", "sign", "serve"):
        assert f"edgeproof origin {sub}" in docs


def test_stores_import_light() -> None:
    """The stores (reused by the edge emulator) do not pull in pyvips or aiohttp."""
    code = "import sys, origin, edgeproof.origin.stores; print('pyvips' in sys.modules, 'aiohttp.web' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_serve_refuses_missing_source_folder(tmp_path: Path) -> None:
    run = cli("serve", "--port", "0", "--workers", "1", "--sources", str(tmp_path / "typo"), check=False)
    assert run.returncode == 2 and "does not exist" in run.stderr


def test_catalog_to_s3_then_prescale_from_s3(s3_bucket: str, tmp_path: Path) -> None:
    from edgeproof.origin.catalog import generate_catalog
    from edgeproof.origin.prescale import run_prescale
    from edgeproof.origin.stores import open_store

    result = generate_catalog(f"s3://{s3_bucket}/cat", count=2, images_per_sku=2, seed=3)
    assert result.generated == 2 and result.manifest.endswith("/cat/catalog.txt")
    store = open_store(f"s3://{s3_bucket}/cat")
    keys = store.get("catalog.txt").decode().split()  # type: ignore[union-attr]
    assert keys == catalog_keys(2, 2, 3) and all(store.exists(k) for k in keys)
    summary = run_prescale(sources=f"s3://{s3_bucket}/cat", derivatives=f"s3://{s3_bucket}/der", variants="thumb")
    assert (summary.made, summary.failed) == (2, 0)
    again = run_prescale(sources=f"s3://{s3_bucket}/cat", derivatives=f"s3://{s3_bucket}/der", variants="thumb")
    assert (again.made, again.skipped) == (0, 2)
    derived = open_store(f"s3://{s3_bucket}/der")
    thumb = decode(derived.get(keys[0] + "/w=160,h=160,fit=cover,q=75,f=webp"))  # type: ignore[arg-type]
    assert (thumb.width, thumb.height) == (160, 160)
