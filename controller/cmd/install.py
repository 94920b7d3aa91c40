"""``controllerctl install [--dry-run]``: the helm-less install through the APIs.

Does what helm-less-deploy/README.md does with the `vault`/`bao` and `nomad` CLIs: the mesh
PKI and Vault policies, Vault's JWT auth method for workload identities (`nomad setup vault`'s
setup, against ``--jwks-url``), the controller's Vault login (the JWT role its job's identity
logs in with; a long-lived token only for a job file without a vault block), the Nomad ACL
policy and token
(when ACLs are on), the Variable nomad/jobs/mesh-controller the job reads its environment
from, and the system job itself, at --version/--image when given. Every step looks before it
writes, so re-running it is safe and changes nothing when everything is in place; each printed
line says what changed or was found. With --dry-run nothing is written and each line says what
would change, the job's with Nomad's own diff (its plan endpoint). An existing job is upgraded
in place: registered with EnforceIndex, then (unless --no-wait) the install waits for the new
version to run and reports which controller held the leader lock before and after, and how
long nobody did. Tokens are never printed.

The installer's own access comes from NOMAD_* and VAULT_* as the CLIs read them (it needs a
Nomad management token when ACLs are on and a Vault token that may mount, write policies and
create orphan tokens). The addresses written for the controller default to the installer's.

Exit codes: 0 done (changed or not); 1 a step failed (the message says which); 2 Nomad or
Vault cannot be reached, a token lacks a capability, or the settings are unusable.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, NoReturn

import click

from controller.config import (
    ConfigError,
    ConsulSettings,
    NomadSettings,
    VaultSettings,
    load_mesh_config,
)
from controller.config.values import reading
from controller.deploy.install import InstallOptions, install_with, packaged_job_file
from controller.deploy.jwks import default_jwks_url, workload_auth
from controller.deploy.nomad_install import SECRET_KEYS
from controller.deploy.rollout import RolloutFailed
from controller.deploy.steps import InstallReport, Outcome
from controller.deploy.vault_access import refusal_message
from controller.deploy.vault_install import DEFAULT_TOKEN_PERIOD
from controller.nomad.errors import NomadError, PermissionDenied, TransientError
from controller.vault import (
    VaultClient,
    VaultConnection,
    VaultError,
    VaultPermissionDenied,
    VaultUnavailable,
    pki_layout,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREACHABLE = 2

_MARK = {Outcome.CHANGED: "changed", Outcome.UNCHANGED: "ok", Outcome.WOULD_CHANGE: "would"}


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def _env_items(pairs: tuple[str, ...]) -> dict[str, str]:
    items: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(EXIT_UNREACHABLE, f"--env needs KEY=VALUE, got {pair!r}")
        if key in SECRET_KEYS:
            _fail(EXIT_UNREACHABLE, f"--env {key}: tokens are made by install, not passed in")
        items[key] = value
    return items


def _load_job(path: Path | Traversable) -> dict[str, Any]:
    try:
        job = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        _fail(EXIT_FAILED, f"cannot read the job file {path}: {err}")
    if not isinstance(job, dict):
        _fail(EXIT_FAILED, f"{path} is not a Nomad API job")
    return job


def _read_secret_file(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as err:
        _fail(EXIT_UNREACHABLE, f"cannot read {path}: {err}")


def print_report(report: InstallReport, *, failed: bool = False) -> None:
    for step in report.steps:
        click.echo(f"{_MARK[step.outcome]:<8} {step.what}")
        for line in step.detail:
            click.echo(f"{'':<11}{line}")
    changes = len(report.changes)
    kept = len(report.steps) - changes
    if failed:
        done = "would be made" if report.dry_run else "made"
        click.echo(f"stopped: {changes} change(s) {done} before the failure below, {kept} in place")
    elif report.dry_run:
        click.echo(f"dry run: {changes} change(s) would be made, {kept} in place; nothing written")
    elif changes:
        click.echo(f"installed: {changes} change(s) made, {kept} already in place")
    else:
        click.echo(f"unchanged: all {kept} steps were already in place")


def _run(
    nomad_settings: NomadSettings, vault: VaultClient, options: InstallOptions
) -> InstallReport:
    """Install; when a step fails, show the steps done before it, then let the error through."""
    report = InstallReport(dry_run=options.dry_run)
    try:
        asyncio.run(vault.closing_after(install_with(nomad_settings, vault, options, report)))
    except BaseException:
        if report.steps:
            print_report(report, failed=True)
        raise
    return report


@click.command("install")
@click.option("--dry-run", is_flag=True, help="Change nothing; print what would change.")
@click.option(
    "--job-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    show_default="the packaged mesh-controller.nomad.json",
    help="The system job as Nomad API JSON (helm-less-deploy/gen.py writes it).",
)
@click.option(
    "--namespaces",
    default="*",
    show_default=True,
    help="Namespaces the controller watches (MESH_NAMESPACES); the Nomad policy follows.",
)
@click.option("--controller-nomad-addr", default=None, help="NOMAD_ADDR for the controller.")
@click.option("--controller-vault-addr", default=None, help="VAULT_ADDR for the controller.")
@click.option("--controller-consul-addr", default=None, help="CONSUL_HTTP_ADDR for the controller.")
@click.option(
    "--consul-token-file",
    default=None,
    metavar="FILE",
    help="File holding the controller's Consul token (Consul with ACLs).",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    help="Another non-secret item for the controller's environment, e.g. MESH_WORKERS=8.",
)
@click.option(
    "--version",
    "version",
    default=None,
    metavar="VERSION",
    help="Controller version to run: the job's meta.version and the docker image's tag "
    "(default: this controllerctl's version with the packaged job, the file's with --job-file).",
)
@click.option(
    "--image",
    default=None,
    metavar="IMAGE",
    help="Full image reference for the docker task, e.g. registry.example/nomad-tls-mesh:0.2.0.",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="After registering a changed job, wait for the new version to run and report the "
    "leader failover it caused.",
)
@click.option(
    "--timeout",
    "rollout_timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="Seconds to wait for the rollout (exit 1 when it is not done by then).",
)
@click.option(
    "--jwks-url",
    default=None,
    metavar="URL",
    help="Nomad's JWKS as Vault reaches it, for the JWT auth method workloads log in at "
    "[default: $NOMAD_ADDR/.well-known/jwks.json].",
)
@click.option(
    "--jwks-ca-file",
    default=None,
    metavar="FILE",
    help="CA certificate (PEM) that verifies an https JWKS URL.",
)
@click.option(
    "--vault-token-period",
    default=DEFAULT_TOKEN_PERIOD,
    show_default=True,
    help="Period of the controller's (periodic, orphan) Vault token, made only for a job "
    "file without a vault block (the packaged job logs in with its workload identity).",
)
def install_cmd(
    dry_run: bool,
    job_file: Path | None,
    namespaces: str,
    controller_nomad_addr: str | None,
    controller_vault_addr: str | None,
    controller_consul_addr: str | None,
    consul_token_file: str | None,
    env: tuple[str, ...],
    version: str | None,
    image: str | None,
    wait: bool,
    rollout_timeout: float,
    jwks_url: str | None,
    jwks_ca_file: str | None,
    vault_token_period: str,
) -> None:
    """Install (or upgrade) the controller as a Nomad system job; idempotent."""
    try:
        with reading(None):
            nomad_s, vault_s, consul_s = NomadSettings(), VaultSettings(), ConsulSettings()
        layout = pki_layout(load_mesh_config())
        auth = workload_auth(jwks_url or default_jwks_url(nomad_s.addr), jwks_ca_file)
    except (ConfigError, ValueError) as err:
        _fail(EXIT_UNREACHABLE, f"invalid setting: {err}")
    if vault_s.token is None or not vault_s.token.get_secret_value():
        _fail(EXIT_UNREACHABLE, "VAULT_TOKEN is not set; install needs a Vault token")
    watched = tuple(n.strip() for n in namespaces.split(",") if n.strip()) or ("*",)
    controller_env = {
        "NOMAD_ADDR": controller_nomad_addr or nomad_s.addr,
        "VAULT_ADDR": controller_vault_addr or vault_s.addr,
        # Consul is optional: an unset address stays unset in the controller's job
        **(
            {"CONSUL_HTTP_ADDR": consul}
            if (consul := controller_consul_addr or consul_s.http_addr)
            else {}
        ),
        **_env_items(env),
    }
    if version is None and job_file is None:  # the packaged job runs this controllerctl's version
        version = importlib.metadata.version("nomad-tls-mesh")
    options = InstallOptions(
        job=_load_job(job_file if job_file is not None else packaged_job_file()),
        layout=layout,
        controller_env=controller_env,
        watched=watched,
        consul_token=_read_secret_file(consul_token_file),
        vault_token_period=vault_token_period,
        dry_run=dry_run,
        version=version,
        image=image,
        wait=wait,
        rollout_timeout=rollout_timeout,
        workload_auth=auth,
    )
    vault = VaultClient(VaultConnection.from_settings(vault_s))
    if dry_run:
        click.echo("dry run: nothing will be written")
    try:
        report = _run(nomad_s, vault, options)
    except VaultUnavailable as err:
        _fail(EXIT_UNREACHABLE, f"cannot reach Vault at {vault_s.addr}: {err}")
    except VaultPermissionDenied as err:
        _fail(EXIT_UNREACHABLE, asyncio.run(vault.closing_after(refusal_message(vault, err))))
    except VaultError as err:
        _fail(EXIT_FAILED, str(err))
    except TransientError as err:
        _fail(EXIT_UNREACHABLE, f"cannot reach Nomad at {nomad_s.addr}: {err}")
    except PermissionDenied as err:
        _fail(EXIT_UNREACHABLE, f"the Nomad token lacks a capability: {err}")
    except (NomadError, ValueError, RolloutFailed) as err:
        _fail(EXIT_FAILED, str(err))
    print_report(report)
