"""`python -m devstack up --no-consul`: a cluster that uses only Nomad's own service discovery.

The env names no Consul, `devstack ready` is still printed, a `provider = "nomad"` service of a
running job is found in the Nomad twin's catalog, and Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.timeout(90)


def ready_lines(proc: subprocess.Popen[bytes], within: float) -> list[str]:
    """stdout lines up to `devstack ready` (raw reads, so no buffer hides a line)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout.fileno(), selectors.EVENT_READ)
    deadline, buf = time.monotonic() + within, b""
    while time.monotonic() < deadline:
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            break
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        if "devstack ready" in buf.decode().splitlines():
            return buf.decode().splitlines()
    raise AssertionError(f"no 'devstack ready' line; got {buf!r}, rc={proc.poll()}")


def call(url: str, body: object | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="PUT" if data else "GET")  # noqa: S310
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback http
        return json.loads(r.read())


def test_up_without_consul_serves_nomads_catalog(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "devstack", "up", "--nodes", "1", "--no-consul"]
    stderr = (tmp_path / "stderr").open("wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, bufsize=0)
    try:
        lines = ready_lines(proc, 60)
        assert lines[-1] == "devstack ready"
        env = dict(re.fullmatch(r"export ([A-Z_]+)=(\S+)", ln).groups() for ln in lines[:-1])  # type: ignore[union-attr]
        assert list(env) == ["NOMAD_ADDR", "VAULT_ADDR", "VAULT_TOKEN"]  # no CONSUL_HTTP_ADDR

        nomad = env["NOMAD_ADDR"]
        job = {
            "ID": "native",
            "TaskGroups": [
                {
                    "Name": "app",
                    "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
                    "Services": [{"Name": "native", "PortLabel": "http", "Provider": "nomad"}],
                    "Tasks": [{"Name": "srv", "Driver": "docker", "Config": {"image": "x"}}],
                }
            ],
        }
        call(f"{nomad}/v1/jobs", {"Job": job})
        deadline = time.monotonic() + 15
        found: object = []
        while time.monotonic() < deadline and not found:
            found = call(f"{nomad}/v1/service/native")
            time.sleep(0.1)
        assert isinstance(found, list) and len(found) == 1, found
        assert found[0]["JobID"] == "native"

        children = psutil.Process(proc.pid).children(recursive=True)
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
