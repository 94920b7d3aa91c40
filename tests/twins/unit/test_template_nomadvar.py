"""`nomadVar` and friends in the devstack renderer, against the in-process Nomad twin: the
values consul-template hands a template (items, Tuples, Keys, Values, Metadata, Parent), the
`path@namespace` form, blocking on a missing path, and the poll-driven refresh time."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from devstack.nomad import NomadTwin
from devstack.template import (
    MissingDependency,
    NomadTarget,
    RenderContext,
    TemplateError,
    render,
)
from tests.support.twins import NomadTwinFactory

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=1)


async def put_var(url: str, path: str, items: dict[str, str], namespace: str = "") -> Any:
    params = {"namespace": namespace} if namespace else {}
    async with (
        aiohttp.ClientSession() as s,
        s.put(f"{url}/v1/var/{path}", params=params, json={"Items": items}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


def ctx_for(twin: NomadTwin, namespace: str = "default", poll: float | None = 5.0) -> RenderContext:
    target = NomadTarget(twin.url, namespace=namespace)
    return RenderContext(nomad=target, nomad_poll=poll, clock=lambda: 1000.0)


async def test_items_print_as_values_and_tuples_keys_values_are_key_sorted(
    twin: NomadTwin,
) -> None:
    await put_var(twin.url, "nomad/jobs/redis", {"maxconns": "15", "b": "x<y", "Keys": "item"})
    ctx = ctx_for(twin)

    async def r(text: str) -> str:
        return (await render(text, ctx)).text

    assert await r('{{ with nomadVar "nomad/jobs/redis" }}{{ .maxconns }}{{ end }}') == "15"
    tuples = '{{ range (nomadVar "nomad/jobs/redis").Tuples }}{{ .K }}={{ .V }}\n{{ end }}'
    assert await r(tuples) == "Keys=item\nb=x<y\nmaxconns=15\n"
    assert await r('{{ nomadVar "nomad/jobs/redis" }}') == "map[Keys:item b:x<y maxconns:15]"
    assert await r('{{ (nomadVar "/nomad/jobs/redis/").Tuples }}') == (
        "[{Keys item} {b x<y} {maxconns 15}]"
    )
    # A method wins over an item of the same name; index still reaches the item.
    keys = '{{ with nomadVar "nomad/jobs/redis" }}{{ .Keys }} {{ index . "Keys" }}{{ end }}'
    assert await r(keys) == "[Keys b maxconns] item"
    assert await r('{{ (nomadVar "nomad/jobs/redis").Values }}') == "[item x<y 15]"
    pairs = '{{ range $k, $v := nomadVar "nomad/jobs/redis" }}{{ $k }}:{{ $v.Value }},{{ end }}'
    assert await r(pairs) == "Keys:item,b:x<y,maxconns:15,"
    assert await r('{{ nomadVar "nomad/jobs/redis" | toJSON }}') == (
        '{"Keys":"item","b":"x\\u003cy","maxconns":"15"}'
    )
    with pytest.raises(TemplateError, match="expected string"):
        await r('{{ (nomadVar "nomad/jobs/redis").maxconns | toUpper }}')


async def test_metadata_and_parent_describe_the_variable(twin: NomadTwin) -> None:
    stored = await put_var(twin.url, "nomad/jobs/redis", {"maxconns": "15"})
    ctx = ctx_for(twin)
    text = (
        '{{ with nomadVar "nomad/jobs/redis" }}'
        "{{ .Metadata }}|{{ .Metadata.Path }}|{{ .Metadata.Namespace }}|"
        "{{ .Metadata.CreateIndex }}|{{ .Metadata.ModifyIndex }}|"
        "{{ .Metadata.CreateTime.Time.Unix }}|{{ .Metadata.ModifyTime.Time.UTC }}|"
        "{{ .Parent.Path }}|{{ .Parent.Items }}|{{ .maxconns.Key }}|"
        "{{ .maxconns.Metadata.ModifyIndex }}|{{ .maxconns.Parent.Namespace }}"
        "{{ end }}"
    )
    parts = (await render(text, ctx)).text.split("|")
    assert parts[:5] == [
        "nomad/jobs/redis",
        "nomad/jobs/redis",
        "default",
        str(stored["CreateIndex"]),
        str(stored["ModifyIndex"]),
    ]
    assert parts[5] == str(stored["CreateTime"] // 1_000_000_000)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})? \+0000 UTC", parts[6])
    assert parts[7:] == [
        "nomad/jobs/redis",
        "map[maxconns:15]",
        "maxconns",
        str(stored["ModifyIndex"]),
        "default",
    ]


async def test_namespace_comes_from_the_task_unless_the_path_names_one(twin: NomadTwin) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.put(f"{twin.url}/v1/namespace/prod", json={"Name": "prod"}) as resp,
    ):
        assert resp.status == 200, await resp.text()
    await put_var(twin.url, "app/config", {"where": "prod"}, namespace="prod")
    await put_var(twin.url, "app/config", {"where": "default"})
    prod = ctx_for(twin, namespace="prod")
    line = '{{ with nomadVar "%s" }}{{ .where }}/{{ .Metadata.Namespace }}{{ end }}'
    assert (await render(line % "app/config", prod)).text == "prod/prod"
    assert (await render(line % "app/config@default", prod)).text == "default/default"
    result = await render(line % "app/config@default.global", prod)
    assert result.text == "default/default"
    assert [d.key for d in result.dependencies] == ["nomad.var.block(app/config@default.global)"]


async def test_a_missing_path_blocks_while_exists_and_list_answer(twin: NomadTwin) -> None:
    await put_var(twin.url, "nomad/jobs/web", {"a": "1"})
    await put_var(twin.url, "nomad/jobs/web/g", {"b": "2"})
    ctx = ctx_for(twin)
    with pytest.raises(MissingDependency) as info:
        await render('{{ with nomadVar "nomad/jobs/nope" }}x{{ end }}', ctx)
    assert "error calling nomadVar: nomad.var.block(nomad/jobs/nope@default.global):" in str(
        info.value
    )
    exists = '{{ nomadVarExists "nomad/jobs/web" }} {{ nomadVarExists "nomad/jobs/nope" }}'
    assert (await render(exists, ctx)).text == "true false"
    listed = "{{ range nomadVarList %s }}{{ . }}={{ .ModifyIndex }} {{ end }}"
    out = (await render(listed % '"nomad/jobs/web"', ctx)).text.split()
    assert [p.split("=")[0] for p in out] == ["nomad/jobs/web", "nomad/jobs/web/g"]
    assert (await render(listed % "", ctx)).text.count("nomad/jobs/web") == 2
    assert (await render(listed % '"other/"', ctx)).text == ""
    with pytest.raises(MissingDependency, match=r"nomad\.var\.list\(other/@default\.global\)"):
        await render('{{ nomadVarListSafe "other/" }}', ctx)
    with pytest.raises(TemplateError, match="invalid format"):
        await render('{{ nomadVar "a@b@c" }}', ctx)


async def test_reads_are_dependencies_refreshed_every_poll_interval(twin: NomadTwin) -> None:
    await put_var(twin.url, "nomad/jobs/web", {"a": "1"})
    polled = await render('{{ with nomadVar "nomad/jobs/web" }}{{ .a }}{{ end }}', ctx_for(twin))
    assert polled.next_refresh == 1005.0
    assert polled.dependencies[0].kind == "nomad.var"
    once = await render(
        '{{ with nomadVar "nomad/jobs/web" }}{{ .a }}{{ end }}', ctx_for(twin, poll=None)
    )
    assert once.next_refresh is None


async def test_without_a_nomad_target_the_render_fails_at_once() -> None:
    with pytest.raises(TemplateError, match="no Nomad address") as info:
        await render('{{ nomadVar "nomad/jobs/x" }}', RenderContext())
    assert not isinstance(info.value, MissingDependency)
