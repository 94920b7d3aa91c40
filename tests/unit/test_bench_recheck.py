"""bench.recheck runs end to end (real TLS, the real reconciler and prober) and reports each
max age twice; it refuses to report a run whose re-checks did not end Verified. No speed is
asserted here."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)


def test_it_reports_each_max_age_twice_from_verified_re_checks() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.recheck", "--jobs", "4", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    ages = re.findall(
        r"^recheck max_age=(\S+) jobs=4 rounds=2 .* cpu_ms_per_recheck=\d", run.stdout, re.M
    )
    assert ages == ["0s", "300s", "0s", "300s"]
