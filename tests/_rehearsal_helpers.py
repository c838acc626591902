"""A small rehearsal run once per test session (shared by test_rehearse.py and test_notebooks.py).

The scenario is deliberately bad: the ``passthrough`` strategy behind noisy front-end URLs, so its
hit-rate gate must fail while the replay shows that a normalizing strategy would have passed.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

BAD_SCENARIO = """
name = "test-bad-strategy"
description = "passthrough behind noisy URLs (must fail its hit-rate gate)"
strategy = "passthrough"
duration = 20
peak_rps = 30
origin_gates = ["repeat_transform_rate <= 0.5", "origin_503 <= 1000"]

[stack]
pops = 2
origin_processes = 1
origin_workers = 1
catalog_images = 6

[[events]]
at = "peak"
action = "scale_out"
count = 1

[loadtest]
seed = 3

[loadtest.catalog]
zipf = 1.2

[loadtest.catalog.roles.thumb]
share = 1.0
widths = [320]
slot = 0.5
quality = 75

[loadtest.clients]
population = 500
pops = 2

[loadtest.clients.browsers.safari]
share = 1.0
accept = "image/webp,image/png,image/*;q=0.8"
user_agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 15_8 like Mac OS X) Version/15.6 Mobile/15E148 Safari/604.1"

[loadtest.noise]
shuffle = 0.8
aliases = 0.5
upper_case = 0.2
tracking = 0.5

[loadtest.promotion]
new_skus = 0
share = 0.0

[loadtest.gates]
rules = ["hit_rate >= 0.96", "error_rate <= 0.05"]
scope = "spike"
"""


@lru_cache(maxsize=1)
def small_rehearsal() -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run the bad-strategy rehearsal once; returns its output folder and the finished process."""
    base = Path(tempfile.mkdtemp(prefix="edgeproof-rehearsal-"))
    atexit.register(shutil.rmtree, base, True)
    scenario = base / "bad.toml"
    scenario.write_text(BAD_SCENARIO)
    out = base / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "edgeproof.cli", "rehearse", "--scenario", str(scenario), "--out", str(out),
         "--cache-dir", str(base / "cache")],
        capture_output=True, text=True, timeout=240,
    )
    return out, proc
