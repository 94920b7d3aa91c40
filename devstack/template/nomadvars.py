"""`nomadVar`, `nomadVarExists`, `nomadVarList`, `nomadVarListSafe` over Nomad's HTTP API.

As in Nomad's template runner, requests carry the task's workload identity as the Nomad token
and default to the job's namespace; `"path@namespace.region"` overrides both. A `nomadVar`
path that does not exist blocks the render (MissingDependency: the executor waits for it and
reports `Missing: nomad.var.block(path@ns.region)`); a refused read (403) is an error that
is retried and finally fails the task. `nomadVarList` treats "Permission denied" as an empty
list, as consul-template does. Every read is a dependency refreshed every `nomad_poll`
seconds, which stands in for consul-template's blocking queries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests

from devstack.template.context import Dependency, NomadTarget, RenderState
from devstack.template.errors import MissingDependency, TemplateError
from devstack.template.nomadtypes import NomadVarItems, NomadVarMeta, items_of, meta_of

_WORD = r"[0-9A-Za-z_\-]+"
_GET = re.compile(rf"\A/?(?P<path>[^@]+)(?:@(?P<namespace>{_WORD}))?(?:\.(?P<region>{_WORD}))?\Z")
_LIST = re.compile(
    rf"\A/?(?P<path>[^@]*)(?:@(?P<namespace>{_WORD}|\*))?(?:\.(?P<region>{_WORD}))?\Z"
)


@dataclass(frozen=True)
class _Query:
    path: str
    namespace: str
    region: str  # "" = the client's (the task's) region
    default_region: str

    def name(self, kind: str) -> str:
        region = self.region or self.default_region
        return f"nomad.var.{kind}({self.path}@{self.namespace}.{region})"

    def params(self) -> dict[str, str]:
        out = {"namespace": self.namespace}
        if self.region:
            out["region"] = self.region
        return out


def _target(state: RenderState) -> NomadTarget:
    if state.ctx.nomad is None:
        raise TemplateError("no Nomad address configured for this render")
    return state.ctx.nomad


def _query(state: RenderState, spec: str, listing: bool) -> _Query:
    target = _target(state)
    text = spec.strip() if listing else spec.strip().strip("/")
    match = (_LIST if listing else _GET).match(text)
    if not match or (not listing and not text):
        kind = "list" if listing else "get"
        raise TemplateError(f'nomad.var.{kind}: invalid format: "{text}"')
    path = match.group("path") or ""
    if listing and not path.strip("/"):
        path = ""
    return _Query(
        path=path,
        namespace=match.group("namespace") or target.namespace,
        region=match.group("region") or "",
        default_region=target.region,
    )


def _get(state: RenderState, api_path: str, params: dict[str, str], what: str) -> Any:
    """The JSON body; None for 404; TemplateError (naming the dependency) otherwise."""
    target = _target(state)
    headers = {"X-Nomad-Token": target.token} if target.token else {}
    try:
        resp = requests.get(
            target.addr.rstrip("/") + api_path,
            params=params,
            headers=headers,
            timeout=target.timeout,
            verify=target.verify,
        )
    except requests.RequestException as e:
        raise TemplateError(f"{what}: {type(e).__name__}: {e}") from e
    if resp.status_code == 404:
        return None
    if resp.status_code >= 400:
        raise TemplateError(
            f"{what}: Unexpected response code: {resp.status_code} ({resp.text.strip()})"
        )
    return resp.json()


def _depend(state: RenderState, kind: str, what: str) -> None:
    poll = state.ctx.nomad_poll
    state.deps.append(Dependency(kind, what, state.ctx.clock() + poll if poll else None))


def _read(state: RenderState, spec: str, kind: str) -> tuple[str, Any]:
    q = _query(state, spec, listing=False)
    what = q.name(kind)
    _depend(state, "nomad.var", what)
    return what, _get(state, f"/v1/var/{q.path}", q.params(), what)


def nomad_var(state: RenderState, spec: str) -> NomadVarItems:
    what, body = _read(state, spec, "block")
    if body is None:
        raise MissingDependency(f"{what}: variable not found (the template waits for it)")
    return items_of(body)


def nomad_var_exists(state: RenderState, spec: str) -> bool:
    _, body = _read(state, spec, "get")
    return body is not None


def _list(state: RenderState, args: tuple[str, ...]) -> tuple[str, list[NomadVarMeta]]:
    if len(args) > 1:
        raise TemplateError(f"expected 0 or 1 arguments, got {len(args)}")
    q = _query(state, args[0] if args else "", listing=True)
    what = q.name("list")
    _depend(state, "nomad.list", what)
    params = {**q.params(), "prefix": q.path}
    try:
        body = _get(state, "/v1/vars", params, what) or []
    except TemplateError as e:
        if "Permission denied" not in str(e):
            raise
        body = []
    return what, [meta_of(raw) for raw in body]


def nomad_var_list(state: RenderState, *args: str) -> list[NomadVarMeta]:
    return _list(state, args)[1]


def nomad_var_list_safe(state: RenderState, *args: str) -> list[NomadVarMeta]:
    what, found = _list(state, args)
    if not found:
        raise MissingDependency(f"{what}: no variables (the template waits for some)")
    return found
