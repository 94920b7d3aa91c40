"""Idempotent bootstrap of the mesh PKI: root, intermediate, role, policies.

`controllerctl bootstrap-pki` and the devstack call this. Every step first looks at what exists
and only writes what is missing or different, so a second run changes nothing and says so.

Choices (README "Design decisions"): both CAs use EC P-256 keys (fast, universally supported by
TLS 1.2+ clients, and the same curve as the leaves); the root lives 10 years in its own mount,
the intermediate 5 years. The role allows `<svc>.<domain>` (subdomains of the mesh domain) and
`<svc>.service.<dc>.<datacenter_domain>` through one glob entry, `*.service.*.consul`, instead
of all of `*.consul`; bare domains, wildcards and `localhost` are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.vault import issuers
from controller.vault import workload_auth as wi
from controller.vault.client import VaultClient, VaultError
from controller.vault.external_root import RootBundle, import_external_root
from controller.vault.policies import (
    CONTROLLER_POLICY,
    WORKLOAD_POLICY,
    PolicyPaths,
    controller_policy,
    workload_policy,
)
from crds_equivalent.config import MeshConfig
from crds_equivalent.goparse import parse_go_duration


@dataclass(frozen=True)
class PkiLayout:
    """Names and lifetimes of the mesh PKI. Defaults match MeshConfig's defaults."""

    root_mount: str = "pki"
    int_mount: str = "pki_int"
    role: str = "mesh"
    domain: str = "service.consul"
    datacenter_domain: str = "consul"
    extra_allowed_domains: tuple[str, ...] = ()
    root_common_name: str = "nomad-tls-mesh Root CA"
    int_common_name: str = "nomad-tls-mesh Intermediate CA"
    root_ttl: str = "87600h"
    int_ttl: str = "43800h"
    role_ttl: str = "72h"
    role_max_ttl: str = "2160h"

    def allowed_domains(self) -> list[str]:
        return [self.domain, f"*.service.*.{self.datacenter_domain}", *self.extra_allowed_domains]

    def role_params(self) -> dict[str, Any]:
        return {
            "key_type": "ec",
            "key_bits": 256,
            "server_flag": True,
            "client_flag": True,
            "allowed_domains": self.allowed_domains(),
            "allow_subdomains": True,
            "allow_glob_domains": True,
            "allow_bare_domains": False,
            "allow_wildcard_certificates": False,
            "allow_localhost": False,
            "allow_ip_sans": True,
            "enforce_hostnames": True,
            "require_cn": True,
            "ttl": self.role_ttl,
            "max_ttl": self.role_max_ttl,
        }

    def policy_paths(self, jwt_accessor: str = wi.PLACEHOLDER_ACCESSOR) -> PolicyPaths:
        return PolicyPaths(
            root_mount=self.root_mount,
            int_mount=self.int_mount,
            role=self.role,
            jwt_accessor=jwt_accessor,
        )

    def job_role_params(self, names: tuple[str, ...]) -> dict[str, Any]:
        """A per-job role (identity-bound leaves): the mesh role's key, usage and TTL limits,
        but exactly ``names`` — each an exact name or one Consul-form glob — and no
        subdomains, so no other service's name can be asked for."""
        params = self.role_params()
        params.update(
            allowed_domains=list(names),
            allow_subdomains=False,
            allow_bare_domains=True,
            allow_glob_domains=any("*" in name for name in names),
        )
        return params


def pki_layout(config: MeshConfig) -> PkiLayout:
    """The PKI layout the controller uses, from the cluster-wide MeshConfig.

    The one place the MeshConfig names map onto the layout, so that `bootstrap-pki`, `install`
    and `controller dev` write exactly where the controller later looks."""
    return PkiLayout(
        root_mount=config.root_mount,
        int_mount=config.pki_mount,
        role=config.pki_role,
        domain=config.domain,
        datacenter_domain=config.datacenter_domain,
        role_ttl=config.ttl_default,
    )


@dataclass
class BootstrapReport:
    """What a bootstrap run did (`done`) and what it found already in place (`present`)."""

    done: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    default_issuer: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.done)


async def _mounts(client: VaultClient) -> dict[str, Any]:
    resp = await client.read("sys/mounts") or {}
    data = resp.get("data") if isinstance(resp.get("data"), dict) else resp
    return dict(data or {})


async def _ensure_mount(
    client: VaultClient, mounts: dict[str, Any], path: str, max_ttl: str, report: BootstrapReport
) -> None:
    existing = mounts.get(f"{path}/")
    if isinstance(existing, dict):
        if existing.get("type") != "pki":
            raise VaultError(f"mount {path}/ exists with type {existing.get('type')!r}, not pki")
        report.present.append(f"mount {path}/")
        return
    await client.write(f"sys/mounts/{path}", {"type": "pki", "config": {"max_lease_ttl": max_ttl}})
    report.done.append(f"enabled pki mount {path}/ (max_lease_ttl {max_ttl})")


