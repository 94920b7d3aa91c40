"""StatusStore.update against the Nomad twin's Variables: one read, the record derived from the
stored one, a CAS write only on change, and — the point of it — a lost CAS derives again from
what the winner wrote instead of re-sending a record computed from the stale read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import pytest

from controller.nomad.client import NomadClient
from controller.nomad.variables import NomadVariables, Variable
from controller.runtime.clock import FakeClock
from controller.status.store import CAS_ATTEMPTS, StatusConflict, StatusStore, path_for
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
            reason="Registered",
            last_transition="2025-01-01T00:00:00+00:00",
        ),
    ),
)
HEALTHY = Condition(type=ConditionType.CONSUL_HEALTHY, status=ConditionStatus.TRUE, reason="Ok")


def add_condition(extra: Condition) -> Callable[[MeshStatus | None], MeshStatus | None]:
    def derive(previous: MeshStatus | None) -> MeshStatus | None:
        assert previous is not None
        kept = tuple(c for c in previous.conditions if c.type != extra.type)
        return previous.model_copy(update={"conditions": (*kept, extra)})

    return derive


async def items(variables: NomadVariables, namespace: str, job: str) -> Mapping[str, str]:
    var = await variables.get(path_for(namespace, job))
    assert var is not None
    return var.items


async def test_update_derives_from_the_stored_record_and_writes_only_on_change(
    nomad: NomadClient,
) -> None:
    variables = NomadVariables(nomad)
    clock = FakeClock()
    store = StatusStore(variables, clock=clock)

    assert await store.update("default", "web", lambda previous: None) is None
    assert await variables.get(path_for("default", "web")) is None  # None stores nothing

    created = await store.update("default", "web", lambda previous: previous or INJECTED)
    assert created is not None and created.same_content(INJECTED)
    first = await variables.get(path_for("default", "web"))
    assert first is not None and first.items["observed_index"] == "12"

    await clock.advance(60)
    same = await store.update(
        "default", "web", lambda p: p.model_copy(update={"updated_at": "x"}) if p else None
    )
    assert same is not None and same.updated_at == first.items["updated_at"]
    unchanged = await variables.get(path_for("default", "web"))
    assert unchanged is not None and unchanged.modify_index == first.modify_index

    await store.update("default", "web", add_condition(HEALTHY))
    stored = await items(variables, "default", "web")
    assert '"ConsulHealthy"' in stored["conditions"]
    assert '"SidecarInjected"' in stored["conditions"]  # what fn did not touch is kept
    assert stored["updated_at"] == clock.now().isoformat()
    assert store.writes == 2


class InterleavedVariables(NomadVariables):
    """Nomad Variables where another writer gets in once, between our read and our CAS."""

    def __init__(self, client: NomadClient, before_first_put: Callable[[], Awaitable[None]]):
        super().__init__(client)
        self.before_first_put: Callable[[], Awaitable[None]] | None = before_first_put
        self.conflicts = 0

    async def cas_put(self, path: str, items: Mapping[str, str], *, cas: int) -> Variable | None:
        if self.before_first_put is not None:
            other, self.before_first_put = self.before_first_put, None
            await other()
        written = await super().cas_put(path, items, cas=cas)
        if written is None:
            self.conflicts += 1
        return written


async def test_a_lost_cas_derives_again_and_keeps_the_other_writers_field(
    nomad: NomadClient,
) -> None:
    plain = NomadVariables(nomad)
    assert await StatusStore(plain).write("default", "web", INJECTED)
    certs = StatusStore(plain)  # the certificate reconciler of the same or another process

    async def certs_records_an_error() -> None:
        await certs.update(
            "default",
            "web",
            lambda p: p.model_copy(update={"last_error": "re-issue did not help"}) if p else None,
        )

    racing = InterleavedVariables(nomad, certs_records_an_error)
    health = StatusStore(racing)
    seen: list[str] = []

    def health_derive(previous: MeshStatus | None) -> MeshStatus | None:
        assert previous is not None
        seen.append(previous.last_error)
        return add_condition(HEALTHY)(previous)

    result = await health.update("default", "web", health_derive)

    assert racing.conflicts == 1
    assert seen == ["", "re-issue did not help"]  # derived again from the winner's record
    stored = await items(plain, "default", "web")
    assert stored["last_error"] == "re-issue did not help"
    assert '"ConsulHealthy"' in stored["conditions"]
    assert result is not None and result.last_error == "re-issue did not help"


class AlwaysBeaten(NomadVariables):
    """A writer that always gets in first: bumps the record just before each of our CAS puts."""

    async def cas_put(self, path: str, items: Mapping[str, str], *, cas: int) -> Variable | None:
        current = await self.get(path)
        bumped = dict(current.items) if current else {"phase": "Pending"}
        bumped["message"] = f"racer {current.modify_index if current else 0}"
        await self.put(path, bumped)
        return await super().cas_put(path, items, cas=cas)


async def test_update_gives_up_after_bounded_attempts_so_the_queue_backs_off(
    nomad: NomadClient,
) -> None:
    store = StatusStore(AlwaysBeaten(nomad))
    calls: list[MeshStatus | None] = []

    def derive(previous: MeshStatus | None) -> MeshStatus:
        calls.append(previous)
        return INJECTED.model_copy(update={"message": "ours"})

    with pytest.raises(StatusConflict):
        await store.update("default", "web", derive)
    assert len(calls) == CAS_ATTEMPTS
    stored = await items(NomadVariables(nomad), "default", "web")
    assert stored["message"].startswith("racer")  # never overwritten by a stale derivation


async def test_get_and_peek_answer_from_the_cache_a_cold_store_reads(nomad: NomadClient) -> None:
    variables = NomadVariables(nomad)
    ours, theirs = StatusStore(variables), StatusStore(variables)
    assert await ours.write("default", "web", INJECTED)
    assert await theirs.write("default", "web", INJECTED.model_copy(update={"message": "new"}))

    for read in (ours.peek, ours.get):  # what we last wrote, until a LIST or a CAS says more
        seen = await read("default", "web")
        assert seen is not None and seen.message == ""
    cold = await StatusStore(variables).peek("default", "web")
    assert cold is not None and cold.message == "new"
    assert await ours.peek("prod", "nothing") is None
