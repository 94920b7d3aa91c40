"""Fidelity: every response shape the twin serves, checked against Nomad's struct tables.

The tables in tests/fixtures/nomad/struct_fields.json are copied from the reference
report (Go declaration order, omitempty rules); doc samples are old, so they are not
the yardstick. A missing, extra, misnamed or misordered key fails, and so does a zero
value in a struct whose fields are all omitempty.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devstack.nomad import NomadTwin, start_nomad_twin
from tests.support import paths
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)
TABLES = json.loads((paths.FIXTURES / "nomad" / "struct_fields.json").read_text())["structs"]
LISTS = {
    ("Job", "TaskGroups"): "TaskGroup",
    ("TaskGroup", "Tasks"): "Task",
    ("Task", "Templates"): "Template",
    ("TaskGroup", "Services"): "Service",
    ("Task", "Services"): "Service",
    ("Service", "Checks"): "ServiceCheck",
    ("TaskGroup", "Networks"): "NetworkResource",
    ("NetworkResource", "DynamicPorts"): "Port",
    ("NetworkResource", "ReservedPorts"): "Port",
    ("Job", "Constraints"): "Constraint",
    ("TaskGroup", "Constraints"): "Constraint",
    ("TaskState", "Events"): "TaskEvent",
    ("AllocatedSharedResources", "Ports"): "AllocatedPortMapping",
    ("AllocatedSharedResources", "Networks"): "NetworkResource",
    ("JobVersionsResponse", "Versions"): "Job",
}
MAPS = {
    ("Allocation", "TaskStates"): "TaskState",
    ("AllocListStub", "TaskStates"): "TaskState",
    ("Deployment", "TaskGroups"): "DeploymentState",
    ("JobSummary", "Summary"): "TaskGroupSummary",
    ("AllocatedResources", "Tasks"): "AllocatedTaskResources",
}
EVENT_KEYS = ["Topic", "Type", "Key", "Namespace", "FilterKeys", "Index", "Payload"]


def fields_of(struct: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in TABLES[struct]["fields"]:
        if "embedded" in f:
            out.extend(fields_of(f["embedded"]))
        else:
            out.append(f)
    return out


def is_zero(value: Any) -> bool:
    return value in (None, False, "", 0, [], {}) and value is not True


def check(struct: str, obj: Any, path: str = "") -> None:
    path = path or struct
    assert isinstance(obj, dict), f"{path}: expected object, got {obj!r}"
    fields = fields_of(struct)
    names = [f["name"] for f in fields]
    keys = list(obj)
    if TABLES[struct]["all_omitempty"]:
        assert [n for n in names if n in obj] == keys, f"{path}: keys {keys} not in {names}"
        zeros = [k for k, v in obj.items() if is_zero(v)]
        assert not zeros, f"{path}: omitempty struct carries zero fields {zeros}"
    else:
        expected = [f["name"] for f in fields if not (f["omitempty"] and f["name"] not in obj)]
        assert keys == expected, f"{path}: keys {keys} != {expected}"
    for f in fields:
        value = obj.get(f["name"])
        if value is None:
            continue
        here = f"{path}.{f['name']}"
        sub = re.match(r"object\((\w+)\)", f["type"])
        if sub and sub.group(1) in TABLES:
            check(sub.group(1), value, here)
        elif (struct, f["name"]) in LISTS:
            for i, item in enumerate(value):
                check(LISTS[(struct, f["name"])], item, f"{here}[{i}]")
        elif (struct, f["name"]) in MAPS:
            for key, item in value.items():
                check(MAPS[(struct, f["name"])], item, f"{here}[{key}]")


def job_body() -> dict[str, Any]:
    task = {
        "Name": "srv",
        "Driver": "exec",
        "Vault": {},
        "Templates": [{"DestPath": "secrets/c.pem", "EmbeddedTmpl": "x", "ChangeMode": "signal"}],
        "Services": [
            {"PortLabel": "http", "Checks": [{"Type": "tcp", "Interval": 10**9, "Timeout": 10**9}]}
        ],
    }
    return {
        "Job": {
            "ID": "web",
            "Meta": {"a": "b"},
            "TaskGroups": [
                {
                    "Name": "app",
                    "Count": 2,
                    # No Consul here: with the default "checks" the tcp check is never seen.
                    "Update": {"MinHealthyTime": 0, "HealthCheck": "task_states"},
                    "Networks": [
                        {
                            "Mode": "host",
                            "DynamicPorts": [{"Label": "http"}],
                            "ReservedPorts": [{"Label": "lb", "Value": 24999}],
                        }
                    ],
                    "Services": [{"PortLabel": "http"}],
                    "Tasks": [task],
                }
            ],
        }
    }


@pytest.fixture
async def world() -> AsyncIterator[tuple[NomadTwin, aiohttp.ClientSession]]:
    twin = await start_nomad_twin(heartbeat_interval=0.2, nodes=2)
    async with aiohttp.ClientSession() as http:
        yield twin, http
    await twin.stop()


async def get(http: aiohttp.ClientSession, url: str) -> Any:
    resp = await http.get(url)
    assert resp.status == 200, (url, await resp.text())
    return await resp.json()


async def test_job_endpoints_match_struct_tables(
    world: tuple[NomadTwin, aiohttp.ClientSession],
) -> None:
    twin, http = world
    reg = await (await http.post(f"{twin.url}/v1/jobs", json=job_body())).json()
    check("JobRegisterResponse", reg)

    async def deployed() -> bool:
        deployment = await get(http, f"{twin.url}/v1/job/web/deployment") or {}
        return bool(deployment.get("Status") == "successful")

    await eventually(deployed, every=0.02, what="deployment successful")
    check("Job", await get(http, f"{twin.url}/v1/job/web"))
    for stub in await get(http, f"{twin.url}/v1/jobs?meta=true"):
        check("JobListStub", stub)
    check("JobSummary", await get(http, f"{twin.url}/v1/job/web/summary"))
    check("JobVersionsResponse", await get(http, f"{twin.url}/v1/job/web/versions"))
    check("Deployment", await get(http, f"{twin.url}/v1/job/web/deployment"))
    for ev in await get(http, f"{twin.url}/v1/job/web/evaluations"):
        check("Evaluation", ev)
    stubs = await get(http, f"{twin.url}/v1/job/web/allocations")
    for stub in stubs:
        check("AllocListStub", stub)
    for stub in await get(http, f"{twin.url}/v1/allocations?resources=true"):
        check("AllocListStub", stub)
        assert "AllocatedResources" in stub
    full = await get(http, f"{twin.url}/v1/allocation/{stubs[0]['ID']}")
    check("Allocation", full)
    check("Job", full["Job"])
    plan = await (
        await http.post(f"{twin.url}/v1/job/web/plan", json={**job_body(), "Diff": True})
    ).json()
    check("JobPlanResponse", plan)
    dereg = await (await http.delete(f"{twin.url}/v1/job/web")).json()
    check("JobDeregisterResponse", dereg)


async def test_variable_shapes_match_struct_tables(
    world: tuple[NomadTwin, aiohttp.ClientSession],
) -> None:
    twin, http = world
    put = await (await http.put(f"{twin.url}/v1/var/a/b", json={"Items": {"k": "v"}})).json()
    check("VariableDecrypted", put)
    for meta in await get(http, f"{twin.url}/v1/vars"):
        check("VariableMetadata", meta)
    locked = await (await http.put(f"{twin.url}/v1/var/a/b?lock-acquire", json={})).json()
    check("VariableDecrypted", {k: v for k, v in locked.items() if k != "Lock"})
    assert list(locked["Lock"]) == ["TTL", "LockDelay", "ID"]  # custom MarshalJSON order


async def test_event_frames_match_struct_tables(
    world: tuple[NomadTwin, aiohttp.ClientSession],
) -> None:
    twin, http = world
    await http.post(f"{twin.url}/v1/jobs", json=job_body())
    seen: set[str] = set()
    async with http.get(f"{twin.url}/v1/event/stream?topic=*") as stream:
        async with asyncio.timeout(10):
            while seen != {"Job", "Evaluation", "Allocation", "Deployment"}:
                frame = json.loads(await stream.content.readline())
                if not frame:
                    continue
                assert list(frame) == ["Index", "Events"] and frame["Events"]
                for event in frame["Events"]:
                    assert list(event) == EVENT_KEYS
                    topic = event["Topic"]
                    seen.add(topic)
                    assert list(event["Payload"]) == [topic]
                    check(topic, event["Payload"][topic])
                    if topic == "Allocation":
                        assert "Job" not in event["Payload"][topic]
