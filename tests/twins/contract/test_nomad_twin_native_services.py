"""Contract tests: the Nomad twin's native service catalog (``provider = "nomad"``), pinned to
Nomad 1.10.5's source:

- routes and texts: ``command/agent/service_registration_endpoint.go``
  (``ServiceRegistrationListRequest``, ``ServiceRegistrationRequest``: ``missing service name``,
  ``missing service id``, ``invalid URI``, ``Invalid method``), ``alloc_endpoint.go``
  (``allocServiceRegistrations``: ``allocation not found``);
- RPC semantics: ``nomad/service_registration_endpoint.go`` (``List`` grouped by namespace,
  ``GetService`` + ``choose`` and ``ErrMalformedChooseParameter``, ``DeleteByID`` and the FSM's
  ``service registration not found``; ACLs via ``AllowServiceRegistrationReadList``);
- the registration itself: ``client/serviceregistration/nsd/nsd.go``
  ``generateNomadServiceRegistration`` (ID ``_nomad-task-<alloc>-<group-<g>|task>-<svc>-<port>``,
  host IP + allocated port), ``structs.ServiceRegistration`` field order;
- events: ``nomad/state/events.go`` (topic ``Service``, types ``ServiceRegistration`` /
  ``ServiceDeregistration``, FilterKeys JobID and service name, payload ``{"Service": ...}``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import nomad
import pytest

from devstack.nomad import NomadTwin
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)
REG_KEYS = [
    "ID",
    "ServiceName",
    "Namespace",
    "NodeID",
    "Datacenter",
    "JobID",
    "AllocID",
    "Tags",
    "Address",
    "Port",
    "CreateIndex",
    "ModifyIndex",
]


def native_job(job_id: str, count: int = 1) -> dict[str, Any]:
    """A group service and a task service, both in Nomad's catalog (simulated driver)."""
    return {
        "ID": job_id,
        "Type": "service",
        "TaskGroups": [
            {
                "Name": "app",
                "Count": count,
                "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
                "Services": [
                    {
                        "Name": "${JOB}-web",
                        "PortLabel": "http",
                        "Provider": "nomad",
                        "Tags": ["tls", "v1"],
                    }
                ],
                "Tasks": [
                    {
                        "Name": "srv",
                        "Driver": "docker",
                        "Config": {"image": "x"},
                        "Services": [{"Name": "admin", "PortLabel": "http", "Provider": "nomad"}],
                    }
                ],
            }
        ],
    }


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=1)


def client(twin: NomadTwin, token: str | None = None) -> nomad.Nomad:
    host, port = twin.url.removeprefix("http://").split(":")
    return nomad.Nomad(host=host, port=int(port), token=token, timeout=10)


