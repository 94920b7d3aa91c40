"""Contract tests: Variables (python-nomad and raw HTTP), CAS, delete, and locks."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlparse

import aiohttp
import nomad
import pytest

from devstack.nomad import NomadTwin
from tests.support.twins import NomadTwinFactory

pytestmark = pytest.mark.timeout(60)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(heartbeat_interval=0.2)


async def test_python_nomad_variables_crud_and_cas(twin: NomadTwin) -> None:
    url = urlparse(twin.url)
    n = nomad.Nomad(host=url.hostname, port=url.port, timeout=5)
    created = await asyncio.to_thread(
        n.variable.create_variable, "mesh/config", {"Items": {"a": "1"}}, None, 0
    )
    assert created["Items"] == {"a": "1"} and created["Path"] == "mesh/config"
    assert list(created) == [
        "Namespace",
        "Path",
        "CreateIndex",
        "CreateTime",
        "ModifyIndex",
        "ModifyTime",
        "Items",
    ]
    with pytest.raises(nomad.api.exceptions.VariableConflict) as conflict:
        await asyncio.to_thread(
            n.variable.create_variable, "mesh/config", {"Items": {"a": "2"}}, None, 0
        )
    current = json.loads(conflict.value.nomad_resp.text)
    assert current["Items"] == {"a": "1"}
    assert conflict.value.nomad_resp.headers["X-Nomad-Index"] == str(created["ModifyIndex"])
    updated = await asyncio.to_thread(
        n.variable.create_variable,
        "mesh/config",
        {"Items": {"a": "2"}},
        None,
        created["ModifyIndex"],
    )
    assert updated["ModifyIndex"] > created["ModifyIndex"]
    assert updated["CreateIndex"] == created["CreateIndex"]
    listed = await asyncio.to_thread(n.variables.get_variables, "mesh/")
    assert [v["Path"] for v in listed] == ["mesh/config"] and "Items" not in listed[0]
    got = await asyncio.to_thread(n.variable.get_variable, "mesh/config")
    assert got["Items"] == {"a": "2"}
    resp = await asyncio.to_thread(n.variable.delete_variable, "mesh/config")
    assert resp.status_code == 204 and resp.text == "" and "X-Nomad-Index" in resp.headers
    with pytest.raises(nomad.api.exceptions.URLNotFoundNomadException):
        await asyncio.to_thread(n.variable.get_variable, "mesh/config")


async def test_variable_errors(twin: NomadTwin, http: aiohttp.ClientSession) -> None:
    base = f"{twin.url}/v1/var"
    cases = [
        ("PUT", "/a", {"Items": {}}, 400, "variable missing required Items object"),
        (
            "PUT",
            "/a",
            {"Items": {"k": "v"}, "Lock": {"TTL": "15s"}},
            400,
            "variable should not contain lock definition",
        ),
        (
            "PUT",
            "/a?cas=1&lock-acquire",
            {"Items": {"k": "v"}},
            400,
            "CAS can't be used with lock operations",
        ),
        ("PUT", "/a?lock-acquire&lock-renew", {}, 400, "multiple lock operations"),
        (
            "PUT",
            "/a?lock-acquire",
            {"Lock": {"TTL": "5s"}},
            400,
            "TTL must be between 10 seconds and 24 hours",
        ),
        ("PATCH", "/a", None, 400, "Invalid method"),
        ("GET", "/missing", None, 404, "variable not found"),
        ("PUT", "/a?lock-renew", {"Lock": {"ID": "x"}}, 404, "variable doesn't exist"),
        ("PUT", "/a?lock-release", {"Lock": {"ID": "x"}}, 500, "variable doesn't exist"),
        ("PUT", "/a?lock-release", {"Lock": {}}, 400, "missing lock information"),
    ]
    for method, path, body, status, message in cases:
        resp = await http.request(method, base + path, json=body)
        assert (resp.status, await resp.text()) == (status, message), (method, path)
    missing_cas = await http.put(f"{base}/b?cas=7", json={"Items": {"k": "v"}})
    assert missing_cas.status == 409
    assert json.loads(await missing_cas.text()) == {
        "Namespace": "default",
        "Path": "b",
        "CreateIndex": 0,
        "CreateTime": 0,
        "ModifyIndex": 0,
        "ModifyTime": 0,
    }


async def test_lock_acquire_renew_release_and_conflicts(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    url = f"{twin.url}/v1/var/mesh-controller/leader"
    acquired = await http.put(
        f"{url}?lock-acquire", json={"Lock": {"TTL": "15s", "LockDelay": "1m"}}
    )
    body = await acquired.json()
    assert acquired.status == 200
    assert list(body["Lock"]) == ["TTL", "LockDelay", "ID"]
    assert (body["Lock"]["TTL"], body["Lock"]["LockDelay"]) == ("15s", "1m0s")
    lock_id = body["Lock"]["ID"]
    other = await http.put(f"{url}?lock-acquire", json={"Lock": {"TTL": "15s"}})
    assert other.status == 409 and "X-Nomad-Index" not in other.headers
    assert json.loads(await other.text()) == {
        "Namespace": "default",
        "Path": "mesh-controller/leader",
        "CreateIndex": 0,
        "CreateTime": 0,
        "ModifyIndex": 0,
        "ModifyTime": 0,
    }
    plain = await http.put(url, json={"Items": {"x": "y"}})
    assert plain.status == 409
    holder_write = await http.put(url, json={"Items": {"x": "y"}, "Lock": {"ID": lock_id}})
    assert holder_write.status == 200
    wrong = await http.put(f"{url}?lock-renew", json={"Lock": {"ID": "nope"}})
    assert (wrong.status, await wrong.text()) == (409, "attempting to modify locked variable")
    renewed = await http.put(f"{url}?lock-renew", json={"Lock": {"ID": lock_id}})
    rbody = await renewed.json()
    assert renewed.status == 200 and "Items" not in rbody and rbody["Lock"]["ID"] == lock_id
    bad_release = await http.put(f"{url}?lock-release", json={"Lock": {"ID": "nope"}})
    assert bad_release.status == 409
    assert json.loads(await bad_release.text())["Lock"] == {"TTL": "", "LockDelay": "", "ID": ""}
    released = await http.put(f"{url}?lock-release", json={"Lock": {"ID": lock_id}})
    rel = await released.json()
    assert released.status == 200 and "Lock" not in rel and rel["Items"] == {"x": "y"}
    not_locked = await http.put(f"{url}?lock-renew", json={"Lock": {"ID": lock_id}})
    assert (not_locked.status, await not_locked.text()) == (409, "variable doesn't hold a lock")
    again = await http.put(f"{url}?lock-acquire", json={"Lock": {"TTL": "10s"}})
    assert again.status == 200  # an explicit release has no lock delay


async def test_ttl_expiry_then_lock_delay_on_injected_clock(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    twin.ctx.variables.use_clock(clock)
    url = f"{twin.url}/v1/var/lease"
    first = await (
        await http.put(
            f"{url}?lock-acquire", json={"Lock": {"TTL": 10_000_000_000, "LockDelay": "20s"}}
        )
    ).json()
    index_before = first["ModifyIndex"]
    clock.now += 9
    renew = await http.put(f"{url}?lock-renew", json={"Lock": {"ID": first["Lock"]["ID"]}})
    assert renew.status == 200
    # nomad/locks.go: the timer runs 2 x TTL from the renewal, then the Lock stays for
    # LockDelay before invalidateVariableLock releases it (a write).
    clock.now += 21  # past 2 x TTL since the renewal: timer gone, Lock still held
    read = await (await http.get(url)).json()
    assert read["Lock"]["ID"] == first["Lock"]["ID"] and read["ModifyIndex"] == index_before
    blocked = await http.put(f"{url}?lock-acquire", json={"Lock": {"TTL": "10s"}})
    assert blocked.status == 409  # inside LockDelay
    clock.now += 20
    read = await (await http.get(url)).json()
    assert "Lock" not in read and read["ModifyIndex"] > index_before  # expiry is a write
    after = await http.put(f"{url}?lock-acquire", json={"Lock": {"TTL": "10s"}})
    assert after.status == 200
