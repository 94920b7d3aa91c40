"""Contract tests: Nomad-native checks run for real by the twin's client, pinned to Nomad 1.10.5:

- ``client/allocrunner/checks_hook.go``: a ``pending`` stub ``nomad: waiting to run`` per check
  when the allocation starts, the first probe after half the interval, results purged at
  ``PreKill``;
- ``client/serviceregistration/checks/client.go``: ``checkHTTP`` (200 → ``nomad: http ok``,
  other codes < 400 → success with the body as output, >= 400 → failure with the body,
  transport errors → ``nomad: <url.Error>``; Method, Header, Body, ``Protocol = "https"`` and
  ``TLSSkipVerify``; ``TLSServerName`` is not read), ``checkTCP`` (``nomad: tcp ok``, the dial
  error as output), the ``User-Agent`` of ``helper/useragent``;
- ``structs.CheckQueryResult`` (field order, omitempty StatusCode/Task) and
  ``structs.NomadCheckID``; ``GetCheckMode`` (``on_update = "ignore"`` → readiness);
- ``client/alloc_endpoint.go`` ``Allocations.Checks`` (``null`` without results, 404
  ``Unknown allocation``);
- ``client/allochealth/tracker.go`` ``watchNomadEvents``: deployment health follows the results
  (readiness failures do not count, a failing healthiness check keeps the alloc unhealthy).
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nomad
import pytest
from aiohttp import web

from devstack.nomad import NomadTwin
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually
from tests.support.x509 import issue, server_context

pytestmark = pytest.mark.timeout(60)
S = 1_000_000_000
RESULT_KEYS = ["ID", "Mode", "Status", "StatusCode", "Output", "Timestamp", "Group"]


def nomad_check_id(alloc_id: str, group: str, c: dict[str, Any]) -> str:
    """structs/checks.go NomadCheckID, written from the source for this pin: md5 over the
    strings in order, durations as little-endian int64 (hashDuration), the bool as text."""
    h = hashlib.md5(usedforsecurity=False)
    for part in (alloc_id, group, c.get("TaskName"), c["Name"], c["Type"], c.get("PortLabel")):
        h.update((part or "").encode())
    h.update((c.get("OnUpdate") or "").encode() + (c.get("AddressMode") or "").encode())
    h.update(struct.pack("<q", c["Interval"]) + struct.pack("<q", c["Timeout"]))
    for part in (c.get("Protocol"), c.get("Path"), c.get("Method")):
        h.update((part or "").encode())
    h.update(b"true" if c.get("TLSSkipVerify") else b"false")
    return h.hexdigest()


class Probed:
    """A real HTTP and HTTPS endpoint on the node's address that records what the checks send."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.plain = 0
        self.tls = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.method, request.path, dict(request.headers), body))
        if request.path == "/broken":
            return web.Response(status=503, text="down")
        if request.path == "/echo":
            probe = request.headers.get("X-Probe")
            return web.Response(status=201, text=f"{request.method} {probe} {body.decode()}")
        return web.Response(text="fine")


@pytest.fixture
async def probed(twin: NomadTwin, tmp_path: Path) -> AsyncIterator[Probed]:
    state = Probed()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host = twin.nodes[0].address
    plain = web.TCPSite(runner, host, 0)
    await plain.start()
    leaf = issue("probed", None, ca=False, sans=("probed",))
    tls = web.TCPSite(runner, host, 0, ssl_context=server_context(tmp_path, leaf, []))
    await tls.start()
    state.plain = plain._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.tls = tls._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state
    await runner.cleanup()


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=1)


def check(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"Name": name, "Type": kind, "Interval": S, "Timeout": S, **extra}


def checks_job(job_id: str, probed: Probed, checks: list[dict[str, Any]], **group: Any) -> Any:
    return {
        "Job": {
            "ID": job_id,
            "Type": "service",
            "TaskGroups": [
                {
                    "Name": "app",
                    "Networks": [
                        {
                            "ReservedPorts": [
                                {"Label": "plain", "Value": probed.plain},
                                {"Label": "tls", "Value": probed.tls},
                            ],
                            "DynamicPorts": [{"Label": "dead"}],
                        }
                    ],
                    "Services": [
                        {
                            "Name": "api",
                            "PortLabel": "plain",
                            "Provider": "nomad",
                            "Checks": checks,
                        }
                    ],
                    "Tasks": [{"Name": "srv", "Driver": "docker", "Config": {"image": "x"}}],
                    **group,
                }
            ],
        }
    }


def register(twin: NomadTwin, body: Any) -> None:
    host, port = twin.url.removeprefix("http://").split(":")
    nomad.Nomad(host=host, port=int(port), timeout=10).job.register_job(body["Job"]["ID"], body)


