"""`nomadService`: consul-template's Nomad service registrations over Nomad's HTTP API.

As consul-template (dependency/nomad_service.go, template/nomad_funcs.go):
- `nomadService "[tag.]name[@region]"` or `nomadService <count> "<key>" "[tag.]name[@region]"`
  (the second passes `choose=<count>|<key>` and Nomad's server picks by rendezvous hashing);
  any other argument count or type is an error;
- one GET `/v1/service/<name>` in the task's namespace (Nomad's template runner gives the job's
  namespace and the workload identity as token), `region` only when the query names one;
- the tag is filtered here, on the client (the API has no tag parameter): an exact match
  against one of the registration's tags;
- no health filter: Nomad's catalog does not drop an instance whose check fails;
- each result is a NomadService struct (ID, Name, Node, Address, Port, Datacenter, Tags
  sorted, JobID, AllocID), stably sorted by Name.
Like every Nomad read here, it is a dependency refreshed every `nomad_poll` seconds, which
stands in for consul-template's blocking query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from devstack.template.context import RenderState
from devstack.template.errors import TemplateError
from devstack.template.gofmt import GoStruct
from devstack.template.nomadvars import _depend, _get, _target

# tagRe + serviceNameRe + regionRe of dependency/dependency.go; [[:word:]] is [0-9A-Za-z_].
_QUERY = re.compile(
    r"\A(?:(?P<tag>[0-9A-Za-z_=:.\-]+)\.)?(?P<name>[0-9A-Za-z_\-]+)"
    r"(?:@(?P<region>[0-9A-Za-z_.\-]+))?\Z"
)


@dataclass
class NomadService(GoStruct):
    ID: str = ""
    Name: str = ""
    Node: str = ""
    Address: str = ""
    Port: int = 0
    Datacenter: str = ""
    Tags: list[str] = field(default_factory=list)
    JobID: str = ""
    AllocID: str = ""
    go_type = "*dependency.NomadService"


def _arguments(params: tuple[Any, ...]) -> tuple[str, str]:
    """(query, choose) from the template's arguments, with consul-template's errors."""
    if len(params) == 1:
        if not isinstance(params[0], str):
            raise TemplateError("expected string for <service> argument")
        return params[0], ""
    if len(params) == 3:
        count, key, query = params
        if not isinstance(count, int) or isinstance(count, bool):
            raise TemplateError("expected integer for <count> argument")
        if not isinstance(key, str):
            raise TemplateError("expected string for <key> argument")
        if not isinstance(query, str):
            raise TemplateError("expected string for <service> argument")
        return query, f"{count}|{key}"
    raise TemplateError("expected arguments <service> or <count> <key> <service>")


def _name(tag: str, name: str, region: str, choose: str) -> str:
    """NomadServiceQuery.String: the dependency's name in errors and logs."""
    text = f"{tag}.{name}" if tag else name
    text += f"@{region}" if region else ""
    text += f":{choose}" if choose else ""
    return f"nomad.service({text})"


def nomad_service(state: RenderState, *params: Any) -> list[NomadService]:
    query, choose = _arguments(params)
    match = _QUERY.match(query)
    if not match:
        raise TemplateError(f'nomad.service: invalid format: "{query}"')
    tag, name, region = match.group("tag") or "", match.group("name"), match.group("region") or ""
    what = _name(tag, name, region, choose)
    params_out = {"namespace": _target(state).namespace}
    if region:
        params_out["region"] = region
    if choose:
        params_out["choose"] = choose
    _depend(state, "nomad.service", what)
    entries = _get(state, f"/v1/service/{name}", params_out, what) or []
    out = [
        NomadService(
            ID=str(e.get("ID") or ""),
            Name=str(e.get("ServiceName") or ""),
            Node=str(e.get("NodeID") or ""),
            Address=str(e.get("Address") or ""),
            Port=int(e.get("Port") or 0),
            Datacenter=str(e.get("Datacenter") or ""),
            Tags=sorted(str(t) for t in e.get("Tags") or []),
            JobID=str(e.get("JobID") or ""),
            AllocID=str(e.get("AllocID") or ""),
        )
        for e in entries
        if not tag or tag in (e.get("Tags") or [])
    ]
    out.sort(key=lambda s: s.Name)  # sort.Stable by Name
    return out
