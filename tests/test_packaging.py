"""The wheel holds one top-level package, edgeproof, mapped from the repository's folders."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return zipfile.ZipFile(next(out.glob("edgeproof-*.whl")))


def test_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"edgeproof"}
    names = set(wheel.namelist())
    for module in ("edgeproof/analytics/replay.py", "edgeproof/origin/server.py", "edgeproof/edge/edge.py",
                   "edgeproof/loadtest/locustfile.py", "edgeproof/rehearsal/run.py", "edgeproof/cloudfront.py"):
        assert module in names
    for data in ("edgeproof/data/regions.toml", "edgeproof/analytics/data/prices.toml",
                 "edgeproof/analytics/strategies/builtin/aggressive.toml",
                 "edgeproof/analytics/strategies/viewer_request.js", "edgeproof/rehearsal/scenarios/default.toml",
                 "edgeproof/loadtest/scenarios/spike.toml"):
        assert data in names


def test_extras_split_the_dependencies(wheel: zipfile.ZipFile) -> None:
    meta = wheel.read(next(n for n in wheel.namelist() if n.endswith("dist-info/METADATA"))).decode()
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    for heavy in ("locust", "aiohttp", "pyvips", "pandas"):
        assert not any(heavy in r for r in core), heavy
    assert any("locust" in r and 'extra == "load"' in r for r in requires)
    assert any("pyvips" in r and 'extra == "origin"' in r for r in requires)


_BLOCK = """
import sys
class Absent:  # as if the extras were not installed: these distributions cannot be imported
    names = {"aiohttp", "pyvips", "locust", "gevent", "prometheus_client", "pandas"}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
from edgeproof.cli import main
sys.exit(main(sys.argv[1:]))
"""


def core(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _BLOCK, *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def test_core_commands_work_without_the_extras(samples_dir: Path, tmp_path: Path) -> None:
    """`pip install edgeproof` (no extras) gives working `logs` and `strategies` commands."""
    out = core("logs", "summarize", str(samples_dir), "--json")
    assert out.returncode == 0, out.stderr
    synth = core("logs", "synth", "--out", str(tmp_path), "--days", "1", "--requests-per-hour", "50")
    assert synth.returncode == 0, synth.stderr
    compare = core("strategies", "compare", "--logs", str(tmp_path), "--target", "0")
    assert compare.returncode == 0, compare.stderr
    assert core("strategies", "export-cf-function", "aggressive").returncode == 0


def test_a_command_without_its_extra_names_the_extra(tmp_path: Path) -> None:
    """Exit 2 (not an internal error) and the pip line for the missing extra."""
    for args, extra in ((["edge", "serve", "--help"], "origin"),
                        (["origin", "sample-catalog", "--out", str(tmp_path), "--count", "1"], "origin")):
        out = core(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert f"pip install 'edgeproof[{extra}]'" in out.stderr and "Traceback" not in out.stderr


def test_every_kernel_module_is_under_the_kernel_contract() -> None:
    """A new module in edgeproof/ (the kernel) must be added to the import contract that keeps the kernel
    from importing the layers above it."""
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    kernel = next(c for c in contracts if c["name"].startswith("the kernel"))
    modules = {f"edgeproof.{p.stem}" for p in (REPO / "edgeproof").glob("*.py")} - {"edgeproof.__init__",
                                                                                    "edgeproof.cli"}
    assert modules == set(kernel["source_modules"])
