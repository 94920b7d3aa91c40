"""Rotation in view, during a real rotation on the twins and OpenBao: while wave 2 of 2 runs,
the controller's /status document and ``controllerctl status -o json`` (the real CLI) both say
so, and ``controllerctl check`` warns about it; once done, the header says it finished.

The rotation is paused deterministically right after it recorded the end of wave 1: the
Variable store it writes through waits on a gate after that write, so the views are read while
the record says "rolling, wave 2/2" and nothing moves under them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest

from controller.consul.client import ConsulClient
from controller.http.status_view import StatusView
from controller.nomad.variables import NomadVariables, Variable
from controller.runtime.clock import SystemClock
from controller.vault.pki_admin import VaultPki
from devstack.vault import OpenBao
from reconcilers.rotation.rotator import RotationSettings, Rotator
from reconcilers.rotation.state import RotationState, Stage
from reconcilers.rotation.view import read_summary
from tests.support.ctl_stack import CONFIG, Stack, running_with_tls, stack
from tests.support.rotation_probe import IssuingProbe

pytestmark = pytest.mark.timeout(120)

SETTINGS = RotationSettings(wave_size=2, wave_timeout=30, poll=0.1, stale_after=60)


class GatedStore:
    """The rotation's Variable store, pausing the driver after it records wave 2 in progress."""

    def __init__(self, inner: NomadVariables) -> None:
        self.inner = inner
        self.paused = asyncio.Event()
        self.release = asyncio.Event()

    async def get(self, path: str) -> Variable | None:
        return await self.inner.get(path)

    async def put(self, path: str, items: Mapping[str, str], *, cas: int | None = None) -> Variable:
        written = await self.inner.put(path, items, cas=cas)
        if items.get("stage") == "rolling" and items.get("wave") == "1":
            self.paused.set()
            await self.release.wait()
        return written


class NoJobs:
    phases: dict[Any, Any] = {}
    writes: dict[str, int] = {}


class Idle:
    last_index = 0
    last_line_time = None
    lists = 0
    is_leader = False
    leader_since = None
    identity = "test/1"
    version = "0"
    waiting = 0
    in_flight: frozenset[Any] = frozenset()

    def is_synced(self) -> bool:
        return True

    async def holder(self) -> None:
        return None

    def __len__(self) -> int:
        return 0


def status_view(s: Stack) -> StatusView:
    """/status as the controller builds it (``App._build_view``): the rotation is read from the
    Variable through ``read_summary``."""
    idle = Idle()
    return StatusView(
        book=NoJobs(),  # type: ignore[arg-type]
        source=idle,
        leadership=idle,  # type: ignore[arg-type]
        lock=idle,  # type: ignore[arg-type]
        queue=idle,
        clock=SystemClock(),
        holder_timeout=5.0,
        lock_errors=(),
        rotation=lambda: read_summary(NomadVariables(s.client)),
    )


async def test_status_and_check_show_the_rotation_wave_by_wave(openbao: OpenBao) -> None:
    async with stack(openbao) as s:
        for job_id in ("ra", "rb", "rc"):
            await running_with_tls(s, job_id)
        old = (await VaultPki(s.vault, CONFIG).default_issuer()).issuer_id
        store = GatedStore(NomadVariables(s.client))
        consul = ConsulClient(s.consul.address)
        rotator = Rotator(
            jobs=s.jobs,
            lister=s.jobs,
            consul=consul,
            probe=IssuingProbe(s.vault, CONFIG),
            pki=VaultPki(s.vault, CONFIG),
            store=store,
            config=CONFIG,
            owner="test-driver",
            settings=SETTINGS,
            clock=SystemClock(),
        )
        task = asyncio.create_task(rotator.rotate())
        try:
            await asyncio.wait_for(store.paused.wait(), 60)

            doc = await status_view(s).status()
            seen = doc["rotation"]
            assert (seen["stage"], seen["wave"], seen["waves"]) == ("rolling", 2, 2)
            assert (seen["jobs_done"], seen["jobs_left"]) == (2, 1)
            assert seen["old_issuer"] == old and seen["new_issuer"] not in ("", old)

            result = await s.ctl("status", "-o", "json")
            report = json.loads(result.output)
            assert report["rotation"] == seen  # one summary, the same numbers

            table = await s.ctl("status")
            print("\n" + table.output)  # what the README shows
            line = next(x for x in table.output.splitlines() if x.startswith("Rotation"))
            assert f"issuer {old} → {seen['new_issuer']}, wave 2/2, jobs done 2 / left 1" in line

            check = await s.ctl("check")
            assert f"‼ intermediate CA rotation: {seen['id']} rolling: issuer {old}" in check.output
            assert "wave 2/2" in check.output
            print(check.output)
            print(json.dumps(seen, indent=2))
        finally:
            store.release.set()
        try:
            state: RotationState = await asyncio.wait_for(task, 60)
        finally:
            await consul.close()
        assert state.stage is Stage.DONE, state.message

        after = await s.ctl("status", "-o", "json")
        done = json.loads(after.output)["rotation"]
        assert (done["stage"], done["wave"], done["waves"], done["jobs_left"]) == ("done", 2, 2, 0)
        assert (await status_view(s).status())["rotation"] == done
        quiet = await s.ctl("check")
        assert "intermediate CA rotation" not in quiet.output  # done: nothing to say
