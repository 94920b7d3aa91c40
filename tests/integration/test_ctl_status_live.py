"""controllerctl status against the twins and a real OpenBao: in sync, then three kinds of drift."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from controller.ctl.rows import ORPHANED
from controller.nomad.lock import NomadVariableLock
from controller.nomad.variables import NomadVariables
from controller.status.store import StatusStore
from controller.vault import default_issuer_id
from crds_equivalent import keys
from crds_equivalent.status import Condition, ConditionType, MeshStatus, Phase
from devstack.vault import OpenBao
from tests.support.ctl_stack import INT_MOUNT, Stack, job, running_with_tls, stack

pytestmark = pytest.mark.timeout(60)


async def record_ready(s: Stack, stored: dict[str, Any], issuer: str) -> None:
    """What the controller writes for a converged job (conditions all True)."""
    now = datetime.now(UTC)
    marker = stored["TaskGroups"][0]["Meta"][keys.INJECTED_GROUP_META]
    status = MeshStatus(
        phase=Phase.READY,
        observed_index=stored["JobModifyIndex"],
        spec_hash=marker,
        conditions=tuple(
            Condition(type=t, status="True", reason="Ok", last_transition=now.isoformat())
            for t in ConditionType
        ),
        cert_not_after=(now + timedelta(hours=70)).isoformat(),
        issuer=f"{issuer} (mesh-int)",
    )
    await StatusStore(NomadVariables(s.client)).write("default", stored["ID"], status)


def rows_by_job(out: str) -> dict[str, dict[str, Any]]:
    doc = json.loads(out)
    return {r["job"]: r for r in doc["rows"]}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_status_in_sync_then_drift(openbao: OpenBao) -> None:
    async with stack(openbao) as s:
        issuer = await default_issuer_id(s.vault, INT_MOUNT)
        for job_id in ("web", "api"):
            await record_ready(s, dict(await running_with_tls(s, job_id)), issuer)
        await s.jobs.register_job(job("plain", None, count=1), enforce_index=0)
        lock = NomadVariableLock(
            s.client, path=keys.VAR_LEADER, identity="node-1/4242", version="0.1.0"
        )
        assert await lock.acquire()

        result = await s.ctl("status", "-o", "json")
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        assert doc["in_sync"] and doc["leader"]["identity"] == "node-1/4242"
        assert doc["leader"]["lock"] == "held"
        rows = rows_by_job(result.output)
        assert set(rows) == {"web", "api"}
        web = rows["web"]
        assert (web["group"], web["service"], web["mode"], web["injected"]) == (
            "app",
            "web",
            "strict",
            "current",
        )
        assert web["allocs"] == {"running": 2, "desired": 2}
        assert web["tls"] == {"passing": 2, "registered": 2}
        assert web["plaintext"] == 0 and web["phase"] == "Ready"
        assert web["cert"]["issuer_state"] == "current"

        table = await s.ctl("status")
        assert table.exit_code == 0
        line = next(li for li in table.output.splitlines() if li.startswith("✔   web"))
        assert line.split()[1:9] == ["web", "app", "web", "strict", "current", "2/2", "2/2", "0"]
        assert "✔ all 2 rows in sync (exit 0)" in table.output

        explained = await s.ctl("explain", "web")
        assert explained.exit_code == 0, explained.output
        assert "NoOp: up to date" in explained.output
        stored = await s.jobs.get_job("web", "default")
        assert stored is not None
        [sidecar] = [t for t in stored["TaskGroups"][0]["Tasks"] if t["Name"] == keys.SIDECAR_TASK]
        conf = next(t for t in sidecar["Templates"] if t["DestPath"] == "local/nginx.conf")
        assert conf["EmbeddedTmpl"].rstrip("\n") in explained.output
        assert (await s.ctl("explain", "nope")).exit_code == 1

        # Drift 1: the flag removed by hand while the controller is away (markers stay).
        api = await s.jobs.get_job("api", "default")
        assert api is not None
        await s.jobs.register_job({**api, "Meta": {}}, enforce_index=api["JobModifyIndex"])
        result = await s.ctl("status", "-o", "json")
        assert result.exit_code == 1
        rows = rows_by_job(result.output)
        assert rows["api"]["injected"] == "orphaned" and rows["api"]["drift"][0] == ORPHANED
        assert rows["web"]["in_sync"]
        table = await s.ctl("status", "--job", "api")
        assert "orphaned sidecar: mesh.tls is off" in table.output and table.exit_code == 1

        # Drift 2: a plaintext instance of web registered by hand.
        async with (
            aiohttp.ClientSession() as http,
            http.put(
                f"http://{s.consul.address}/v1/agent/service/register",
                json={"ID": "legacy-web", "Name": "web", "Address": "127.0.0.1", "Port": 8080},
            ) as resp,
        ):
            assert resp.status == 200
        result = await s.ctl("status", "-o", "json", "--job", "web")
        assert result.exit_code == 1
        web = rows_by_job(result.output)["web"]
        assert web["plaintext"] == 1 and web["tls"] == {"passing": 2, "registered": 2}
        assert web["drift"] == ["1 instance(s) of web still on plaintext (127.0.0.1:8080)"]

        # Without --live only the records count: nothing in them is wrong.
        assert (await s.ctl("status", "--no-live", "--job", "web")).exit_code == 0

        # Nomad unreachable: exit 2, and the report says which backend.
        down = await s.ctl("status", NOMAD_ADDR=f"http://127.0.0.1:{closed_port()}")
        assert down.exit_code == 2
        assert "cannot read nomad" in down.output and "nomad × http://127.0.0.1:" in down.output
        await lock.release()
