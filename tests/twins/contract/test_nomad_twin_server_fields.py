"""Contract tests: the fields the Nomad server adds or keeps on register (audit §9, §10, §13).

Pinned against nomad v1.10.5 source:
- ``nomad/job_endpoint_hooks.go`` ``jobImpliedConstraints.Mutate`` / ``mutateConstraint``
  (Vault and Consul constraints matched on LTarget, signals in full; task services' Consul
  constraint on the task since 1.8);
- ``nomad/job_endpoint_hook_implicit_identities.go`` (``handleVault`` adds the server's
  ``vault_default`` identity; ``implicitIdentityClientVersionConstraint`` is appended with
  no dedupe, so each register of the stored job adds one more);
- ``nomad/structs/services.go`` ``Service.Canonicalize`` (``${JOB}``/``${TASKGROUP}``/
  ``${TASK}``/``${BASE}``, ``task = "group"`` for group services, Consul ``default``
  namespace, check ``TaskName``);
- ``command/agent/job_endpoint.go`` ``ApiJobToStructJob`` (VersionTag copied),
  ``structs.Job.SpecChanged`` (VersionTag is spec), ``state_store.go`` ``upsertJobVersion``
  (tagged versions never collected);
- ``client/allocrunner/taskrunner/lifecycle.go`` ``Restart`` (``Task not running``).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devstack.nomad import NomadTwin, start_nomad_twin

pytestmark = pytest.mark.timeout(30)

VAULT_C = {"LTarget": "${attr.vault.version}", "RTarget": ">= 0.6.1", "Operand": "semver"}
CONSUL_C = {"LTarget": "${attr.consul.version}", "RTarget": ">= 1.8.0", "Operand": "semver"}
SIG_C = {"LTarget": "${attr.os.signals}", "RTarget": "SIGHUP,SIGQUIT", "Operand": "set_contains"}
IDENT_C = {"LTarget": "${attr.nomad.version}", "RTarget": ">= 1.7.0-a", "Operand": "semver"}


def mesh_like(job_id: str = "web", namespace: str = "default") -> dict[str, Any]:
    """A group service, a task service and a Vault task with a signal template: the shape
    of an injected job."""
    return {
        "ID": job_id,
        "Name": job_id,
        "Namespace": namespace,
        "Type": "service",
        "TaskGroups": [
            {
                "Name": "app",
                "Services": [
                    {"Name": "${BASE}", "PortLabel": "8080", "Checks": [{"Type": "tcp"}]},
                    {"Name": "nsd-${JOB}", "Provider": "nomad", "PortLabel": "8080"},
                ],
                "Tasks": [
                    {
                        "Name": "srv",
                        "Driver": "docker",
                        "Config": {"image": "x"},
                        "Services": [
                            {"Name": "${TASK}-${TASKGROUP}-${X}", "Checks": [{"Type": "tcp"}]},
                            {"Name": "${BASE}"},
                        ],
                    },
                    {
                        "Name": "sidecar",
                        "Driver": "docker",
                        "Config": {"image": "nginx"},
                        "KillSignal": "SIGQUIT",
                        "Vault": {},
                        "Templates": [
                            {"EmbeddedTmpl": "x", "DestPath": "a", "ChangeMode": "signal"}
                        ],
                    },
                ],
            }
        ],
    }


@pytest.fixture
async def twin() -> AsyncIterator[NomadTwin]:
    t = await start_nomad_twin(nodes=1)
    yield t
    await t.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def register(http: aiohttp.ClientSession, url: str, job: dict[str, Any]) -> dict[str, Any]:
    ns = job.get("Namespace") or "default"
    async with http.post(f"{url}/v1/jobs?namespace={ns}", json={"Job": job}) as r:
        assert r.status == 200, await r.text()
        out: dict[str, Any] = await r.json()
        return out


async def get_job(
    http: aiohttp.ClientSession, url: str, job_id: str, ns: str = "default"
) -> dict[str, Any]:
    async with http.get(f"{url}/v1/job/{job_id}?namespace={ns}") as r:
        assert r.status == 200
        out: dict[str, Any] = await r.json()
        return out


async def test_service_names_are_resolved_and_consul_services_land_in_default_namespace(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    async with http.put(f"{twin.url}/v1/namespace/team", json={"Name": "team"}) as r:
        assert r.status == 200
    await register(http, twin.url, mesh_like(namespace="team"))
    job = await get_job(http, twin.url, "web", "team")
    group = job["TaskGroups"][0]
    gsvc, nsd = group["Services"]
    assert gsvc["Name"] == "web-app-group"  # BASE with task = "group"
    assert gsvc["TaskName"] == "" and gsvc["Namespace"] == "default"
    assert gsvc["Checks"][0]["Name"] == 'service: "web-app-group" check'
    assert gsvc["Checks"][0]["TaskName"] == ""
    assert nsd["Name"] == "nsd-web" and nsd["Namespace"] == "team"  # Nomad provider: job ns
    tsvc, tbase = group["Tasks"][0]["Services"]
    assert tsvc["Name"] == "srv-app-${X}"  # unknown references are kept (args.ReplaceEnv)
    assert tsvc["TaskName"] == "srv" and tsvc["Namespace"] == "default"
    assert tsvc["Checks"][0]["TaskName"] == "srv"
    assert tsvc["Checks"][0]["Name"] == 'service: "srv-app-${X}" check'
    assert tbase["Name"] == "web-app-srv"


async def test_implied_constraints_in_source_order_and_where_the_source_puts_them(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await register(http, twin.url, mesh_like())
    job = await get_job(http, twin.url, "web")
    group = job["TaskGroups"][0]
    nsd = {"LTarget": "${attr.nomad.service_discovery}", "RTarget": "true", "Operand": "="}
    assert group["Constraints"] == [VAULT_C, SIG_C, nsd, CONSUL_C, IDENT_C]
    srv, sidecar = group["Tasks"]
    assert srv["Constraints"] == [CONSUL_C]  # task services: on the task (1.8+)
    assert sidecar["Constraints"] is None
    assert sidecar["Identities"] == [
        {
            "Name": "vault_default",
            "Audience": ["vault.io"],
            "ChangeMode": "",
            "ChangeSignal": "",
            "Env": False,
            "File": False,
            "Filepath": "",
            "ServiceName": "",
            "TTL": 3600 * 10**9,
            "ExtraClaims": None,
        }
    ]


async def test_reregistering_the_stored_job_appends_the_identity_constraint_again(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    first = await register(http, twin.url, mesh_like())
    for round_ in (2, 3):
        stored = await get_job(http, twin.url, "web")
        again = await register(http, twin.url, stored)
        job = await get_job(http, twin.url, "web")
        constraints = job["TaskGroups"][0]["Constraints"]
        # The matched constraints stay single; the identity one grows without dedupe, so
        # the spec always changed and every register is a new version.
        assert constraints.count(VAULT_C) == 1 and constraints.count(SIG_C) == 1
        assert constraints.count(IDENT_C) == round_
        assert job["Version"] == round_ - 1
        assert again["JobModifyIndex"] > first["JobModifyIndex"]
    assert job["TaskGroups"][0]["Tasks"][1]["Identities"][0]["Name"] == "vault_default"
    assert len(job["TaskGroups"][0]["Tasks"][1]["Identities"]) == 1


async def test_a_user_constraint_on_the_same_ltarget_wins_over_the_implied_one(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    spec = mesh_like()
    mine = {"LTarget": "${attr.vault.version}", "RTarget": ">= 1.15.0", "Operand": "semver"}
    spec["TaskGroups"][0]["Constraints"] = [mine]
    await register(http, twin.url, spec)
    constraints = (await get_job(http, twin.url, "web"))["TaskGroups"][0]["Constraints"]
    assert constraints[0] == mine and VAULT_C not in constraints


async def test_without_identities_an_unchanged_register_is_no_new_version() -> None:
    twin = await start_nomad_twin(nodes=1, vault_default_identity=False)
    try:
        async with aiohttp.ClientSession() as http:
            await register(http, twin.url, mesh_like())
            stored = await get_job(http, twin.url, "web")
            assert IDENT_C not in stored["TaskGroups"][0]["Constraints"]
            assert stored["TaskGroups"][0]["Tasks"][1]["Identities"] is None
            again = await register(http, twin.url, stored)
            job = await get_job(http, twin.url, "web")
            assert job["Version"] == 0
            assert again["JobModifyIndex"] == stored["JobModifyIndex"]
    finally:
        await twin.stop()


async def test_version_tag_is_carried_is_spec_and_tagged_versions_are_never_collected(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    spec = mesh_like()
    spec["VersionTag"] = {"Name": "golden", "Description": "approved"}
    await register(http, twin.url, spec)
    job = await get_job(http, twin.url, "web")
    assert job["VersionTag"] == {"Name": "golden", "Description": "approved", "TaggedTime": 0}
    # A client that re-submits what it read (audit §9) moves the tag onto its own version.
    stored = copy.deepcopy(job)
    stored["Meta"] = {"mesh": "on"}
    await register(http, twin.url, stored)
    async with http.get(f"{twin.url}/v1/job/web/versions") as r:
        versions = (await r.json())["Versions"]
    assert [(v["Version"], v["VersionTag"]["Name"]) for v in versions] == [
        (1, "golden"),
        (0, "golden"),
    ]
    # Dropping the tag alone is a spec change (SpecChanged compares VersionTag too).
    untagged = await get_job(http, twin.url, "web")
    untagged["VersionTag"] = None
    await register(http, twin.url, untagged)
    for i in range(8):
        nxt = await get_job(http, twin.url, "web")
        nxt["Meta"] = {"round": str(i)}
        await register(http, twin.url, nxt)
    async with http.get(f"{twin.url}/v1/job/web/versions") as r:
        kept = [v["Version"] for v in (await r.json())["Versions"]]
    assert kept == [10, 9, 8, 7, 6, 5, 1, 0]  # six untagged + both tagged


async def test_restarting_a_task_that_is_not_running_is_500_task_not_running(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    spec = mesh_like()
    group = spec["TaskGroups"][0]
    group["Tasks"].append(
        {
            "Name": "init",
            "Driver": "docker",
            "Config": {"image": "x"},
            "Lifecycle": {"Hook": "prestart", "Sidecar": False},
        }
    )
    await register(http, twin.url, spec)
    alloc: dict[str, Any] = {}
    for _ in range(200):
        async with http.get(f"{twin.url}/v1/job/web/allocations") as r:
            stubs = await r.json()
        states = (stubs[0].get("TaskStates") or {}) if stubs else {}
        if states.get("srv", {}).get("State") == "running":
            alloc = stubs[0]
            break
        await asyncio.sleep(0.05)
    assert alloc, "allocation never ran"
    assert alloc["TaskStates"]["init"]["State"] == "dead"
    url = f"{twin.url}/v1/client/allocation/{alloc['ID']}/restart"
    async with http.post(url, json={"TaskName": "init"}) as r:
        assert (r.status, await r.text()) == (500, "Task not running")
    async with http.post(url, json={"TaskName": "srv"}) as r:
        assert r.status == 200
    async with http.post(url, json={}) as r:  # RestartRunning skips ErrTaskNotRunning
        assert r.status == 200
