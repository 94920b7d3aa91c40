"""Debian's Prometheus for the tests: promtool on the rule files, and a real server on loopback.

The binaries come from Debian's ``prometheus`` package (``make install`` runs the Makefile's
``prometheus-check``). A test that needs them installs them the same way when they are missing
and it runs as root, and fails otherwise: never a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

RULES_DIR = Path(__file__).resolve().parents[2] / "helm-less-deploy" / "prometheus"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.test.yml"))


def binary(name: str) -> str:
    """The path of ``promtool`` or ``prometheus``, installed with apt-get if root may."""
    found = shutil.which(name)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
            check=True,
            env=env,
            timeout=600,
        )
        found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing; run `make install` or: sudo apt-get install prometheus")
    return found


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Prometheus:
    """A running server; ``api`` answers ``/api/v1/<path>`` as the decoded ``data``."""

    url: str
    process: asyncio.subprocess.Process
    http: aiohttp.ClientSession

    async def api(self, path: str, **params: str) -> Any:
        async with self.http.get(f"{self.url}/api/v1/{path}", params=params) as resp:
            body = await resp.json()
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result


@contextlib.asynccontextmanager
async def running_prometheus(
    workdir: Path, targets: Sequence[str], rule_files: Sequence[Path], *, interval: str = "1s"
) -> AsyncIterator[Prometheus]:
    """Prometheus on a free loopback port scraping ``targets`` (job ``nomad-tls-mesh``) and
    evaluating ``rule_files``, with its config and TSDB under ``workdir``. On exit it is
    stopped, and the exit proves it is gone. Async, so a controller on the same event loop
    keeps answering the scrapes."""
    config = workdir / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": interval, "evaluation_interval": interval},
                "rule_files": [str(p) for p in rule_files],
                "scrape_configs": [
                    {"job_name": "nomad-tls-mesh", "static_configs": [{"targets": list(targets)}]}
                ],
            }
        )
    )
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            server = Prometheus(url=f"http://127.0.0.1:{port}", process=process, http=http)
            await _until_ready(server, log_path)
            yield server
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await asyncio.wait_for(process.wait(), 5)
        assert process.returncode is not None  # reaped: no Prometheus is left behind


async def _until_ready(server: Prometheus, log: Path, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.process.returncode is not None:
            text = await asyncio.to_thread(log.read_text)
            pytest.fail(f"prometheus exited {server.process.returncode}: {text}")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with server.http.get(f"{server.url}/-/ready") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    text = await asyncio.to_thread(log.read_text)
    pytest.fail(f"prometheus not ready within {within}s: {text}")