async def alloc_of(twin: NomadTwin, job_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((a for a in twin.state.allocs.values() if a["JobID"] == job_id), None)

    return await eventually(find, what=f"an alloc of {job_id}")


async def test_checks_run_and_are_served_as_the_client_shapes_them(
    twin: NomadTwin, probed: Probed, http: aiohttp.ClientSession
) -> None:
    checks = [
        check("ok", "http", Path="/health"),
        check(
            "echo",
            "http",
            Path="/echo",
            Method="POST",
            Header={"X-Probe": ["a"]},
            Body="ping",
        ),
        check("broken", "http", Path="/broken", OnUpdate="ignore"),
        check("tcp", "tcp"),
        check("refused", "tcp", PortLabel="dead"),
        check("tls-skip", "http", PortLabel="tls", Protocol="https", TLSSkipVerify=True),
        check("tls-verify", "http", PortLabel="tls", Protocol="https", TLSServerName="probed"),
        check("slow", "tcp", Interval=3600 * S),
    ]
    started = int(time.time())
    await asyncio.to_thread(register, twin, checks_job("chk", probed, checks))
    alloc = await alloc_of(twin, "chk")
    url = f"{twin.url}/v1/client/allocation/{alloc['ID']}/checks"
    dead = next(
        p["Value"] for p in alloc["AllocatedResources"]["Shared"]["Ports"] if p["Label"] == "dead"
    )
    host = twin.nodes[0].address

    async def settled() -> dict[str, Any] | None:
        async with http.get(url) as r:
            got = await r.json()
        ran = [v for v in (got or {}).values() if v["Status"] != "pending"]
        return got if len(ran) == len(checks) - 1 else None

    results = await eventually(settled, within=10, what="every check but slow has run")
    job = twin.state.jobs[("default", "chk")]
    canon = {c["Name"]: c for c in job["TaskGroups"][0]["Services"][0]["Checks"]}
    by_name = {r["Check"]: r for r in results.values()}
    assert set(results) == {nomad_check_id(alloc["ID"], "app", c) for c in canon.values()}
    for cid, r in results.items():
        assert r["ID"] == cid
        want = [k for k in RESULT_KEYS if k != "StatusCode" or "StatusCode" in r]
        assert list(r) == [*want, "Service", "Check"]  # Task omitted: a group service
        assert (r["Group"], r["Service"]) == (alloc["Name"], "api")  # Group is the alloc name
        assert r["Timestamp"] >= started

    def view(name: str) -> tuple[Any, ...]:
        r = by_name[name]
        return r["Mode"], r["Status"], r.get("StatusCode"), r["Output"]

    assert view("ok") == ("healthiness", "success", 200, "nomad: http ok")
    assert view("echo") == ("healthiness", "success", 201, "POST a ping")
    assert view("broken") == ("readiness", "failure", 503, "down")
    assert view("tcp") == ("healthiness", "success", None, "nomad: tcp ok")
    assert view("refused") == (
        "healthiness",
        "failure",
        None,
        f"dial tcp {host}:{dead}: connect: connection refused",
    )
    assert view("tls-skip") == ("healthiness", "success", 200, "nomad: http ok")
    assert view("tls-verify") == (
        "healthiness",
        "failure",
        None,
        f'nomad: Get "https://{host}:{probed.tls}": tls: failed to verify certificate: '
        "x509: certificate signed by unknown authority",
    )
    assert view("slow") == ("healthiness", "pending", None, "nomad: waiting to run")

    method, path, headers, _ = next(r for r in probed.requests if r[1] == "/health")
    assert (method, path) == ("GET", "/health")
    assert headers["User-Agent"] == (
        "Nomad/1.10.5 (+https://developer.hashicorp.com/nomad/; go1.24.7)"
    )

    # PreKill purges the results: the store then has none for the alloc (a nil map: null)
    await asyncio.to_thread(
        lambda: nomad.Nomad(host=host_of(twin), port=port_of(twin), timeout=10).job.deregister_job(
            "chk"
        )
    )

    async def purged() -> bool:
        async with http.get(url) as r:
            return r.status == 200 and await r.read() == b"null"

    await eventually(purged, what="results purged")
    async with http.get(f"{twin.url}/v1/client/allocation/nope/checks") as r:
        assert (r.status, await r.text()) == (404, 'Unknown allocation "nope"')


def host_of(twin: NomadTwin) -> str:
    return twin.url.removeprefix("http://").split(":")[0]


def port_of(twin: NomadTwin) -> int:
    return int(twin.url.rsplit(":", 1)[1])


async def test_deployment_health_follows_native_check_results(
    twin: NomadTwin, probed: Probed
) -> None:
    update = {
        "MaxParallel": 1,
        "HealthCheck": "checks",
        "MinHealthyTime": S // 2,
        "HealthyDeadline": 4 * S,
        "ProgressDeadline": 30 * S,
    }
    good = [
        check("ok", "http", Path="/health"),
        check("ready", "http", Path="/broken", OnUpdate="ignore"),
    ]
    bad = [check("refused", "tcp", PortLabel="dead")]
    await asyncio.to_thread(register, twin, checks_job("good", probed, good, Update=update))
    # "bad" cannot reserve good's static ports on the one node (Nomad would not place it):
    # its ports are dynamic, and its one check fails on the port nothing listens on.
    dynamic = [{"DynamicPorts": [{"Label": label} for label in ("plain", "tls", "dead")]}]
    bad_job = checks_job("bad", probed, bad, Update=update, Networks=dynamic)
    await asyncio.to_thread(register, twin, bad_job)

    def health(job_id: str) -> bool | None:
        for a in twin.state.allocs.values():
            if a["JobID"] == job_id:
                return (a.get("DeploymentStatus") or {}).get("Healthy")
        return None

    await eventually(lambda: health("good") is True, within=10, what="good is healthy")
    # the failing healthiness check holds the alloc back until HealthyDeadline passes
    assert health("bad") is None
    await eventually(lambda: health("bad") is False, within=10, what="bad is unhealthy")