async def _ensure_root(
    client: VaultClient,
    layout: PkiLayout,
    report: BootstrapReport,
    external: RootBundle | None = None,
) -> None:
    if external is not None:
        if await import_external_root(client, layout.root_mount, external):
            report.done.append(
                f"imported external root CA {external.subject} into {layout.root_mount}/"
            )
        else:
            report.present.append(f"external root CA {external.subject} in {layout.root_mount}/")
        return
    if await issuers.default_issuer_id(client, layout.root_mount):
        report.present.append(f"root CA in {layout.root_mount}/")
        return
    await client.write(
        f"{layout.root_mount}/root/generate/internal",
        {
            "common_name": layout.root_common_name,
            "key_type": "ec",
            "key_bits": 256,
            "ttl": layout.root_ttl,
            "issuer_name": "root",
        },
    )
    report.done.append(f"generated root CA in {layout.root_mount}/ (EC P-256, {layout.root_ttl})")


async def _ensure_intermediate(
    client: VaultClient, layout: PkiLayout, report: BootstrapReport
) -> None:
    current = await issuers.default_issuer_id(client, layout.int_mount)
    if current:
        info = await issuers.read_issuer(client, layout.int_mount, current)
        if info.key_id:
            report.present.append(f"intermediate CA in {layout.int_mount}/ ({info.issuer_id})")
            report.default_issuer = info.issuer_id
            return
    new_id = await issuers.create_intermediate(
        client,
        root_mount=layout.root_mount,
        int_mount=layout.int_mount,
        common_name=layout.int_common_name,
        ttl=layout.int_ttl,
    )
    await issuers.set_default_issuer(client, layout.int_mount, new_id)
    report.default_issuer = new_id
    report.done.append(
        f"generated intermediate CA in {layout.int_mount}/ signed by {layout.root_mount}/ "
        f"(EC P-256, {layout.int_ttl}), default issuer {new_id}"
    )


def _same(want: Any, have: Any, key: str) -> bool:
    if key in ("ttl", "max_ttl"):
        return int(parse_go_duration(str(want))) == int(have or 0)
    if isinstance(want, list):
        return sorted(map(str, want)) == sorted(map(str, have or []))
    return bool(want == have)


async def _ensure_role(client: VaultClient, layout: PkiLayout, report: BootstrapReport) -> None:
    path = f"{layout.int_mount}/roles/{layout.role}"
    want = layout.role_params()
    resp = await client.read(path)
    have = (resp or {}).get("data") or {}
    if resp is not None and all(_same(v, have.get(k), k) for k, v in want.items()):
        report.present.append(f"role {path}")
        return
    await client.write(path, want)
    report.done.append(f"{'updated' if resp is not None else 'created'} role {path}")


async def _ensure_policy(
    client: VaultClient, name: str, text: str, report: BootstrapReport
) -> None:
    resp = await client.read(f"sys/policies/acl/{name}")
    have = str(((resp or {}).get("data") or {}).get("policy") or "")
    if resp is not None and have.strip() == text.strip():
        report.present.append(f"policy {name}")
        return
    await client.write(f"sys/policies/acl/{name}", {"policy": text})
    report.done.append(f"{'updated' if resp is not None else 'created'} policy {name}")


async def bootstrap_pki(
    client: VaultClient,
    layout: PkiLayout | None = None,
    *,
    external_root: RootBundle | None = None,
    workload_auth: wi.WorkloadAuth | None = None,
) -> BootstrapReport:
    """Make the mesh PKI exist exactly as `layout` says; needs a token that may mount/policy.

    `external_root` (see controller.vault.external_root) is imported as the root CA instead of
    generating one; a root mount that already holds a different root is left alone (error).
    `workload_auth` is the JWT auth method Nomad's workloads log in at (`nomad setup vault`);
    without it the method and the mesh's role on it are still made, and its JWKS config is
    left as found (the workload policy needs the method's accessor either way).
    """
    layout = layout or PkiLayout()
    report = BootstrapReport()
    mounts = await _mounts(client)
    await _ensure_mount(client, mounts, layout.root_mount, layout.root_ttl, report)
    await _ensure_root(client, layout, report, external_root)
    await _ensure_mount(client, mounts, layout.int_mount, layout.int_ttl, report)
    await _ensure_intermediate(client, layout, report)
    await _ensure_role(client, layout, report)
    auth = workload_auth or wi.WorkloadAuth(jwks_url=None)

    def say(line: str, changed: bool) -> None:
        (report.done if changed else report.present).append(line)

    accessor = await wi.ensure_mount(client, auth, say)
    await wi.ensure_config(client, auth, say)
    paths = layout.policy_paths(accessor)
    await _ensure_policy(client, WORKLOAD_POLICY, workload_policy(paths), report)
    await _ensure_policy(client, CONTROLLER_POLICY, controller_policy(paths), report)
    await wi.ensure_role(client, auth, (WORKLOAD_POLICY,), say)
    return report
