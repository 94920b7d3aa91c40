"""The controller keeps its own Vault token alive: three minutes on a 30 s periodic token.

Real OpenBao, real nginx sidecars, the controller in-process on an orphan periodic token with
the shipped ``mesh-controller`` policy and a period of 30 s, the way ``controllerctl install``
makes it with a shorter period. Without renewal the token would be gone after 30 s, and with
it the trust bundle of the TLS probes and every rotation step. After three minutes (six
periods) the token is still valid, the controller rotates the intermediate CA with it, its
TLS probes verify the leaves of the new issuer against the bundle it reads from Vault, and
``mesh_vault_token_expiry_timestamp_seconds`` names a time in the future.

One test, about four minutes; it runs in ``make test`` with the other E2Es.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence

import aiohttp
import pytest
from cryptography import x509

from chaos.world import DEV_TUNING, meshed_web
from controller.tlsprobe import TlsProber, subject_key_id
from controller.tlsprobe.prober import ProbeResult, ProbeTarget
from controller.vault import VaultClient, VaultConnection, default_issuer_id, read_issuer
from crds_equivalent.status import MeshStatus, Phase
from reconcilers.rotation.state import Stage
from tests.support.vault_tokens import TokenWorld, token_world
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

PERIOD = 30
RUN_FOR = 180.0  # six periods
JOB = "keeper"


class ProbeLog:
    """Every probe the health reconciler makes, with when it was made (monotonic)."""

    def __init__(self, prober: TlsProber) -> None:
        self.results: list[tuple[float, ProbeResult]] = []
        inner = prober.probe_many

        async def recorded(targets: Sequence[ProbeTarget], anchors_pem: str) -> list[ProbeResult]:
            results = await inner(targets, anchors_pem)
            self.results += [(time.monotonic(), r) for r in results]
            return results

        prober.probe_many = recorded  # type: ignore[method-assign]

    def ok_since(self, since: float) -> list[ProbeResult]:
        return [r for at, r in self.results if at >= since and r.ok]


async def status_of(w: TokenWorld) -> MeshStatus | None:
    return await w.app.statuses.get("default", JOB)


async def expiry_metric(url: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        text = await resp.text()
    found = re.search(r"^mesh_vault_token_expiry_timestamp_seconds ([0-9.e+]+)$", text, re.M)
    assert found, "the expiry gauge is not exported"
    return float(found.group(1))


async def test_a_30s_periodic_token_outlives_three_minutes_and_rotation_and_probes_work() -> None:
    async with token_world(f"{PERIOD}s", DEV_TUNING, MESH_HEALTH_INTERVAL="2s") as w:
        app = w.app
        probes = ProbeLog(app.prober)
        await app.jobs.register_job(meshed_web(JOB), enforce_index=None)

        async def ready() -> bool:
            status = await status_of(w)
            return status is not None and status.phase == Phase.READY

        await eventually(ready, within=120, every=0.5, what=f"{JOB} Ready")
        started = time.monotonic()
        while time.monotonic() - started < RUN_FOR:  # the controller just runs, six periods
            await asyncio.sleep(5)

        # The token is alive, because the controller renewed it (it was created 3 min ago
        # with a 30 s period and nobody else holds it).
        own = VaultClient(VaultConnection(w.stack.vault.addr, w.token))
        looked = ((await own.read("auth/token/lookup-self")) or {}).get("data") or {}
        assert looked["period"] == PERIOD and 0 < looked["ttl"] <= PERIOD
        assert app.vault_token.renewed >= 2  # more than one period went by
        assert await expiry_metric(app.http.url) > time.time()

        # Rotation, driven by the controller's rotator with the controller's token.
        old_issuer = await default_issuer_id(w.admin, app.settings.mesh.pki_mount)
        state = await app.rotator.rotate(trigger="test")
        assert state.stage is Stage.DONE, state.message
        assert state.new_issuer and state.new_issuer != old_issuer
        assert await default_issuer_id(w.admin, app.settings.mesh.pki_mount) == state.new_issuer

        # The TLS probes still work: the leaves of the new issuer verify against the bundle
        # the controller reads from Vault, and the job is Ready on them.
        new = await read_issuer(w.admin, app.settings.mesh.pki_mount, state.new_issuer)
        new_ski = subject_key_id(x509.load_pem_x509_certificate(new.certificate.encode()))
        rotated = time.monotonic()

        async def verified_on_new_issuer() -> bool:
            status = await status_of(w)
            on_new = [r for r in probes.ok_since(rotated) if r.leaf is not None]
            return (
                status is not None
                and status.phase == Phase.READY
                and bool(on_new)
                and all(r.leaf.authority_key_id == new_ski for r in on_new if r.leaf)
            )

        await eventually(verified_on_new_issuer, within=90, every=0.5, what="probes on new CA")
        assert probes.ok_since(started + RUN_FOR)
        assert (await own.read("auth/token/lookup-self") or {}).get("data", {}).get("ttl", 0) > 0
