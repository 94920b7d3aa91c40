"""A lost renewal, end to end: real nginx sidecar, real templates against OpenBao, the executor
made to drop its re-render (the template watcher is gone, as after nomad#9491's client restart),
and the CertReconciler noticing the leaf past 92 % of its life and restarting the sidecar
through the Nomad client API — which re-renders the certificate, so a fresh leaf is served.

The threshold is set to 92 % here: this test is about the ladder, on a 12 s leaf. The default
(99.5 %, which fits both of Nomad's renewal rules) is tested against the rules themselves in
tests/unit/test_renewal_rules.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from prometheus_client import CollectorRegistry

from controller.consul.client import ConsulClient
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from controller.nomad.variables import NomadVariables
from controller.status.store import StatusStore
from controller.tlsprobe import ProbeTarget, TlsProber
from controller.vault import VaultClient, VaultConnection
from controller.vault.trust import VaultTrust
from controller.x509 import serial_hex
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig, SidecarDriver
from crds_equivalent.status import ConditionType, MeshStatus, Phase
from devstack.vault import OpenBao
from reconcilers.certs.reconciler import CertReconciler
from reconcilers.certs.remediation import Policy, Record
from reconcilers.conditions import condition
from reconcilers.injection.plan import Apply, plan_job
from tests.support.executor_stack import (
    NGINX,
    NS,
    Stack,
    app_task,
    grant_job,
    running_stack,
)
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

CONFIG = MeshConfig(sidecar_driver=SidecarDriver.RAW_EXEC, nginx_bin=NGINX)
TTL = "12s"  # OpenBao backdates 30 s: the leaf is 92 % worn ~8.6 s after it was issued


@pytest.fixture
async def stack(openbao: OpenBao, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(openbao, tmp_path / "data") as s:
        yield s


def meshed_job() -> dict[str, Any]:
    user = {
        "ID": "shop",
        "Name": "shop",
        "Namespace": "default",
        "Type": "service",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 1,
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [
                    {
                        "Name": "web",
                        "PortLabel": "http",
                        "Checks": [{"Type": "http", "Path": "/", "Interval": NS, "Timeout": NS}],
                    }
                ],
                "Tasks": [app_task()],
            }
        ],
    }
    decision = plan_job(user, CONFIG)
    assert isinstance(decision, Apply)
    for task in decision.job["TaskGroups"][0]["Tasks"]:
        for tmpl in task.get("Templates") or []:  # mesh.tls.ttl cannot go below 1h
            tmpl["EmbeddedTmpl"] = re.sub(r'"ttl=\d+s"', f'"ttl={TTL}"', tmpl["EmbeddedTmpl"])
            tmpl["Splay"] = NS // 10
    return decision.job


def served_leaf(stack: Stack, alloc_id: str) -> x509.Certificate:
    path = Path(stack.nomad.client.alloc_root) / alloc_id / keys.SIDECAR_TASK / "secrets"
    return x509.load_pem_x509_certificates((path / "mesh-tls.pem").read_bytes())[0]


async def test_a_lost_renewal_is_detected_and_the_sidecar_restart_serves_a_fresh_leaf(
    stack: Stack,
) -> None:
    job = meshed_job()
    await grant_job(stack.bao, job, CONFIG)  # what the controller does before the register
    await stack.register(job)

    async def running() -> dict[str, Any] | None:
        allocs = [a for a in await stack.allocs("shop") if a["ClientStatus"] == "running"]
        entries = await stack.health("web")
        passing = entries and all(c["Status"] == "passing" for c in entries[0]["Checks"])
        return allocs[0] if allocs and passing else None

    alloc = await eventually(running, within=30)
    aid = alloc["ID"]
    # The renewal is lost: the executor drops the sidecar's template watchers.
    run = stack.driver._runs[(aid, keys.SIDECAR_TASK)]
    assert run.templates is not None
    for watcher in run.templates._watchers:
        watcher.cancel()
    first = served_leaf(stack, aid)

    client = NomadClient(stack.nomad.url, retry_budget=0.5)
    consul = ConsulClient(stack.consul.address)
    vault = VaultClient(VaultConnection(stack.bao.addr, stack.bao.root_token))
    statuses = StatusStore(NomadVariables(client))
    conds = (
        condition(ConditionType.SPEC_VALID, True, "Parsed"),
        condition(ConditionType.SIDECAR_INJECTED, True, "MarkerCurrent"),
    )
    await statuses.write("default", "shop", MeshStatus(phase=Phase.INJECTED, conditions=conds))
    registry = CollectorRegistry()
    jobs = NomadJobs(client)
    certs = CertReconciler(
        jobs,
        jobs,
        statuses,
        consul,
        TlsProber(timeout=2),
        VaultTrust(vault, refresh=300),
        CONFIG,
        interval=0.5,
        policy=Policy(stale_fraction=0.92, restart_grace=10, reissue_grace=60),
        registry=registry,
    )
    try:

        async def remediated() -> Record | None:
            await certs.reconcile(("default", "shop"))
            status = await statuses.get("default", "shop")
            return Record.loads(status.last_remediation) if status else None

        record = await eventually(remediated, within=40, every=0.5)
        assert record.kind == "restart" and record.allocs == (aid,)
        assert record.serials[aid] == serial_hex(first.serial_number)
        assert registry.get_sample_value("mesh_remediations_total", {"kind": "restart"}) == 1

        async def fresh_leaf_served() -> bool:
            probe = await TlsProber(timeout=2).probe_many(
                [ProbeTarget(*_tls_address(await stack.alloc("shop")), "web.service.consul")],
                (await VaultTrust(vault).get()).anchors_pem,
            )
            leaf = probe[0].leaf
            return bool(probe[0].ok and leaf and leaf.not_before > first.not_valid_before_utc)

        assert await eventually(fresh_leaf_served, within=15)
        assert served_leaf(stack, aid).serial_number != first.serial_number

        async def restarted() -> dict[str, Any] | None:
            # the client reports task states to the servers after the fact (batched, as Nomad's
            # client does), so the count can trail the fresh leaf already being served
            latest = await stack.alloc("shop")
            return latest if latest["TaskStates"][keys.SIDECAR_TASK]["Restarts"] >= 1 else None

        latest = await eventually(restarted, within=10)
        assert latest["ID"] == aid  # the same allocation: restarted in place, not replaced
        job = await jobs.get_job("shop", "default")
        assert job is not None and job["Version"] == 0  # no re-issue was needed
    finally:
        await consul.close()
        await client.close()


def _tls_address(alloc: dict[str, Any]) -> tuple[str, int]:
    for port in alloc["AllocatedResources"]["Shared"]["Ports"]:
        if port["Label"] == keys.tls_port_label("http"):
            return port["HostIP"], int(port["Value"])
    raise AssertionError("no TLS port")
