"""The status store against the Nomad twin's Variables: CAS writes only on change, conflicts
re-read and retry once, delete, listing (including job IDs that are not valid path chars)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from controller.nomad.client import NomadClient
from controller.nomad.variables import NomadVariables, Variable
from controller.runtime.clock import FakeClock
from controller.status.store import StatusConflict, StatusStore, path_for
from crds_equivalent.keys import status_path
from crds_equivalent.status import (
    Condition,
    ConditionStatus,
    ConditionType,
    MeshStatus,
    Phase,
)

pytestmark = pytest.mark.timeout(30)

INJECTED = MeshStatus(
    phase=Phase.INJECTED,
    observed_index=12,
    spec_hash="v1:0123456789abcdef",
    conditions=(
        Condition(
            type=ConditionType.SIDECAR_INJECTED,
            status=ConditionStatus.TRUE,
            reason="Injected",
            last_transition="2025-01-01T00:00:00+00:00",
        ),
    ),
)


async def stored(variables: NomadVariables, namespace: str, job: str) -> Variable | None:
    return await variables.get(path_for(namespace, job))


async def test_write_only_on_change_and_read_back(nomad: NomadClient) -> None:
    variables = NomadVariables(nomad)
    clock = FakeClock()
    store = StatusStore(variables, clock=clock)
    assert await store.get("default", "web") is None
    assert await store.write("default", "web", INJECTED)
    first = await stored(variables, "default", "web")
    assert first is not None
    assert first.path == status_path("default", "web")
    assert first.items["phase"] == "Injected"
    assert first.items["updated_at"] == clock.now().isoformat()

    await clock.advance(60)
    again = INJECTED.model_copy(update={"updated_at": "later"})
    assert not await store.write("default", "web", again)  # same content: no write
    # a fresh store (new process) reads before deciding, and also skips
    assert not await StatusStore(variables, clock=clock).write("default", "web", INJECTED)
    unchanged = await stored(variables, "default", "web")
    assert unchanged is not None
    assert unchanged.modify_index == first.modify_index

    ready = INJECTED.model_copy(update={"phase": Phase.READY})
    assert await store.write("default", "web", ready)
    read = await store.get("default", "web")
    assert read is not None
    assert read.phase == Phase.READY
    assert read.same_content(ready)
    assert store.writes == 2


async def test_conflict_rereads_and_retries_once(nomad: NomadClient) -> None:
    variables = NomadVariables(nomad)
    ours, theirs = StatusStore(variables), StatusStore(variables)
    assert await ours.write("default", "web", INJECTED)
    # another writer moves the record on; our cached ModifyIndex is now stale
    degraded = INJECTED.model_copy(update={"phase": Phase.DEGRADED, "message": "theirs"})
    assert await theirs.write("default", "web", degraded)
    ready = INJECTED.model_copy(update={"phase": Phase.READY})
    assert await ours.write("default", "web", ready)
    final = await ours.get("default", "web")
    assert final is not None
    assert final.phase == Phase.READY
    # "theirs" now has a stale cache, and we already stored what it wants:
    # its CAS fails, the re-read shows the same content, and it skips.
    assert not await theirs.write("default", "web", ready)


async def test_cached_entries_expire(nomad: NomadClient) -> None:
    variables = NomadVariables(nomad)
    clock = FakeClock()
    ours, theirs = StatusStore(variables, clock=clock), StatusStore(variables, clock=clock)
    assert await ours.write("default", "web", INJECTED)
    degraded = INJECTED.model_copy(update={"phase": Phase.DEGRADED})
    assert await theirs.write("default", "web", degraded)
    # within the cache age, our (stale) cache would skip; after it, we re-read and repair
    await clock.advance(ours.max_cache_age + 1)
    assert await ours.write("default", "web", INJECTED)
    final = await ours.get("default", "web")
    assert final is not None
    assert final.phase == Phase.INJECTED


class RacingVariables(NomadVariables):
    """A writer that always gets in first: bumps the record just before each of our CAS puts."""

    async def cas_put(self, path: str, items: Mapping[str, str], *, cas: int) -> Variable | None:
        current = await self.get(path)
        bumped = dict(current.items) if current else {"phase": "Pending"}
        bumped["message"] = f"racer {current.modify_index if current else 0}"
        await self.put(path, bumped)
        return await super().cas_put(path, items, cas=cas)


async def test_second_conflict_raises(nomad: NomadClient) -> None:
    store = StatusStore(RacingVariables(nomad))
    with pytest.raises(StatusConflict):
        await store.write("default", "web", INJECTED)


async def test_delete_and_list(nomad: NomadClient) -> None:
    variables = NomadVariables(nomad)
    store = StatusStore(variables)
    long_id = "very-long-job-name." * 8
    for ns, job in (("default", "web"), ("prod", "api.v2"), ("default", long_id)):
        assert await store.write(ns, job, INJECTED)
    await variables.put("mesh-controller/config", {"domain": "service.consul"})
    assert await store.keys() == sorted(
        [("default", "web"), ("prod", "api.v2"), ("default", long_id)]
    )
    everything = await store.list_all()
    assert set(everything) == {("default", "web"), ("prod", "api.v2"), ("default", long_id)}
    assert all(s.same_content(INJECTED) for s in everything.values())

    assert await store.delete("prod", "api.v2")
    assert not await store.delete("prod", "api.v2")
    assert await store.get("prod", "api.v2") is None
    assert ("prod", "api.v2") not in await store.keys()
    # after a delete the cache must not claim the record still exists
    assert await store.write("prod", "api.v2", INJECTED)


async def test_corrupt_record_is_ignored_and_overwritten(nomad: NomadClient) -> None:
    variables = NomadVariables(nomad)
    await variables.put(path_for("default", "web"), {"phase": "Exploded", "conditions": "{"})
    store = StatusStore(variables)
    assert await store.get("default", "web") is None
    assert await store.write("default", "web", INJECTED)
    assert (await store.get("default", "web")) is not None
