"""`python -m devstack up` as a user runs it: env printed, every address answers, Ctrl-C
stops everything it started (no OpenBao left behind)."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import consul
import hvac
import psutil
import pytest

pytestmark = pytest.mark.timeout(90)


def read_until_ready(proc: subprocess.Popen[bytes], deadline: float) -> list[str]:
    """stdout lines up to `devstack ready` (raw reads: no buffer hides lines from select)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        lines = buf.decode().splitlines()
        if "devstack ready" in lines:
            return lines
    raise AssertionError(f"no 'devstack ready' line; got {buf!r}, rc={proc.poll()}")


def get(url: str, token: str | None = None) -> tuple[int, object]:
    req = urllib.request.Request(url)  # noqa: S310 - loopback http
    if token:
        req.add_header("X-Nomad-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_up_prints_env_serves_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmd = [sys.executable, "-m", "devstack", "up", "--nodes", "2", "--acl"]
    cmd += ["--data-dir", str(tmp_path / "data")]
    stderr = (tmp_path / "stderr").open("wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, bufsize=0)
    try:
        lines = read_until_ready(proc, time.monotonic() + 60)
        exports = [line for line in lines if line.startswith("export ")]
        assert lines[-1] == "devstack ready"
        assert lines == [*exports, "devstack ready"]
        env = dict(re.fullmatch(r"export ([A-Z_]+)=(\S+)", line).groups() for line in exports)  # type: ignore[union-attr]
        assert list(env) == [
            "NOMAD_ADDR",
            "CONSUL_HTTP_ADDR",
            "VAULT_ADDR",
            "VAULT_TOKEN",
            "NOMAD_TOKEN",
        ]
        assert re.fullmatch(r"127\.0\.0\.1:\d+", env["CONSUL_HTTP_ADDR"])  # no scheme, like Consul

        assert get(f"{env['NOMAD_ADDR']}/v1/jobs", env["NOMAD_TOKEN"]) == (200, [])
        assert get(f"{env['NOMAD_ADDR']}/v1/jobs")[0] == 403

        monkeypatch.setenv("CONSUL_HTTP_ADDR", env["CONSUL_HTTP_ADDR"])
        index, names = consul.Consul().catalog.services()
        assert names == {"consul": []}
        assert int(index) >= 1

        vault = hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"])
        assert vault.is_authenticated()

        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("bao" in c.name() for c in children), [c.name() for c in children]

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        _, alive = psutil.wait_procs(children, timeout=5)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
        print((tmp_path / "stderr").read_text())  # shown by pytest when the test fails
