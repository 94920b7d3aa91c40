"""Contract tests: what ``Job.Register`` checks beyond ``submit-job`` (audit §4).

Pinned against nomad v1.10.5 ``nomad/job_endpoint.go`` ``Register`` (the "Validate Volume
Permissions" loop, ``csi-register-plugin`` for CSIPluginConfig tasks, ``sentinel-override``
for PolicyOverride), ``nomad/csi_endpoint.go`` ``allowCSIMount`` (plugin read AND
``csi-mount-volume``), ``acl/acl.go`` ``AllowHostVolumeOperation`` / ``AllowPluginRead`` /
``maxPrivilege`` and ``acl/policy.go`` ``expandHostVolumePolicy`` (read -> mount-readonly,
write -> both). Every refusal is 403 ``Permission denied`` (structs.ErrPermissionDenied).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devstack.nomad import NomadTwin, start_nomad_twin

pytestmark = pytest.mark.timeout(30)

NS_WRITE = 'namespace "default" { policy = "write" }'


def volume_job(volumes: dict[str, Any], **task_extra: Any) -> dict[str, Any]:
    return {
        "ID": "vol",
        "TaskGroups": [
            {
                "Name": "g",
                "Volumes": volumes,
                "Tasks": [{"Name": "t", "Driver": "docker", "Config": {}, **task_extra}],
            }
        ],
    }


HOST_RW = {"data": {"Type": "host", "Source": "data", "ReadOnly": False}}
HOST_RO = {"data": {"Type": "host", "Source": "data", "ReadOnly": True}}
CSI = {"db": {"Type": "csi", "Source": "db", "AccessMode": "single-node-writer"}}


@pytest.fixture
async def twin() -> AsyncIterator[NomadTwin]:
    t = await start_nomad_twin(nodes=1, acl=True)
    yield t
    await t.stop()


class Client:
    def __init__(self, twin: NomadTwin, http: aiohttp.ClientSession) -> None:
        assert twin.management_token is not None
        self.twin, self.http, self.mgmt = twin, http, twin.management_token
        self.n = 0

    async def token(self, *rules: str) -> str:
        names = []
        for text in rules:
            self.n += 1
            name = f"p{self.n}"
            async with self.http.post(
                f"{self.twin.url}/v1/acl/policy/{name}",
                json={"Name": name, "Rules": text},
                headers={"X-Nomad-Token": self.mgmt},
            ) as r:
                assert r.status == 200, await r.text()
            names.append(name)
        async with self.http.post(
            f"{self.twin.url}/v1/acl/token",
            json={"Type": "client", "Policies": names},
            headers={"X-Nomad-Token": self.mgmt},
        ) as r:
            secret: str = (await r.json())["SecretID"]
            return secret

    async def register(self, token: str, job: dict[str, Any], **extra: Any) -> tuple[int, str]:
        async with self.http.post(
            f"{self.twin.url}/v1/jobs",
            json={"Job": job, **extra},
            headers={"X-Nomad-Token": token},
        ) as r:
            return r.status, await r.text()


@pytest.fixture
async def c(twin: NomadTwin) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as http:
        yield Client(twin, http)


DENIED = (403, "Permission denied")


async def test_submit_job_alone_cannot_mount_host_volumes(c: Client) -> None:
    tok = await c.token(NS_WRITE)
    assert await c.register(tok, volume_job(HOST_RW)) == DENIED
    assert await c.register(tok, volume_job(HOST_RO)) == DENIED
    assert (await c.register(tok, volume_job({})))[0] == 200


async def test_read_policy_mounts_read_only_only(c: Client) -> None:
    tok = await c.token(NS_WRITE, 'host_volume "data" { policy = "read" }')
    assert (await c.register(tok, volume_job(HOST_RO)))[0] == 200
    assert await c.register(tok, volume_job(HOST_RW)) == DENIED


async def test_mount_readwrite_capability_on_a_glob_mounts_read_write(c: Client) -> None:
    tok = await c.token(NS_WRITE, 'host_volume "*" { capabilities = ["mount-readwrite"] }')
    assert (await c.register(tok, volume_job(HOST_RW)))[0] == 200
    assert (await c.register(tok, volume_job(HOST_RO)))[0] == 200


async def test_a_deny_in_any_policy_wins(c: Client) -> None:
    tok = await c.token(
        NS_WRITE,
        'host_volume "data" { policy = "write" }',
        'host_volume "data" { policy = "deny" }',
    )
    assert await c.register(tok, volume_job(HOST_RO)) == DENIED


async def test_bidirectional_mount_needs_mount_readwrite(c: Client) -> None:
    tok = await c.token(NS_WRITE, 'host_volume "data" { policy = "read" }')
    mounts = [{"Volume": "data", "Destination": "/d", "PropagationMode": "bidirectional"}]
    assert await c.register(tok, volume_job(HOST_RO, VolumeMounts=mounts)) == DENIED


async def test_csi_needs_plugin_read_and_csi_mount_volume(c: Client) -> None:
    no_plugin = await c.token(NS_WRITE)
    assert await c.register(no_plugin, volume_job(CSI)) == DENIED
    read = await c.token(NS_WRITE, 'plugin { policy = "read" }')
    assert (await c.register(read, volume_job(CSI)))[0] == 200
    # AllowPluginRead is plugin == "read" after maxPrivilege: write does not include it.
    write = await c.token(NS_WRITE, 'plugin { policy = "write" }')
    assert await c.register(write, volume_job(CSI)) == DENIED
    no_mount = await c.token(
        'namespace "default" { capabilities = ["submit-job"] }', 'plugin { policy = "read" }'
    )
    assert await c.register(no_mount, volume_job(CSI)) == DENIED


async def test_unknown_volume_type_is_refused(c: Client) -> None:
    tok = await c.token(NS_WRITE, 'host_volume "*" { policy = "write" }')
    assert await c.register(tok, volume_job({"x": {"Type": "nfs", "Source": "x"}})) == DENIED


async def test_plugin_tasks_and_policy_override_need_their_capabilities(c: Client) -> None:
    tok = await c.token(NS_WRITE)
    plugin_task = {"ID": "p", "Type": "node", "MountDir": "/csi"}
    assert await c.register(tok, volume_job({}, CSIPluginConfig=plugin_task)) == DENIED
    assert await c.register(tok, volume_job({}), PolicyOverride=True) == DENIED
    more = await c.token(
        'namespace "default" { policy = "write"\n'
        ' capabilities = ["csi-register-plugin", "sentinel-override"] }'
    )
    assert (await c.register(more, volume_job({}, CSIPluginConfig=plugin_task)))[0] == 200
    assert (await c.register(more, volume_job({}), PolicyOverride=True))[0] == 200
