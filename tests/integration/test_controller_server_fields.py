"""The controller against the server-added fields of a strict Nomad twin (audit §9, §10).

Each test states what the controller should do on a real Nomad 1.10 cluster and is
expected to fail until issue 14 fixes the controller: the twin now adds and keeps these
fields exactly as ``ApiJobToStructJob``, ``upsertJobVersion`` and
``jobImplicitIdentitiesHook`` do (see tests/contract/test_nomad_twin_server_fields.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from devstack.nomad import NomadTwin, start_nomad_twin
from devstack.testing import User, eventually, injected, running, settings_for, stored, user_job

pytestmark = pytest.mark.timeout(60)


@pytest_asyncio.fixture
async def twin() -> AsyncIterator[NomadTwin]:
    t = await start_nomad_twin(nodes=1, heartbeat_interval=0.2)
    try:
        yield t
    finally:
        await t.stop()


async def test_injection_does_not_copy_the_users_version_tag(twin: NomadTwin, user: User) -> None:
    spec = user_job("tagged", {"mesh.tls": "true"})
    spec["VersionTag"] = {"Name": "golden", "Description": "approved release"}
    async with running(settings_for(twin)) as (_app, _):
        await user.submit(spec)
        await eventually(lambda: injected(stored(twin, "tagged")), what="tagged injected")
        versions = twin.state.job_versions[("default", "tagged")]
        tags = [(v["Version"], (v.get("VersionTag") or {}).get("Name")) for v in versions]
        assert tags == [(1, None), (0, "golden")]
