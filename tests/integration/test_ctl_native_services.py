"""controllerctl status and check with Consul unset: native services are read from Nomad's own
catalog, and check says whether any meshed service would need Consul, naming it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crds_equivalent.config import MeshConfig
from devstack.vault import OpenBao
from reconcilers.injection.plan import Apply, plan_job
from tests.support.ctl_stack import Stack, job, stack
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)
NO_CONSUL = {"CONSUL_HTTP_ADDR": None}


def native_injected(job_id: str) -> dict[str, Any]:
    user = job(job_id, {"mesh.tls": "true"}, count=1)
    user["TaskGroups"][0]["Services"][0]["Provider"] = "nomad"
    decision = plan_job(user, MeshConfig())
    assert isinstance(decision, Apply)
    return decision.job


async def registered_in_nomad(s: Stack, name: str) -> None:
    async def found() -> bool:
        resp = await s.client.request("GET", f"/v1/service/{name}", namespace="default")
        return any("mesh-tls" in r["Tags"] for r in resp.body or [])

    await eventually(found, what=f"{name} on its TLS port in Nomad's catalog", within=15.0)


def consul_row(output: str) -> str:
    return next(line for line in output.splitlines() if "Consul not configured" in line)


async def test_status_and_check_without_consul(openbao: OpenBao) -> None:
    async with stack(openbao) as s:
        await s.jobs.register_job(native_injected("ledger"), enforce_index=0)
        await registered_in_nomad(s, "ledger")

        status = await s.ctl("status", "-o", "json", "--job", "ledger", **NO_CONSUL)
        doc = json.loads(status.output)
        (row,) = [r for r in doc["rows"] if r["job"] == "ledger"]
        # registered and counted from Nomad's catalog; no checks in this job: nothing failing
        assert row["tls"] == {"passing": 1, "registered": 1} and row["plaintext"] == 0
        consul = next(b for b in doc["backends"] if b["name"] == "consul")
        assert (consul["consulted"], consul["ok"]) == (False, True)

        check = await s.ctl("check", "--pre", **NO_CONSUL)
        assert consul_row(check.output).startswith("✔")
        assert "token may read Nomad-native services and their checks" in check.output
        assert check.exit_code == 0, check.output

        # a meshed Consul-provider service now needs Consul: check and status both say so
        user = job("shop", {"mesh.tls": "true"}, count=1)
        await s.jobs.register_job(user, enforce_index=0)
        check = await s.ctl("check", "--pre", **NO_CONSUL)
        row_text = consul_row(check.output)
        assert row_text.startswith("×") and "default/shop: shop" in row_text
        assert "ledger" not in row_text
        assert check.exit_code == 1

        status = await s.ctl("status", "-o", "json", **NO_CONSUL)
        doc = json.loads(status.output)
        consul = next(b for b in doc["backends"] if b["name"] == "consul")
        assert consul["ok"] is False and "needed by meshed service(s) shop" in consul["error"]
        assert status.exit_code == 2
