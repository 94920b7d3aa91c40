"""``controllerctl bootstrap-pki``: create the mesh PKI in Vault, or confirm it is in place.

The first step of running the mesh against a real cluster, and safe to re-run in any pipeline:
every step looks before it writes, each line printed says what was created or found already
present, and the last line says whether anything changed. Names come from the MeshConfig
settings (``MESH_ROOT_MOUNT``, ``MESH_PKI_MOUNT``, ``MESH_PKI_ROLE``, ``MESH_DOMAIN``, …), so
the controller later looks exactly where the bootstrap wrote; Vault is reached through
``VAULT_ADDR``/``VAULT_TOKEN``/``VAULT_CACERT``… as the ``vault`` CLI reads them.

It also sets up Vault's JWT auth method for Nomad's workload identities, as `nomad setup vault`
does (``--jwks-url``, default ``$NOMAD_ADDR/.well-known/jwks.json``), and the mesh's login role
``mesh-workload`` on it: the sidecars log in there with their own identity, and their tokens
may issue leaves only for their own job's names.

Exit codes: 0 done (changed or not); 1 the PKI cannot be made as asked (an unusable external
root, a different root already in the mount, a request Vault rejects); 2 Vault cannot be
reached, the token is missing or lacks a capability (the message names capability and path),
or the settings are unusable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import NoReturn

import click

from controller.config import ConfigError, NomadSettings, VaultSettings, load_mesh_config
from controller.config.values import reading
from controller.deploy.jwks import default_jwks_url, workload_auth
from controller.deploy.vault_access import refusal_message
from controller.vault import (
    BootstrapReport,
    VaultClient,
    VaultConnection,
    VaultError,
    VaultPermissionDenied,
    VaultUnavailable,
    bootstrap_pki,
    pki_layout,
)
from controller.vault.external_root import RootBundle, parse_root_bundle
from controller.vault.workload_auth import WorkloadAuth
from crds_equivalent.config import MeshConfig

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREACHABLE = 2


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def _settings(domain: str | None) -> tuple[VaultSettings, MeshConfig]:
    try:
        with reading(None):
            vault = VaultSettings()
        config = load_mesh_config(overrides={"domain": domain} if domain else None)
    except (ConfigError, ValueError) as err:
        _fail(EXIT_UNREACHABLE, f"invalid setting: {err}")
    if vault.token is None or not vault.token.get_secret_value():
        _fail(EXIT_UNREACHABLE, "VAULT_TOKEN is not set; bootstrap needs a Vault token")
    return vault, config


def _auth(jwks_url: str | None, jwks_ca_file: str | None) -> WorkloadAuth:
    try:
        if jwks_url is None:
            with reading(None):
                jwks_url = default_jwks_url(NomadSettings().addr)
        return workload_auth(jwks_url, jwks_ca_file)
    except (ConfigError, ValueError) as err:
        _fail(EXIT_UNREACHABLE, f"invalid setting: {err}")


def _bundle(path: str | None) -> RootBundle | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        _fail(EXIT_FAILED, f"{path}: {err}")
    try:
        return parse_root_bundle(text, source=path)
    except VaultError as err:
        _fail(EXIT_FAILED, str(err))


def print_report(report: BootstrapReport, addr: str) -> None:
    for line in report.done:
        click.echo(line)
    for line in report.present:
        click.echo(f"already present: {line}")
    if report.default_issuer:
        click.echo(f"default issuer: {report.default_issuer}")
    if report.changed:
        click.echo(f"changed: {len(report.done)} change(s) made in Vault at {addr}")
    else:
        click.echo(f"unchanged: the mesh PKI was already in place in Vault at {addr}")


@click.command("bootstrap-pki")
@click.option(
    "--domain",
    default=None,
    metavar="DOMAIN",
    help="Mesh domain; leaves are <service>.<DOMAIN> [env MESH_DOMAIN; default service.consul].",
)
@click.option(
    "--external-root",
    "external_root",
    default=None,
    metavar="FILE",
    help="PEM bundle (CA certificate + its private key) to import as the root instead of "
    "generating one in Vault.",
)
@click.option(
    "--jwks-url",
    default=None,
    metavar="URL",
    help="Nomad's JWKS as Vault reaches it, for the JWT auth method "
    "[default: $NOMAD_ADDR/.well-known/jwks.json].",
)
@click.option(
    "--jwks-ca-file",
    default=None,
    metavar="FILE",
    help="CA certificate (PEM) that verifies an https JWKS URL.",
)
def bootstrap_pki_cmd(
    domain: str | None, external_root: str | None, jwks_url: str | None, jwks_ca_file: str | None
) -> None:
    """Create the mesh PKI in Vault (root, intermediate, role, policies, the JWT auth method
    for workload identities); idempotent."""
    vault, config = _settings(domain)
    bundle = _bundle(external_root)
    auth = _auth(jwks_url, jwks_ca_file)
    layout = pki_layout(config)
    client = VaultClient(VaultConnection.from_settings(vault))
    try:
        report = asyncio.run(
            client.closing_after(
                bootstrap_pki(client, layout, external_root=bundle, workload_auth=auth)
            )
        )
    except VaultUnavailable as err:
        _fail(EXIT_UNREACHABLE, f"cannot reach Vault at {vault.addr}: {err}")
    except VaultPermissionDenied as err:
        _fail(EXIT_UNREACHABLE, asyncio.run(client.closing_after(refusal_message(client, err))))
    except VaultError as err:
        _fail(EXIT_FAILED, str(err))
    print_report(report, vault.addr)
