"""The injected shapes of upstreams and allow lists on the strict Nomad twin: Nomad accepts
them, and once it has canonicalised them the planner sees them as up to date (no second
version, no loop) — the static listener ports included."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from devstack.nomad import NomadTwin
from reconcilers.injection.plan import NoOp, NoOpReason, plan_job
from tests.support import paths
from tests.support.twins import NomadTwinFactory

pytestmark = pytest.mark.timeout(60)

CASES = {
    "egress-pure-client-batch": MeshConfig(sidecar_driver="raw_exec"),
    "mtls-allow-upstreams-native-bridge": MeshConfig(),
}


@pytest_asyncio.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=1)


async def register_and_read(twin: NomadTwin, job: dict[str, Any]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{twin.url}/v1/jobs", json={"Job": job}) as resp:
            assert resp.status == 200, await resp.text()
        async with s.get(f"{twin.url}/v1/job/{job['ID']}") as resp:
            stored: dict[str, Any] = await resp.json()
    return stored


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_stored_injected_job_plans_up_to_date(twin: NomadTwin, case: str) -> None:
    job = json.loads((paths.FIXTURES / "jobs" / f"{case}.out.json").read_text())
    stored = await register_and_read(twin, job)
    assert plan_job(stored, CASES[case]) == NoOp(NoOpReason.UP_TO_DATE)
    group = stored["TaskGroups"][0]
    networks = group["Networks"] or []
    labels = [p["Label"] for n in networks for p in n.get("ReservedPorts") or []]
    if group["Networks"][0]["Mode"] == "host":
        assert labels == [keys.upstream_port_label(9001), keys.upstream_port_label(9002)]
    else:
        assert labels == []  # bridge: the listener lives in the namespace, nothing reserved
