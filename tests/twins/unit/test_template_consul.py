"""`service`, `key`, `keyOrDefault` of the devstack renderer against the in-process Consul twin."""

from __future__ import annotations

import aiohttp
import pytest

from devstack.consul import start_consul_twin
from devstack.template import RenderContext, TemplateError, UnsupportedError, render

pytestmark = pytest.mark.timeout(30)


async def _register(url: str, sid: str, tag: str, addr: str, status: str) -> None:
    body = {
        "ID": sid,
        "Name": "web",
        "Tags": [tag],
        "Address": addr,
        "Port": 8443,
        "Check": {"TTL": "30s", "Status": status},
    }
    async with (
        aiohttp.ClientSession() as s,
        s.put(f"{url}/v1/agent/service/register", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def test_service_returns_healthy_instances_and_honours_filters() -> None:
    twin = await start_consul_twin(check_runner=False)
    try:
        await _register(twin.url, "web-2", "v2", "127.0.0.22", "critical")
        await _register(twin.url, "web-1", "v1", "127.0.0.21", "passing")
        await _register(twin.url, "web-3", "v1", "127.0.0.23", "warning")
        ctx = RenderContext(consul_addr=twin.address, consul_poll=10.0, clock=lambda: 100.0)
        line = "{{ range service %s }}{{ .ID }}@{{ .Address }}:{{ .Port }}/{{ .Status }} {{ end }}"
        healthy = await render(line % '"web"', ctx)
        assert healthy.text == "web-1@127.0.0.21:8443/passing "
        assert healthy.next_refresh == 110.0
        every = await render(line % '"web|any"', ctx)
        assert every.text.split() == [
            "web-1@127.0.0.21:8443/passing",
            "web-2@127.0.0.22:8443/critical",
            "web-3@127.0.0.23:8443/warning",
        ]
        some = await render(line % '"web" "passing,warning"', ctx)
        assert [w.split("@")[0] for w in some.text.split()] == ["web-1", "web-3"]
        tagged = await render(line % '"v1.web|any"', ctx)
        assert [w.split("@")[0] for w in tagged.text.split()] == ["web-1", "web-3"]
        none = await render('{{ range service "nosuch" }}x{{ else }}none{{ end }}', ctx)
        assert none.text == "none"
        with pytest.raises(UnsupportedError, match="~near"):
            await render('{{ service "web~_agent" }}', ctx)
    finally:
        await twin.stop()


async def test_key_functions_without_kv_fail_or_default() -> None:
    twin = await start_consul_twin(check_runner=False)
    try:
        ctx = RenderContext(consul_addr=twin.url)
        assert (await render('{{ keyOrDefault "app/x" "dflt" }}', ctx)).text == "dflt"
        with pytest.raises(TemplateError, match="key not found"):
            await render('{{ key "app/x" }}', ctx)
    finally:
        await twin.stop()


async def test_no_consul_configured_is_an_error() -> None:
    with pytest.raises(TemplateError, match="no Consul address"):
        await render('{{ service "web" }}', RenderContext())
