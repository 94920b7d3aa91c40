"""Intermediate rotation against the Nomad and Consul twins and the real OpenBao.

The twin's simulated driver runs no sidecar, so "what an instance serves" comes from a probe
that stands in for the sidecar's template (``tests.support.rotation_probe``). Everything else
is real: the issuers in OpenBao, the job versions, deployments and allocations in the Nomad
twin, Consul's registrations, the rotation record in a Nomad Variable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.consul.client import ConsulClient
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from controller.nomad.variables import NomadVariables
from controller.runtime.clock import SystemClock
from controller.tlsprobe import ProbeTarget
from controller.vault import PkiLayout, VaultClient, VaultConnection, bootstrap_pki, read_issuer
from controller.vault.pki_admin import VaultPki
from crds_equivalent.config import MeshConfig
from devstack.consul import start_consul_twin
from devstack.nomad import SimulatedDriver, start_nomad_twin
from devstack.registrar import ConsulRegistrar
from devstack.vault import OpenBao
from reconcilers.injection.plan import Apply, plan_job
from reconcilers.injection.reissue import nonces
from reconcilers.rotation.metrics import RotationMetrics
from reconcilers.rotation.rotator import RotationBusy, RotationSettings, Rotator
from reconcilers.rotation.state import RotationState, Stage
from tests.support.rotation_probe import IssuingProbe
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(90)

CONFIG = MeshConfig(root_mount="rot_pki", pki_mount="rot_pki_int")
LAYOUT = PkiLayout(root_mount="rot_pki", int_mount="rot_pki_int")
SETTINGS = RotationSettings(wave_size=2, wave_timeout=20, poll=0.1, stale_after=60)


class FailingSidecar(SimulatedDriver):
    """The re-issued sidecar of job ``broken`` dies at once (its deployment must fail)."""

    async def start(self, alloc: dict[str, Any], task: dict[str, Any], ctx: Any) -> None:
        await super().start(alloc, task, ctx)
        template = str((task.get("Templates") or [{}])[0].get("EmbeddedTmpl"))
        if alloc["JobID"] == "broken" and "mesh.tls.rotation" in template:
            asyncio.get_running_loop().call_later(0.05, ctx.task_exited, 1)


def user_job(job_id: str) -> dict[str, Any]:
    """A meshed job of two instances; a ``canary-*`` one rolls through a canary that only its
    user promotes (no auto_promote, ``mesh.tls.promote`` left at manual)."""
    # Half a second of health per allocation keeps the waves short (Nomad's default is 10 s).
    update: dict[str, Any] = {"MaxParallel": 1, "MinHealthyTime": 500_000_000}
    if job_id.startswith("canary"):
        update["Canary"] = 1
    return {
        "ID": job_id,
        "Name": job_id,
        "Namespace": "default",
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "app",
                "Count": 2,
                "Update": update,
                "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
                # Nomad fails a deployment early only when the failed alloc cannot be
                # rescheduled (deploymentwatcher shouldFailEarly); otherwise it waits for the
                # 10 min progress deadline.
                "ReschedulePolicy": {"Attempts": 0, "Unlimited": False},
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": job_id, "PortLabel": "http", "Provider": "consul"}],
                "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "x"}}],
            }
        ],
    }


@dataclass
class World:
    jobs: NomadJobs
    consul: ConsulClient
    vault: VaultClient
    probe: IssuingProbe
    variables: NomadVariables

    def rotator(self, owner: str = "test", **kw: Any) -> Rotator:
        return Rotator(
            jobs=self.jobs,
            lister=self.jobs,
            consul=self.consul,
            probe=self.probe,
            pki=VaultPki(self.vault, CONFIG),
            store=self.variables,
            config=CONFIG,
            owner=owner,
            settings=kw.pop("settings", SETTINGS),
            clock=SystemClock(),
            **kw,
        )

    async def submit(self, *job_ids: str) -> None:
        for job_id in job_ids:
            decision = plan_job(user_job(job_id), CONFIG)
            assert isinstance(decision, Apply)
            await self.jobs.register_job(decision.job, enforce_index=0)
        for job_id in job_ids:
            await eventually(lambda j=job_id: self.running(j, 2), within=20.0, what=f"{job_id} up")
            entries = (await self.consul.health_service(job_id)).entries
            name = f"{job_id}.{CONFIG.domain}"
            await self.probe.started(
                [ProbeTarget(e.effective_address, e.port, name) for e in entries]
            )

    async def running(self, job_id: str, count: int) -> bool:
        allocs = await self.jobs.job_allocations(job_id, "default")
        up = [a for a in allocs if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]
        health = await self.consul.health_service(job_id)
        return len(up) == count and len(health.entries) == count

    async def default_issuer(self) -> str:
        return (await read_issuer(self.vault, CONFIG.pki_mount)).issuer_id


@contextlib.asynccontextmanager
async def world(bao: OpenBao) -> AsyncIterator[World]:
    vault = VaultClient(VaultConnection(bao.addr, bao.root_token))
    await bootstrap_pki(vault, LAYOUT)
    consul_twin = await start_consul_twin(min_check_interval=0.05)
    registrar = ConsulRegistrar(consul_twin.address)
    nomad = await start_nomad_twin(
        nodes=2, alloc_hooks=registrar, drivers={"docker": FailingSidecar()}
    )
    client = NomadClient(nomad.url, retry_budget=0.5)
    consul = ConsulClient(consul_twin.address)
    try:
        yield World(
            NomadJobs(client), consul, vault, IssuingProbe(vault, CONFIG), NomadVariables(client)
        )
    finally:
        await consul.close()
        await client.close()
        await nomad.stop()
        await registrar.close()
        await consul_twin.stop()


async def test_rotation_rolls_every_meshed_job_in_waves_and_retires_the_old_issuer(
    openbao: OpenBao,
) -> None:
    async with world(openbao) as w:
        await w.submit("alpha", "beta", "gamma")
        old = await w.default_issuer()
        seen: list[tuple[int, int]] = []
        registry = CollectorRegistry()
        rotator = w.rotator(
            metrics=RotationMetrics(registry),
            on_progress=lambda s, _: seen.append((s.wave, len(s.done))),
        )
        state = await rotator.rotate()

        assert state.stage is Stage.DONE, state.message
        assert [len(wave) for wave in state.waves] == [2, 1]
        assert {wave for wave, _ in seen} == {0, 1, 2}
        new = await w.default_issuer()
        assert new == state.new_issuer != old
        retired = await read_issuer(w.vault, CONFIG.pki_mount, old)
        assert "issuing-certificates" not in retired.usage and "read-only" in retired.usage
        for job_id in ("alpha", "beta", "gamma"):
            job = await w.jobs.get_job(job_id, "default")
            assert job is not None and nonces(job, CONFIG) == {"app": state.nonce}
            health = await w.consul.health_service(job_id)
            leaves = await w.probe.probe_many(
                [ProbeTarget(e.effective_address, e.port, f"{job_id}.x") for e in health.entries],
                "",
            )
            new_info = await read_issuer(w.vault, CONFIG.pki_mount, new)
            assert len(leaves) == 2
            assert all(r.leaf and r.leaf.issuer_common_name == new_info.common_name for r in leaves)
        stored = await w.variables.get("mesh-controller/rotation")
        assert stored is not None and RotationState.from_items(stored.items) == state
        assert registry.get_sample_value("mesh_rotation_in_progress") == 0
        # a second run is a new rotation; the finished one is history, not resumed
        assert (await w.rotator().read()) == state


async def test_a_killed_rotation_is_resumed_by_another_driver_without_a_second_issuer(
    openbao: OpenBao,
) -> None:
    async with world(openbao) as w:
        await w.submit("delta", "eps", "zeta")
        first = w.rotator("crashing")
        task: asyncio.Task[RotationState] | None = None

        def kill_after_first_wave(state: RotationState, _: str) -> None:
            if state.wave == 1 and task is not None:
                task.cancel()

        first.on_progress = kill_after_first_wave
        task = asyncio.create_task(first.rotate())
        with pytest.raises(asyncio.CancelledError):
            await task
        record = await first.read()
        assert record is not None and record.stage is Stage.ROLLING and record.wave == 1

        with pytest.raises(RotationBusy):  # its heartbeat is fresh: not ours to take
            await w.rotator("second").rotate()
        patient = RotationSettings(wave_size=2, wave_timeout=20, poll=0.1, stale_after=0)
        state = await w.rotator("second", settings=patient).rotate()

        assert state.stage is Stage.DONE and state.id == record.id and state.owner == "second"
        named = [i for i in await VaultPki(w.vault, CONFIG).issuers() if i.issuer_name]
        assert [i.issuer_name for i in named].count(record.issuer_name) == 1


async def test_a_failed_deployment_stops_the_rotation_and_says_why(openbao: OpenBao) -> None:
    async with world(openbao) as w:
        await w.submit("broken", "fine")
        old = await w.default_issuer()
        state = await w.rotator().rotate()
        assert state.stage is Stage.FAILED
        assert "default/broken" in state.message and "deployment" in state.message
        retired = await read_issuer(w.vault, CONFIG.pki_mount, old)
        assert "issuing-certificates" in retired.usage  # never retired with leaves left on it
        assert await w.running("fine", 2)


async def test_a_job_whose_canaries_wait_for_a_human_is_skipped_with_the_reason(
    openbao: OpenBao,
) -> None:
    async with world(openbao) as w:
        await w.submit("plain", "canary-shop")
        before = await w.jobs.get_job("canary-shop", "default")
        assert before is not None
        state = await w.rotator().rotate()

        assert state.stage is Stage.DONE, state.message  # no silent wave timeout
        reason = state.skipped.get("default/canary-shop", "")
        assert "update.canary = 1" in reason and "manual promotion" in reason
        assert "skipped" in state.message and "default/canary-shop" in state.message
        after = await w.jobs.get_job("canary-shop", "default")
        assert after is not None and after["Version"] == before["Version"]  # never written
        plain = await w.jobs.get_job("plain", "default")
        assert plain is not None and nonces(plain, CONFIG) == {"app": state.nonce}
        stored = await w.variables.get("mesh-controller/rotation")
        assert stored is not None and RotationState.from_items(stored.items) == state


async def test_the_controller_tick_rotates_when_due_and_not_again_right_after(
    openbao: OpenBao,
) -> None:
    async with world(openbao) as w:
        await w.submit("auto1")
        calm = w.rotator("controller", settings=RotationSettings(poll=0.1, rotate_before=60))
        before = await w.default_issuer()
        assert await calm.tick() is None  # not due: nothing written
        assert await w.default_issuer() == before
        eager = RotationSettings(poll=0.1, wave_timeout=20, rotate_before=20 * 365 * 86400.0)
        ticking = w.rotator("controller", settings=eager)
        state = await ticking.tick()
        assert state is not None and state.stage is Stage.DONE and state.trigger == "auto"
        again = await ticking.tick()  # still "due" (the root bounds it): no rotation loop
        assert again == state and await w.default_issuer() == state.new_issuer
