"""Workload identities in the Nomad twin, seen the way a task's templates see them: each task
gets the server's address, its namespace and a signed identity; with it the task reads only
`nomad/jobs/<job>[/<group>[/<task>]]` in its namespace, unless an ACL policy attached to the
job grants more; the identity dies with the allocation."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devstack.nomad import NomadTwin, start_nomad_twin
from devstack.nomad.simdriver import SimulatedDriver
from devstack.nomad.taskctx import TaskContext
from devstack.template import MissingDependency, NomadTarget, RenderContext, TemplateError, render

pytestmark = pytest.mark.timeout(30)

ITEM = '{{ with nomadVar "%s" }}{{ .v }}{{ end }}'


class CaptureDriver(SimulatedDriver):
    """A simulated driver that keeps what the client hands each task."""

    def __init__(self) -> None:
        super().__init__(start_delay=0.01)
        self.ctxs: dict[str, TaskContext] = {}

    async def start(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        self.ctxs[task["Name"]] = ctx
        await super().start(alloc, task, ctx)


def job(job_id: str = "web", namespace: str = "default") -> dict[str, Any]:
    return {
        "ID": job_id,
        "Namespace": namespace,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {
                "Name": "g",
                "Count": 1,
                "Tasks": [{"Name": "t", "Driver": "capture", "Config": {}}],
            }
        ],
    }


class World:
    def __init__(self, twin: NomadTwin, driver: CaptureDriver, http: aiohttp.ClientSession):
        self.twin, self.driver, self.http = twin, driver, http
        self.headers = {"X-Nomad-Token": twin.management_token} if twin.management_token else {}

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        url = f"{self.twin.url}{path}"
        async with self.http.request(
            method, url, json=body, params=params, headers=self.headers
        ) as resp:
            assert resp.status in (200, 204), f"{method} {path}: {await resp.text()}"
            return await resp.json() if resp.status == 200 else None

    async def put_var(self, path: str, namespace: str = "default") -> None:
        await self.call("PUT", f"/v1/var/{path}", {"Items": {"v": path}}, namespace=namespace)

    async def task_target(self) -> NomadTarget:
        await self.call("POST", "/v1/jobs", {"Job": job()})
        for _ in range(200):
            if "t" in self.driver.ctxs:
                ctx = self.driver.ctxs["t"]
                assert ctx.nomad_addr and ctx.nomad_token
                return NomadTarget(ctx.nomad_addr, ctx.nomad_token, ctx.nomad_namespace)
            await asyncio.sleep(0.02)
        raise AssertionError("the task never started")


@pytest.fixture(params=[False, True], ids=["acl-off", "acl-on"])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    driver = CaptureDriver()
    twin = await start_nomad_twin(nodes=1, acl=request.param, drivers={"capture": driver})
    try:
        async with aiohttp.ClientSession() as http:
            w = World(twin, driver, http)
            await w.call("PUT", "/v1/namespace/other", {"Name": "other"})
            yield w
    finally:
        await twin.stop()


async def read(target: NomadTarget, path: str) -> str:
    return (await render(ITEM % path, RenderContext(nomad=target))).text


async def test_a_task_reads_its_own_paths_and_nothing_else(world: World) -> None:
    for path in ("nomad/jobs/web", "nomad/jobs/web/g", "nomad/jobs/web/g/t", "nomad/jobs/api"):
        await world.put_var(path)
    await world.put_var("nomad/jobs/web", namespace="other")
    await world.put_var("shared/config")
    target = await world.task_target()
    assert target.addr == world.twin.url and target.namespace == "default"

    for own in ("nomad/jobs/web", "nomad/jobs/web/g", "nomad/jobs/web/g/t"):
        assert await read(target, own) == own
    for foreign in ("nomad/jobs/api", "nomad/jobs/web@other", "shared/config"):
        with pytest.raises(TemplateError, match=r"403 \(Permission denied\)") as info:
            await read(target, foreign)
        assert not isinstance(info.value, MissingDependency)  # refused, not waiting
    listed = await render("{{ range nomadVarList }}{{ . }} {{ end }}", RenderContext(nomad=target))
    assert listed.text.split() == ["nomad/jobs/web", "nomad/jobs/web/g", "nomad/jobs/web/g/t"]


async def test_the_identity_is_a_jwt_with_nomads_claims(world: World) -> None:
    target = await world.task_target()
    assert target.token is not None
    head, body, _sig = target.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    alloc_id = world.driver.ctxs["t"].alloc_id
    assert claims["nomad_namespace"] == "default"
    assert claims["nomad_job_id"] == "web"
    assert claims["nomad_allocation_id"] == alloc_id
    assert claims["nomad_task"] == "t"
    forged = NomadTarget(world.twin.url, f"{head}.{body}.{'A' * 43}")
    await world.put_var("nomad/jobs/api")
    if world.twin.management_token is None:
        # ACLs off: a token the twin did not sign is no identity, and Nomad ignores tokens.
        assert await read(forged, "nomad/jobs/api") == "nomad/jobs/api"
    else:
        with pytest.raises(TemplateError, match="403"):
            await read(forged, "nomad/jobs/web")


async def test_a_token_that_grants_more_reads_more(world: World) -> None:
    await world.put_var("shared/config")
    target = await world.task_target()
    if world.twin.management_token is None:
        # ACLs off: no token at all is Nomad's "everything allowed".
        assert await read(NomadTarget(world.twin.url), "shared/config") == "shared/config"
        return
    management = NomadTarget(world.twin.url, world.twin.management_token)
    assert await read(management, "shared/config") == "shared/config"
    rules = 'namespace "default" { variables { path "shared/*" { capabilities = ["read"] } } }'
    await world.call(
        "PUT",
        "/v1/acl/policy/other-job",
        {"Name": "other-job", "Rules": rules, "JobACL": {"Namespace": "default", "JobID": "api"}},
    )
    with pytest.raises(TemplateError, match="403"):
        await read(target, "shared/config")
    await world.call(
        "PUT",
        "/v1/acl/policy/web-task",
        {
            "Name": "web-task",
            "Rules": rules,
            "JobACL": {"Namespace": "default", "JobID": "web", "Group": "g", "Task": "t"},
        },
    )
    assert await read(target, "shared/config") == "shared/config"


async def test_the_identity_dies_with_its_allocation(world: World) -> None:
    await world.put_var("nomad/jobs/web")
    target = await world.task_target()
    assert await read(target, "nomad/jobs/web") == "nomad/jobs/web"
    await world.call("DELETE", "/v1/job/web")
    for _ in range(200):
        allocs = list(world.twin.state.allocs.values())
        if allocs and all(a["ClientStatus"] in ("complete", "failed", "lost") for a in allocs):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the allocation never stopped")
    with pytest.raises(TemplateError, match="403"):
        await read(target, "nomad/jobs/web")
