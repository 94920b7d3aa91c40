"""Contract tests: one Go-duration module for both twins (``devstack.godur``).

Texts pinned against Go's ``time.ParseDuration`` (src/time/format.go): an empty or
malformed term is ``time: invalid duration "x"``, digits without a unit are
``time: missing unit in duration "5"``, an unknown unit is
``time: unknown unit "x" in duration "1x"``. The Consul twin shows the text in its decode
error, the Nomad twin parses ``?wait=`` and lock TTLs with the same function.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

import devstack.consul.decode
import devstack.nomad.httpbase
import devstack.nomad.variables
import devstack.registrar
from devstack import godur
from devstack.consul import ConsulTwin, start_consul_twin

pytestmark = pytest.mark.timeout(30)


def test_both_twins_and_the_registrar_use_the_one_module() -> None:
    modules = (devstack.consul.decode, devstack.nomad.httpbase, devstack.nomad.variables)
    for module in (*modules, devstack.registrar):
        assert vars(module)["godur"] is godur


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", 'time: invalid duration ""'),
        ("s", 'time: invalid duration "s"'),
        (".s", 'time: invalid duration ".s"'),
        ("1m-", 'time: unknown unit "m-" in duration "1m-"'),
        ("-", 'time: invalid duration "-"'),
        ("5", 'time: missing unit in duration "5"'),
        ("1.5", 'time: missing unit in duration "1.5"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("3d", 'time: unknown unit "d" in duration "3d"'),
        ("99999999999h", 'time: invalid duration "99999999999h"'),
    ],
)
def test_go_error_texts(text: str, error: str) -> None:
    with pytest.raises(godur.DurationError) as exc:
        godur.parse(text)
    assert str(exc.value) == error


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("-0", 0),
        ("+5s", 5 * godur.SECOND),
        ("-1.5h", -5400 * godur.SECOND),
        (".5s", 500 * godur.MS),
        ("1.s", godur.SECOND),
        ("1h2m3.5s", 3723 * godur.SECOND + 500 * godur.MS),
        ("300ms", 300 * godur.MS),
        ("1µs1us1μs", 3 * godur.US),
        ("7ns", 7),
    ],
)
def test_go_grammar(text: str, ns: int) -> None:
    assert godur.parse(text) == ns


@pytest.fixture
async def consul() -> AsyncIterator[ConsulTwin]:
    twin = await start_consul_twin(check_runner=False)
    yield twin
    await twin.stop()


async def test_consul_twin_decode_error_carries_gos_missing_unit_text(consul: ConsulTwin) -> None:
    body = {"Name": "w", "Check": {"Interval": "5", "TCP": "127.0.0.1:1"}}
    async with (
        aiohttp.ClientSession() as http,
        http.put(f"{consul.url}/v1/agent/service/register", json=body) as r,
    ):
        assert r.status == 400
        assert 'time: missing unit in duration "5"' in await r.text()