async def running_alloc(twin: NomadTwin, job_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for a in twin.state.allocs.values():
            if a["JobID"] == job_id and a["ClientStatus"] == "running":
                return a
        return None

    return await eventually(find, within=10, what=f"a running alloc of {job_id}")


async def test_registrations_are_nomads_shape_and_lists_group_by_namespace(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await asyncio.to_thread(client(twin).job.register_job, "shop", {"Job": native_job("shop")})
    alloc = await running_alloc(twin, "shop")
    port = alloc["AllocatedResources"]["Shared"]["Ports"][0]
    await eventually(lambda: len(twin.state.services) == 2, what="two registrations")

    async with http.get(f"{twin.url}/v1/service/shop-web") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        index = int(r.headers["X-Nomad-Index"])
        (reg,) = await r.json()
    assert list(reg) == REG_KEYS
    assert reg["ID"] == f"_nomad-task-{alloc['ID']}-group-app-shop-web-http"
    assert reg["ServiceName"] == "shop-web"  # ${JOB} resolved by the server
    assert (reg["Namespace"], reg["NodeID"], reg["Datacenter"]) == (
        "default",
        alloc["NodeID"],
        "dc1",
    )
    assert (reg["JobID"], reg["AllocID"]) == ("shop", alloc["ID"])
    assert reg["Tags"] == ["tls", "v1"]
    assert (reg["Address"], reg["Port"]) == (port["HostIP"], port["Value"])
    assert reg["Address"] == twin.nodes[0].address
    assert reg["CreateIndex"] == reg["ModifyIndex"] <= index

    async with http.get(f"{twin.url}/v1/service/admin") as r:
        (admin,) = await r.json()
    assert admin["ID"] == f"_nomad-task-{alloc['ID']}-srv-admin-http"  # a task's service

    async with http.get(f"{twin.url}/v1/services") as r:
        listed = await r.json()
    assert listed == [
        {
            "Namespace": "default",
            "Services": [
                {"ServiceName": "admin", "Tags": []},
                {"ServiceName": "shop-web", "Tags": ["tls", "v1"]},
            ],
        }
    ]
    async with http.get(f"{twin.url}/v1/services?namespace=*") as r:
        assert await r.json() == listed
    async with http.get(f"{twin.url}/v1/services?namespace=other") as r:
        assert (r.status, await r.json()) == (200, [])
    async with http.get(f"{twin.url}/v1/service/nope") as r:
        assert (r.status, await r.json()) == (200, [])

    async with http.get(f"{twin.url}/v1/allocation/{alloc['ID']}/services") as r:
        by_alloc = await r.json()
    assert [s["ServiceName"] for s in by_alloc] == ["shop-web", "admin"]  # by ID: group-app < srv
    async with http.get(f"{twin.url}/v1/allocation/{alloc['ID']}/services?namespace=x") as r:
        assert (r.status, await r.text()) == (404, "allocation not found")

    # a stop deregisters every service of the allocation
    await asyncio.to_thread(client(twin).job.deregister_job, "shop")
    await eventually(lambda: not twin.state.services, what="deregistered")
    async with http.get(f"{twin.url}/v1/services") as r:
        assert await r.json() == []


async def test_service_events_carry_nomads_types_keys_and_payload(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    url = f"{twin.url}/v1/event/stream?topic=Service"
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=30)) as stream:
        await asyncio.to_thread(client(twin).job.register_job, "ev", {"Job": native_job("ev")})
        await running_alloc(twin, "ev")
        await eventually(lambda: len(twin.state.services) == 2, what="registered")
        await asyncio.to_thread(client(twin).job.deregister_job, "ev")
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while len(events) < 4:
                frame = json.loads(await stream.content.readline())
                events += frame.get("Events") or []
    assert [e["Topic"] for e in events] == ["Service"] * 4
    assert [e["Type"] for e in events][:2] == ["ServiceRegistration"] * 2
    assert sorted(e["Type"] for e in events[2:]) == ["ServiceDeregistration"] * 2
    web = next(e for e in events if e["Payload"]["Service"]["ServiceName"] == "ev-web")
    assert list(web) == ["Topic", "Type", "Key", "Namespace", "FilterKeys", "Index", "Payload"]
    assert web["Key"] == web["Payload"]["Service"]["ID"]
    assert web["FilterKeys"] == ["ev", "ev-web"]
    assert web["Namespace"] == "default"
    assert list(web["Payload"]["Service"]) == REG_KEYS
    gone = [e for e in events if e["Type"] == "ServiceDeregistration"]
    assert {e["Key"] for e in gone} == {e["Key"] for e in events[:2]}


async def test_routes_codes_texts_delete_and_choose(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await asyncio.to_thread(client(twin).job.register_job, "rt", {"Job": native_job("rt", 3)})
    await eventually(lambda: len(twin.state.services) == 6, what="six registrations")
    base = f"{twin.url}/v1/service"
    for method, path, want in [
        ("POST", "/v1/services", (405, "Invalid method")),
        ("PUT", "/v1/service/rt-web", (405, "Invalid method")),
        ("GET", "/v1/service/", (400, "missing service name")),
        ("GET", "/v1/service/rt-web/x", (405, "Invalid method")),
        ("DELETE", "/v1/service/rt-web/", (400, "missing service id")),
        ("GET", "/v1/service/a/b/c", (400, "invalid URI")),
        ("DELETE", "/v1/service/rt-web/nope", (500, "service registration not found")),
        (
            "GET",
            "/v1/service/rt-web?choose=x",
            (
                400,
                "failed to choose services: Parameter for choose must be in form '<number>|<key>'",
            ),
        ),
        (
            "GET",
            "/v1/service/rt-web?choose=2|",
            (
                400,
                "failed to choose services: Parameter for choose must be in form '<number>|<key>'",
            ),
        ),
    ]:
        async with http.request(method, f"{twin.url}{path}") as r:
            assert (r.status, await r.text()) == want, (method, path)

    async with http.get(f"{base}/rt-web?choose=2|client-a") as r:
        first = [s["ID"] for s in await r.json()]
    async with http.get(f"{base}/rt-web?choose=2|client-a") as r:
        assert [s["ID"] for s in await r.json()] == first  # stable for one key
    assert len(first) == 2
    async with http.get(f"{base}/rt-web?choose=9|client-a") as r:
        assert len(await r.json()) == 3  # n is capped at the number of instances

    async with http.get(f"{base}/rt-web?per_page=2") as r:
        page = await r.json()
        token = r.headers["X-Nomad-Nexttoken"]
    assert [s["ID"] for s in page] == sorted(s["ID"] for s in page)
    async with http.get(f"{base}/rt-web?next_token={token}") as r:
        rest = await r.json()
    assert token == f"default.{rest[0]['ID']}" and len(rest) == 1

    # DELETE by ID: an empty 200 with the write's index; the instance is gone
    victim = page[0]["ID"]
    async with http.delete(f"{base}/rt-web/{victim}") as r:
        assert r.status == 200
        assert await r.read() == b""
        deleted_at = int(r.headers["X-Nomad-Index"])
    async with http.get(f"{base}/rt-web") as r:
        assert victim not in [s["ID"] for s in await r.json()]
        assert int(r.headers["X-Nomad-Index"]) == deleted_at

    # a blocking query wakes on the next registration write
    async def blocked() -> list[dict[str, Any]]:
        async with http.get(f"{base}/rt-web?index={deleted_at}&wait=20s") as r:
            assert int(r.headers["X-Nomad-Index"]) > deleted_at
            return list(await r.json())

    waiter = asyncio.create_task(blocked())
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await asyncio.to_thread(client(twin).job.deregister_job, "rt")
    assert len(await asyncio.wait_for(waiter, 10)) < 2


async def test_acls_follow_the_rpc_checks(
    make_nomad_twin: NomadTwinFactory, http: aiohttp.ClientSession
) -> None:
    twin = await make_nomad_twin(nodes=1, acl=True)
    mgmt = {"X-Nomad-Token": twin.management_token or ""}
    rules = 'namespace "other" { policy = "read" }'
    async with http.put(
        f"{twin.url}/v1/acl/policy/other-reader",
        json={"Name": "other-reader", "Rules": rules},
        headers=mgmt,
    ) as r:
        assert r.status == 200
    async with http.put(
        f"{twin.url}/v1/acl/token",
        json={"Type": "client", "Policies": ["other-reader"]},
        headers=mgmt,
    ) as r:
        reader = {"X-Nomad-Token": (await r.json())["SecretID"]}
    await asyncio.to_thread(
        client(twin, twin.management_token).job.register_job, "acl", {"Job": native_job("acl")}
    )
    await eventually(lambda: len(twin.state.services) == 2, what="registered")

    for path in ("/v1/services", "/v1/service/acl-web"):
        async with http.get(f"{twin.url}{path}", headers=reader) as r:
            assert (r.status, await r.text()) == (403, "Permission denied"), path
        async with http.get(f"{twin.url}{path}", headers=mgmt) as r:
            assert r.status == 200
    # `*` lists only the namespaces the token may read-job in: none here, so [] not 403
    async with http.get(f"{twin.url}/v1/services?namespace=*", headers=reader) as r:
        assert (r.status, await r.json()) == (200, [])
    sid = next(iter(twin.state.services))[1]
    async with http.delete(f"{twin.url}/v1/service/acl-web/{sid}", headers=reader) as r:
        assert (r.status, await r.text()) == (403, "Permission denied")
    assert ("default", sid) in twin.state.services
