"""A template that cannot render blocks its task, as in Nomad: nothing starts, and the reason is
in the task events — "Template failed" (fails the task and its siblings) for a template that
cannot work, "Missing: <dependency>" while a Vault dependency cannot be fetched (the start
waits, then proceeds). A Vault that is sealed when the task starts fails it earlier, at its
JWT login (vault_hook.go: a login error is not recoverable)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from controller.vault import WORKLOAD_POLICY
from devstack.vault import OpenBao, WorkloadAuthSpec, configure_workload_identity_auth
from tests.support.executor_stack import (
    NS,
    Stack,
    app_task,
    events,
    running_stack,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

CERT_ONLY = (
    '{{ with pkiCert "pki_int/issue/mesh" "common_name=tmpl.service.consul" }}{{ .Cert }}{{ end }}'
)


@pytest.fixture
async def stack(openbao: OpenBao, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(openbao, tmp_path / "data") as s:
        yield s


def job_with_template(body: str, job_id: str = "tmpl") -> dict[str, Any]:
    templated = app_task(
        "app",
        Vault={},  # Nomad hands templates a Vault token only through the task's vault block
        Templates=[{"DestPath": "secrets/out.pem", "EmbeddedTmpl": body, "ChangeMode": "noop"}],
    )
    sibling = {
        "Name": "other",
        "Driver": "raw_exec",
        "Config": {"command": sys.executable, "args": ["-c", "import time; time.sleep(600)"]},
        "KillTimeout": NS,
    }
    return {
        "ID": job_id,
        "Type": "service",
        "TaskGroups": [
            {
                "Name": "g",
                "Count": 1,
                "RestartPolicy": {"Attempts": 0, "Mode": "fail", "Interval": 60 * NS},
                "ReschedulePolicy": {"Attempts": 0, "Unlimited": False},
                "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
                "Tasks": [templated, sibling],
            }
        ],
    }


async def alloc_where(stack: Stack, job_id: str, pred: Any) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        for alloc in await stack.allocs(job_id):
            if alloc.get("TaskStates") and pred(alloc):
                return alloc
        return None

    result: dict[str, Any] = await eventually(probe, within=20.0)
    return result


async def test_unknown_function_fails_the_task_before_it_starts(stack: Stack) -> None:
    await stack.register(job_with_template('{{ nosuchfunc "x" }}'))
    alloc = await alloc_where(
        stack,
        "tmpl",
        lambda a: a["ClientStatus"] == "failed" and a["TaskStates"]["other"]["State"] == "dead",
    )
    app = alloc["TaskStates"]["app"]
    assert app["State"] == "dead"
    assert app["Failed"] is True
    assert app["StartedAt"] is None
    assert "Started" not in events(alloc, "app")
    killing = next(e for e in app["Events"] if e["Type"] == "Killing")
    assert killing["FailsTask"] is True
    assert killing["DisplayMessage"].startswith("Template failed: template: secrets/out.pem:1:")
    assert 'function "nosuchfunc" not defined' in killing["DisplayMessage"]
    assert stack.driver.pid(alloc["ID"], "app") is None
    sibling = alloc["TaskStates"]["other"]
    assert sibling["State"] == "dead"
    assert any(
        e["Type"] == "Sibling Task Failed" and e["FailedSibling"] == "app"
        for e in sibling["Events"]
    )


async def test_a_missing_vault_dependency_blocks_the_start_until_it_exists(stack: Stack) -> None:
    # A policy of this test's own lets the token issue from pki_int/issue/later; a template
    # that asks a role that does not exist yet is refused (400) and retried as missing until
    # the role appears.
    body = CERT_ONLY.replace("pki_int/issue/mesh", "pki_int/issue/later")
    admin = {"X-Vault-Token": stack.bao.root_token}
    policy_url = f"{stack.bao.addr}/v1/sys/policies/acl/later"
    rule = 'path "pki_int/issue/later" { capabilities = ["update"] }'
    async with stack.http.put(policy_url, json={"policy": rule}, headers=admin) as r:
        assert r.status == 204, await r.text()
    await configure_workload_identity_auth(
        stack.bao,
        WorkloadAuthSpec(
            f"{stack.nomad.url}/.well-known/jwks.json", policies=(WORKLOAD_POLICY, "later")
        ),
    )
    await stack.register(job_with_template(body, "later"))

    def missing(alloc: dict[str, Any]) -> bool:
        return any(
            e["Type"] == "Template" and e["DisplayMessage"].startswith("Missing: vault.pki(")
            for e in alloc["TaskStates"]["app"]["Events"]
        )

    alloc = await alloc_where(stack, "later", missing)
    app = alloc["TaskStates"]["app"]
    assert app["State"] == "pending"
    assert "Started" not in events(alloc, "app")
    template_event = next(e for e in app["Events"] if e["Type"] == "Template")
    assert "pki_int/issue/later" in template_event["DisplayMessage"]
    assert stack.driver.pid(alloc["ID"], "app") is None
    out = Path(stack.nomad.client.alloc_root) / alloc["ID"] / "app" / "secrets" / "out.pem"
    assert not out.exists()

    role_url = f"{stack.bao.addr}/v1/pki_int/roles/later"
    role = {"allowed_domains": "service.consul", "allow_subdomains": True, "max_ttl": "1h"}
    async with stack.http.post(role_url, json=role, headers=admin) as r:
        assert r.status in (200, 204), await r.text()
    started = await alloc_where(
        stack, "later", lambda a: a["TaskStates"]["app"]["State"] == "running"
    )
    assert stack.driver.pid(started["ID"], "app") is not None
    assert out.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert started["ClientStatus"] == "running"


async def test_a_sealed_vault_at_start_fails_the_task_at_its_login(stack: Stack) -> None:
    await stack.bao.seal()
    try:
        await stack.register(job_with_template(CERT_ONLY, "sealed"))
        alloc = await alloc_where(stack, "sealed", lambda a: a["ClientStatus"] == "failed")
    finally:
        await stack.bao.unseal()
    app = alloc["TaskStates"]["app"]
    assert app["State"] == "dead" and app["Failed"] is True
    assert "Started" not in events(alloc, "app")
    killing = next(e for e in app["Events"] if e["Type"] == "Killing")
    assert killing["DisplayMessage"].startswith(
        "Vault: failed to derive vault token: failed to derive Vault token for identity "
        "vault_default: failed to login with JWT: Error making API request.\n\n"
    )
    assert "Code: 503. Errors:\n\n* Vault is sealed" in killing["DisplayMessage"]
    assert stack.driver.pid(alloc["ID"], "app") is None


async def test_stopping_a_job_blocked_on_templates_leaves_nothing_behind(stack: Stack) -> None:
    # a role that never appears: the first render keeps retrying while the job is stopped
    body = CERT_ONLY.replace("pki_int/issue/mesh", "pki_int/issue/never")
    await stack.register(job_with_template(body, "blocked"))
    alloc = await alloc_where(stack, "blocked", lambda a: "Template" in events(a, "app"))
    await stack.deregister("blocked")
    stopped = await alloc_where(
        stack, "blocked", lambda a: a["ClientStatus"] in ("complete", "failed")
    )
    assert stopped["TaskStates"]["app"]["State"] == "dead"
    assert stack.driver.pid(alloc["ID"], "app") is None
    assert stack.driver.pids() == []
