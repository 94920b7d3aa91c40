"""`nomadService` in the devstack renderer, against the in-process Nomad twin's catalog: the
fields consul-template hands a template, the client-side tag filter, namespaces, the `choose`
form, the argument errors, and the poll-driven dependency (dependency/nomad_service.go,
template/nomad_funcs.go)."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.nomad import NomadTwin
from devstack.nomad.nsd import NativeServices
from devstack.template import NomadTarget, RenderContext, TemplateError, render
from tests.support.twins import NomadTwinFactory

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=1)


def registration(n: int, name: str, tags: list[str], namespace: str = "default") -> dict[str, Any]:
    return {
        "ID": f"_nomad-task-a{n}-group-api-{name}-http",
        "ServiceName": name,
        "Namespace": namespace,
        "NodeID": "node-1",
        "Datacenter": "dc1",
        "JobID": name,
        "AllocID": f"a{n}",
        "Tags": tags,
        "Address": f"10.0.0.{n}",
        "Port": 20000 + n,
        "CreateIndex": 0,
        "ModifyIndex": 0,
    }


def ctx_for(twin: NomadTwin, namespace: str = "default") -> RenderContext:
    return RenderContext(
        nomad=NomadTarget(twin.url, namespace=namespace), nomad_poll=5.0, clock=lambda: 1000.0
    )


async def r(twin: NomadTwin, text: str, namespace: str = "default") -> str:
    return (await render(text, ctx_for(twin, namespace))).text


async def test_instances_with_the_tag_in_the_tasks_namespace(twin: NomadTwin) -> None:
    NativeServices(twin.state, {}).upsert(
        [
            registration(1, "billing", ["mesh-tls", "v2"]),
            registration(2, "billing", ["mesh-plaintext"]),
            registration(3, "billing", ["mesh-tls"]),
            registration(4, "billing", ["mesh-tls"], namespace="other"),
        ]
    )
    lines = '{{ range nomadService "mesh-tls.billing" }}{{ .Address }}:{{ .Port }} {{ end }}'
    assert await r(twin, lines) == "10.0.0.1:20001 10.0.0.3:20003 "
    assert await r(twin, lines, namespace="other") == "10.0.0.4:20004 "
    every = '{{ range nomadService "billing" }}{{ .Port }},{{ end }}'
    assert await r(twin, every) == "20001,20002,20003,"
    fields = (
        '{{ with index (nomadService "v2.billing") 0 }}{{ .ID }}|{{ .Name }}|{{ .Node }}|'
        "{{ .Datacenter }}|{{ .Tags }}|{{ .JobID }}|{{ .AllocID }}{{ end }}"
    )
    assert await r(twin, fields) == (
        "_nomad-task-a1-group-api-billing-http|billing|node-1|dc1|[mesh-tls v2]|billing|a1"
    )


async def test_no_instance_is_an_empty_list_for_with_else(twin: NomadTwin) -> None:
    text = '{{ with nomadService "mesh-tls.nobody" }}some{{ else }}none{{ end }}'
    assert await r(twin, text) == "none"


async def test_the_choose_form_asks_nomad_for_n_instances(twin: NomadTwin) -> None:
    NativeServices(twin.state, {}).upsert([registration(n, "search", ["t"]) for n in (1, 2, 3)])
    text = '{{ range nomadService 2 "caller-1" "search" }}{{ .Port }},{{ end }}'
    first = await r(twin, text)
    assert len(first.split(",")) == 3 and first == await r(twin, text)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ('nomadService "bad name"', 'nomad.service: invalid format: "bad name"'),
        ('nomadService 2 "x"', "expected arguments <service> or <count> <key> <service>"),
        ('nomadService "2" "k" "x"', "expected integer for <count> argument"),
        ("nomadService 1", "expected string for <service> argument"),
    ],
)
async def test_argument_errors_are_consul_templates(
    twin: NomadTwin, call: str, message: str
) -> None:
    with pytest.raises(TemplateError, match=message):
        await r(twin, "{{ " + call + " }}")


async def test_each_read_is_a_dependency_refreshed_by_the_poll(twin: NomadTwin) -> None:
    result = await render('{{ nomadService "mesh-tls.billing@global" }}', ctx_for(twin))
    [dep] = result.dependencies
    assert (dep.kind, dep.key, dep.refresh_at) == (
        "nomad.service",
        "nomad.service(mesh-tls.billing@global)",
        1005.0,
    )
