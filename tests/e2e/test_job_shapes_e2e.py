"""End to end on the devstack for the shapes real jobs take: an app whose port is declared in
its task's resources (Nomad < 0.12 style) is served over verified TLS through the injected nginx,
and a Consul Connect group of the same job is left alone with a reason while its sibling is
meshed. Real OpenBao, real processes, real nginx, real TLS."""

from __future__ import annotations

import copy
import ssl
from typing import Any

import aiohttp
import psutil
import pytest

from controller.app import App
from controller.consul.client import ConsulClient
from controller.dev.demo import NS, web_job
from controller.vault import VaultClient, VaultConnection, root_pem
from crds_equivalent import keys
from crds_equivalent.status import ConditionType
from devstack.executor import RawExecDriver
from devstack.nomad.warnings import TASK_NETWORKS_DEPRECATED
from devstack.up import Devstack
from tests.support.e2e_stack import PinnedResolver, world
from tests.support.waiting import eventually

__all__ = ["world"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def ledger_job() -> dict[str, Any]:
    """Group "api": the demo web app, but its port lives in the task's Resources.Networks and
    its service is a task service. Group "edge": Consul Connect (bridge + sidecar_service),
    count 0 so that no Envoy is needed to show it is left alone."""
    demo = web_job()
    app = copy.deepcopy(demo["TaskGroups"][0]["Tasks"][0])
    app["Resources"]["Networks"] = [{"DynamicPorts": [{"Label": "http"}]}]
    app["Services"] = [
        {
            "Name": "ledger",
            "PortLabel": "http",
            "Checks": [
                {"Name": "root", "Type": "http", "Path": "/", "Interval": 2 * NS, "Timeout": NS}
            ],
        }
    ]
    return {
        "ID": "ledger",
        "Name": "ledger",
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": {keys.MESH_TLS: "true"},
        "TaskGroups": [
            {
                "Name": "api",
                "Count": 1,
                "Update": {"MinHealthyTime": 2 * NS},
                "Tasks": [app],
            },
            {
                "Name": "edge",
                "Count": 0,
                "Networks": [{"Mode": "bridge"}],
                "Services": [
                    {"Name": "ledger-edge", "PortLabel": "9090", "Connect": {"SidecarService": {}}}
                ],
                "Tasks": [
                    {
                        "Name": "edge",
                        "Driver": "docker",
                        "Config": {"image": "example/edge:1"},
                        "Resources": {"CPU": 50, "MemoryMB": 32},
                    }
                ],
            },
        ],
    }


async def test_task_port_app_is_served_over_verified_tls_and_connect_sibling_is_refused(
    world: tuple[Devstack, RawExecDriver, App],
) -> None:
    stack, driver, app = world
    vault = VaultClient(VaultConnection(stack.vault.addr, stack.vault.root_token))
    trust = ssl.create_default_context(cadata=await root_pem(vault, "pki"))
    consul = ConsulClient(stack.consul.address)
    try:
        answer = await app.jobs.register_job(ledger_job(), enforce_index=None)
        assert TASK_NETWORKS_DEPRECATED in answer["Warnings"]

        async def ready() -> Any:
            status = await app.statuses.get("default", "ledger")
            return status if status is not None and status.phase == "Ready" else None

        status = await eventually(ready, what="ledger Ready")
        spec_valid = next(c for c in status.conditions if c.type == ConditionType.SPEC_VALID)
        assert spec_valid.status == "True"
        assert spec_valid.message.startswith('group "edge": uses Consul Connect (')
        assert "remove the Connect block" in spec_valid.message

        job = await app.jobs.get_job("ledger", "default")
        assert job is not None
        api, edge = job["TaskGroups"]
        assert [t["Name"] for t in api["Tasks"]] == ["app", keys.SIDECAR_TASK]
        assert [t["Name"] for t in edge["Tasks"]] == ["edge"]
        assert keys.INJECTED_GROUP_META not in (edge.get("Meta") or {})

        allocs = [
            a
            for a in await app.jobs.job_allocations("ledger", "default")
            if a["JobVersion"] == job["Version"] and a["ClientStatus"] == "running"
        ]
        assert len(allocs) == 1
        alloc = await app.jobs.read_allocation(allocs[0]["ID"], "default")
        assert alloc is not None
        pid = driver.pid(alloc["ID"], keys.SIDECAR_TASK)
        assert pid is not None and "nginx" in psutil.Process(pid).name()
        (app_net,) = alloc["AllocatedResources"]["Tasks"]["app"]["Networks"]
        (app_port,) = app_net["DynamicPorts"]
        shared = {p["Label"]: p for p in alloc["AllocatedResources"]["Shared"]["Ports"]}
        tls_port = shared[keys.tls_port_label("http")]

        async def only_tls() -> list[Any]:
            entries = (await consul.health_service("ledger")).entries
            ok = entries and all(
                e.port == tls_port["Value"] and keys.TLS_SERVICE_TAG in e.tags and e.passing
                for e in entries
            )
            return list(entries) if ok else []

        (entry,) = await eventually(only_tls, within=30, what="TLS-only, passing registration")
        assert entry.port != app_port["Value"]

        url = f"https://ledger.service.consul:{entry.port}/"
        connector = aiohttp.TCPConnector(
            ssl=trust, resolver=PinnedResolver(entry.effective_address)
        )
        async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as r:
            assert r.status == 200
            assert (await r.text()).startswith("hello from ledger")
        # The plaintext app answers on the task port Nomad gave it, which nginx proxied to.
        plain = f"http://{app_net['IP']}:{app_port['Value']}/"
        async with aiohttp.ClientSession() as session, session.get(plain) as r:
            assert r.status == 200
    finally:
        await consul.close()
