"""`pkiCert` and `secret`: the Vault functions of consul-template, against a real Vault.

pkiCert writes to its path with `k=v` arguments but first consults the destination file (its
cache) and reuses a leaf until 90 % of its lifetime. `secret` reads (no arguments) or writes
(arguments); a non-renewable result is refreshed at 0.90 +/- 0.05 of its remaining life.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from devstack.template import pem
from devstack.template.context import Dependency, RenderState, VaultTarget
from devstack.template.errors import TemplateError
from devstack.template.gofmt import GoStruct


@dataclass
class SecretAuth(GoStruct):
    Accessor: str = ""
    ClientToken: str = field(default="", repr=False)
    Policies: list[str] = field(default_factory=list)
    Metadata: dict[str, Any] = field(default_factory=dict)
    LeaseDuration: int = 0
    Renewable: bool = False
    go_type = "*dependency.SecretAuth"


@dataclass
class Secret(GoStruct):
    """consul-template's dependency.Secret (what `with secret ...` sets dot to)."""

    RequestID: str = ""
    LeaseID: str = ""
    LeaseDuration: int = 0
    Renewable: bool = False
    Data: dict[str, Any] = field(default_factory=dict, repr=False)
    Warnings: list[str] = field(default_factory=list)
    Auth: SecretAuth | None = None
    WrapInfo: None = None
    go_type = "*dependency.Secret"


def kv_args(args: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in args:
        if not isinstance(a, str) or "=" not in a:
            raise TemplateError(f"not k=v pair {a!r}")
        k, v = a.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _vault(state: RenderState) -> VaultTarget:
    if state.ctx.vault is None:
        raise TemplateError("no Vault configured for this render (vault address/token missing)")
    return state.ctx.vault


def _request(
    vt: VaultTarget, method: str, path: str, what: str, body: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    url = f"{vt.addr.rstrip('/')}/v1/{path.lstrip('/')}"
    headers = {"X-Vault-Token": vt.token, "X-Vault-Request": "true"}
    if vt.namespace:
        headers["X-Vault-Namespace"] = vt.namespace
    try:
        resp = requests.request(
            method, url, json=body, headers=headers, verify=vt.verify, timeout=vt.timeout
        )
    except requests.RequestException as e:
        raise TemplateError(f"{what}: {type(e).__name__}: {e}") from e
    if resp.status_code == 404 and method == "GET":
        return None
    if resp.status_code >= 400:
        try:
            errors = "; ".join(str(x) for x in resp.json().get("errors") or [])
        except ValueError:
            errors = resp.text.strip()
        errors = " ".join(errors.split())
        raise TemplateError(f"{what}: Code: {resp.status_code}. Errors: {errors}")
    if resp.status_code == 204 or not resp.content:
        return {}
    parsed = resp.json()
    return parsed if isinstance(parsed, dict) else {}


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def pki_cert(state: RenderState, path: str, *args: str) -> pem.PemEncoded:
    ctx = state.ctx
    path = path.strip().strip("/")
    dest = ctx.destination
    what = f"vault.pki({path}->{dest})"
    if not dest:
        raise TemplateError(f"{what}: pkiCert needs the template destination (it is its cache)")
    data = kv_args(args)
    now = ctx.clock()
    cached, leaf = pem.scan(_read_file(dest))
    rot = pem.rotation_time(leaf, now)
    if rot is not None:
        state.deps.append(Dependency("vault.pki", what, rot, "cache"))
        return cached
    resp = _request(_vault(state), "PUT", path, what, data)
    if not resp or not isinstance(resp.get("data"), dict):
        raise TemplateError(f"{what}: no secret exists at {path}")
    fresh, leaf = pem.scan(pem.blob_from_issue(resp["data"]))
    if leaf is None:
        raise TemplateError(f"{what}: the response holds no leaf certificate")
    start = leaf.not_valid_before_utc.timestamp()
    end = leaf.not_valid_after_utc.timestamp()
    state.deps.append(
        Dependency("vault.pki", what, start + pem.RENEWAL_THRESHOLD * (end - start), "issued")
    )
    return fresh


def _kv2_path(vt: VaultTarget, path: str) -> str:
    """consul-template's KV v2 detection: insert `data/` after a version-2 kv mount."""
    bare = path.split("?", 1)[0]
    info = _request(vt, "GET", f"sys/internal/ui/mounts/{bare}", f"vault.read({path})")
    data = (info or {}).get("data") or {}
    mount = str(data.get("path") or "")
    if (data.get("options") or {}).get("version") != "2" or not mount:
        return path
    rest = bare[len(mount) :] if bare.startswith(mount) else bare
    if rest.startswith("data/"):
        return path
    query = path[len(bare) :]
    return f"{mount}data/{rest}{query}"


def _refresh_at(state: RenderState, resp: dict[str, Any], data: dict[str, Any]) -> float:
    now = state.ctx.clock()
    exp = data.get("expiration")
    if isinstance(exp, int | float) and not isinstance(exp, bool) and exp > now:
        base = float(exp) - now
    elif int(resp.get("lease_duration") or 0) > 0:
        base = float(resp["lease_duration"])
    else:
        base = state.ctx.vault_default_lease
    return now + base * state.ctx.rng.uniform(0.85, 0.95)


def secret(state: RenderState, path: str, *args: str) -> Secret:
    vt = _vault(state)
    path = path.strip().strip("/")
    data = kv_args(args)
    key = (path, repr(sorted(data.items())))
    if key in state.secret_cache:
        cached = state.secret_cache[key]
        assert isinstance(cached, Secret)
        return cached
    if data:
        what = f"vault.write({path} -> {sorted(data)})"
        resp = _request(vt, "PUT", path, what, dict(data))
        kind = "vault.write"
    else:
        what = f"vault.read({path})"
        real = _kv2_path(vt, path)
        split = urlsplit(real)
        query = dict(parse_qsl(split.query))
        full = split.path + (f"?version={query['version']}" if "version" in query else "")
        resp = _request(vt, "GET", full, what)
        kind = "vault.read"
    if resp is None:
        raise TemplateError(f"{what}: no secret exists at {path}")
    body = resp.get("data") if isinstance(resp.get("data"), dict) else {}
    auth = resp.get("auth") if isinstance(resp.get("auth"), dict) else None
    result = Secret(
        RequestID=str(resp.get("request_id") or ""),
        LeaseID=str(resp.get("lease_id") or ""),
        LeaseDuration=int(resp.get("lease_duration") or 0),
        Renewable=bool(resp.get("renewable")),
        Data=dict(body or {}),
        Warnings=list(resp.get("warnings") or []),
        Auth=None
        if auth is None
        else SecretAuth(
            Accessor=str(auth.get("accessor") or ""),
            ClientToken=str(auth.get("client_token") or ""),
            Policies=list(auth.get("policies") or []),
            Metadata=dict(auth.get("metadata") or {}),
            LeaseDuration=int(auth.get("lease_duration") or 0),
            Renewable=bool(auth.get("renewable")),
        ),
    )
    state.secret_cache[key] = result
    state.deps.append(Dependency(kind, what, _refresh_at(state, resp, result.Data)))
    return result
