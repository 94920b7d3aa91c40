"""Contract tests: ACL tokens and policies, namespaces, agent basics and fault knobs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devstack.nomad import NomadTwin, start_nomad_twin

pytestmark = pytest.mark.timeout(60)

RULES = """
namespace "default" {
  capabilities = ["list-jobs", "read-job", "submit-job"]
  variables {
    path "mesh-controller/*" { capabilities = ["read", "write", "list", "destroy"] }
  }
}
"""


def job(job_id: str) -> dict[str, Any]:
    return {
        "Job": {
            "ID": job_id,
            "TaskGroups": [{"Name": "g", "Count": 0, "Tasks": [{"Name": "t", "Driver": "exec"}]}],
        }
    }


@pytest.fixture
async def acl_twin() -> AsyncIterator[NomadTwin]:
    t = await start_nomad_twin(acl=True, heartbeat_interval=0.2)
    yield t
    await t.stop()


async def test_acl_tokens_policies_and_denials(
    acl_twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    twin = acl_twin
    assert twin.management_token
    mgmt = {"X-Nomad-Token": twin.management_token}
    again = await http.post(f"{twin.url}/v1/acl/bootstrap")
    assert again.status == 400 and "ACL bootstrap already done" in await again.text()
    pol = await http.post(
        f"{twin.url}/v1/acl/policy/ctl", headers=mgmt, json={"Name": "ctl", "Rules": RULES}
    )
    assert pol.status == 200
    tok = await (
        await http.post(
            f"{twin.url}/v1/acl/token",
            headers=mgmt,
            json={"Name": "ctl", "Type": "client", "Policies": ["ctl"]},
        )
    ).json()
    assert tok["Type"] == "client" and tok["Policies"] == ["ctl"]
    ctl = {"Authorization": f"Bearer {tok['SecretID']}"}
    denied: list[tuple[str, str, dict[str, str], Any]] = [
        ("GET", "/v1/jobs", {}, None),
        ("GET", "/v1/jobs", {"X-Nomad-Token": "not-a-token"}, None),
        ("POST", "/v1/jobs?namespace=other", ctl, job("x")),
        ("PUT", "/v1/var/other/path", ctl, {"Items": {"a": "b"}}),
        ("GET", "/v1/acl/tokens", ctl, None),
    ]
    for method, path, headers, body in denied:
        resp = await http.request(method, twin.url + path, headers=headers, json=body)
        assert (resp.status, await resp.text()) == (403, "Permission denied"), (method, path)
    ok = await http.post(f"{twin.url}/v1/jobs", headers=ctl, json=job("web"))
    assert ok.status == 200
    listed = await (await http.get(f"{twin.url}/v1/jobs?namespace=*", headers=ctl)).json()
    assert [j["ID"] for j in listed] == ["web"]
    var = await http.put(
        f"{twin.url}/v1/var/mesh-controller/leader?lock-acquire",
        headers=ctl,
        json={"Lock": {"TTL": "15s"}},
    )
    assert var.status == 200
    me = await (await http.get(f"{twin.url}/v1/acl/token/self", headers=ctl)).json()
    assert me["AccessorID"] == tok["AccessorID"]


async def test_namespaces_agent_and_status(http: aiohttp.ClientSession) -> None:
    twin = await start_nomad_twin(heartbeat_interval=0.2)
    try:
        names = [n["Name"] for n in await (await http.get(f"{twin.url}/v1/namespaces")).json()]
        assert names == ["default"]
        created = await http.post(
            f"{twin.url}/v1/namespace", json={"Name": "prod", "Description": "p"}
        )
        assert created.status == 200
        prod = await (await http.get(f"{twin.url}/v1/namespace/prod")).json()
        assert (prod["Name"], prod["Description"]) == ("prod", "p")
        missing = await http.get(f"{twin.url}/v1/namespace/nope")
        assert missing.status == 404
        me = await (await http.get(f"{twin.url}/v1/agent/self")).json()
        assert me["config"]["Version"]["Version"].startswith("1.10.")
        assert me["member"]["Status"] == "alive"
        assert (await http.get(f"{twin.url}/v1/agent/health")).status == 200
        leader = await (await http.get(f"{twin.url}/v1/status/leader")).json()
        assert leader.endswith(":4647")
    finally:
        await twin.stop()


async def test_fault_knobs_error_ratio_prefix_and_latency(http: aiohttp.ClientSession) -> None:
    twin = await start_nomad_twin(heartbeat_interval=0.2)
    try:
        set_ = await http.post(
            f"{twin.url}/_twin/faults",
            json={"error_ratio": 1.0, "error_status": 503, "error_path_prefix": "/v1/jobs"},
        )
        assert set_.status == 200
        failed = await http.get(f"{twin.url}/v1/jobs")
        assert failed.status == 503
        assert (await http.get(f"{twin.url}/v1/namespaces")).status == 200
        bad = await http.post(f"{twin.url}/_twin/faults", json={"nope": 1})
        assert bad.status == 400
        await http.delete(f"{twin.url}/_twin/faults")
        assert (await http.get(f"{twin.url}/v1/jobs")).status == 200
        twin.faults.latency = 0.2
        loop = asyncio.get_running_loop()
        start = loop.time()
        await http.get(f"{twin.url}/v1/jobs")
        assert loop.time() - start >= 0.2
        await http.post(f"{twin.url}/_twin/faults", json={"event_buffer_size": 5})
        assert twin.state.broker.size == 5
    finally:
        await twin.stop()
