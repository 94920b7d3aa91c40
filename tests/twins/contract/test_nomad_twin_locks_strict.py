"""Contract tests: Variable lock lease timing as ``nomad/locks.go`` runs it (audit §6).

v1.7.0-v1.10.x ``CreateVariableLockTTLTimer``/``RenewTTLTimer`` arm the timer at
``variable.Lock.TTL * 2``; when it fires the timer is removed and
``invalidateVariableLock`` runs after ``LockDelay``. ``nomad/variables_endpoint.go``
``RenewLock`` answers ``errVarIsLocked`` once the timer is gone. Driven by an injected
clock, so no test waits for a real TTL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from devstack.nomad import NomadTwin, start_nomad_twin

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def twin() -> AsyncIterator[NomadTwin]:
    t = await start_nomad_twin(nodes=1)
    yield t
    await t.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _acquire(http: aiohttp.ClientSession, url: str) -> dict[str, object]:
    resp = await http.put(f"{url}?lock-acquire", json={"Lock": {"TTL": "10s", "LockDelay": "5s"}})
    assert resp.status == 200
    body: dict[str, object] = await resp.json()
    return body


async def test_renew_at_one_and_a_half_ttl_succeeds(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    twin.ctx.variables.use_clock(clock)
    url = f"{twin.url}/v1/var/leader"
    first = await _acquire(http, url)
    lock_id = first["Lock"]["ID"]  # type: ignore[index]
    clock.now += 15  # 1.5 x TTL: past the TTL, inside the 2 x TTL grace
    renew = await http.put(f"{url}?lock-renew", json={"Lock": {"ID": lock_id}})
    assert renew.status == 200
    body = await renew.json()
    assert body["Lock"]["ID"] == lock_id and body["ModifyIndex"] == first["ModifyIndex"]
    clock.now += 19.9  # the renewal re-armed a full 2 x TTL
    again = await http.put(f"{url}?lock-renew", json={"Lock": {"ID": lock_id}})
    assert again.status == 200


async def test_lock_is_held_through_lock_delay_and_renew_fails_after_the_timer(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    twin.ctx.variables.use_clock(clock)
    url = f"{twin.url}/v1/var/leader"
    first = await _acquire(http, url)
    lock_id = first["Lock"]["ID"]  # type: ignore[index]
    clock.now += 20  # the 2 x TTL timer fires; invalidation waits LockDelay (5 s)
    renew = await http.put(f"{url}?lock-renew", json={"Lock": {"ID": lock_id}})
    assert (renew.status, await renew.text()) == (409, "attempting to modify locked variable")
    held = await (await http.get(url)).json()
    assert held["Lock"]["ID"] == lock_id and held["ModifyIndex"] == first["ModifyIndex"]
    other = await http.put(f"{url}?lock-acquire", json={"Lock": {"TTL": "10s"}})
    assert other.status == 409
    clock.now += 5  # 2 x TTL + LockDelay: VarOpLockRelease
    released = await (await http.get(url)).json()
    assert "Lock" not in released and released["ModifyIndex"] > first["ModifyIndex"]
    taken = await _acquire(http, url)  # no extra delay after the release write
    assert taken["Lock"]["ID"] != lock_id  # type: ignore[index]


async def test_real_timer_releases_after_two_ttl_plus_delay(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    """Without an injected clock the leader's timers fire by themselves (blocking readers
    see the release write). The store's minimum TTL is Nomad's 10 s, so the timer
    constants are checked on the store directly."""
    store = twin.ctx.variables
    await _acquire(http, f"{twin.url}/v1/var/t")
    deadline = store._expiry[("default", "t")]
    assert 19.5 < deadline - store.clock() <= 20.0
