"""``controllerctl rotate-ca``: rotate the mesh's intermediate CA now, with a progress bar.

The same procedure the controller runs by itself when the intermediate nears expiry
(``reconcilers.rotation.rotator``): a new intermediate signed by the root becomes the default
issuer, every meshed job re-issues its leaves in waves (a new job version each, rolled by Nomad
under the job's update block; the next wave starts when every instance serves a leaf of the new
issuer and passes in Consul), then the old issuer is set read-only. Progress lives in the
Variable ``mesh-controller/rotation``: an interrupted run (Ctrl-C, a crash) is resumed by the
next ``rotate-ca`` or by the controller once the record's heartbeat is older than
``--stale-after``; a failed rotation is retried from the failed wave by running this again.

Exit codes: 0 the rotation is done; 1 it failed (the reason is printed and stored), or another
live driver is rotating; 2 Nomad, Consul or Vault cannot be reached or refused.
"""

from __future__ import annotations

import asyncio
import os
import socket

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from controller.config import Settings
from controller.consul.client import ConsulError
from controller.ctl.common import EXIT_OK, EXIT_UNREACHABLE, fail, load_settings, open_clients
from controller.nomad.errors import NomadError
from controller.nomad.jobs import NomadJobs
from controller.nomad.variables import NomadVariables
from controller.tlsprobe import TlsProber
from controller.vault import VaultError
from controller.vault.pki_admin import VaultPki
from reconcilers.rotation.rotator import RotationBusy, RotationLost, RotationSettings, Rotator
from reconcilers.rotation.state import RotationState, Stage

EXIT_FAILED = 1


def _owner() -> str:
    return f"controllerctl@{socket.gethostname()}:{os.getpid()}"


def _plan_text(state: RotationState | None, issuer: str, expires: str, jobs: int, size: int) -> str:
    if state is not None and state.active:
        return (
            f"Resume rotation {state.id} ({state.stage}, wave {state.wave + 1}/"
            f"{max(1, len(state.waves))}): {state.message}"
        )
    if state is not None and state.stage is Stage.FAILED:
        return f"Retry failed rotation {state.id} from where it stopped: {state.message}"
    waves = -(-jobs // size) if jobs else 0
    return (
        f"Create a new intermediate CA, make it the default issuer (now {issuer}, expires "
        f"{expires}), re-issue the leaves of {jobs} meshed job(s) in {waves} wave(s) of up to "
        f"{size}, then set {issuer} read-only."
    )


async def _rotate(settings: Settings, yes: bool, options: RotationSettings) -> int:
    console = Console(stderr=True)
    async with open_clients(settings) as clients:
        jobs = NomadJobs(clients.nomad)
        rotator = Rotator(
            jobs=jobs,
            lister=jobs,
            consul=clients.consul,
            probe=TlsProber(),
            pki=VaultPki(clients.vault, settings.mesh),
            store=NomadVariables(clients.nomad, namespace=clients.namespace),
            config=settings.mesh,
            owner=_owner(),
            settings=options,
        )
        state = await rotator.read()
        current = await rotator.pki.default_issuer()
        meshed = await rotator.meshed_jobs()
        plan = _plan_text(
            state, current.issuer_id, current.not_after.isoformat(), len(meshed), options.wave_size
        )
        click.echo(plan)
        if not yes and not click.confirm("Proceed?", default=False):
            click.echo("aborted; nothing changed")
            return EXIT_FAILED
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            waves = bar.add_task("waves", total=None)
            done_jobs = bar.add_task("jobs", total=None)
            status = bar.add_task("", total=None, start=False)

            def show(s: RotationState, detail: str) -> None:
                bar.update(waves, total=max(1, len(s.waves)), completed=min(s.wave, len(s.waves)))
                bar.update(done_jobs, total=max(1, s.total_jobs), completed=len(s.done))
                bar.update(status, description=f"[{s.stage}] {detail}"[:120])

            rotator.on_progress = show
            state = await rotator.rotate("cli")
        seconds = ((state.finished_at or state.heartbeat) - state.started_at).total_seconds()
        if state.stage is Stage.DONE:
            click.echo(
                f"rotation {state.id} done in {seconds:.1f}s: {len(state.done)} job(s) on issuer "
                f"{state.new_issuer}; {state.old_issuer} is read-only"
            )
            return EXIT_OK
        click.echo(f"rotation {state.id} {state.stage}: {state.message}", err=True)
        return EXIT_FAILED


@click.command("rotate-ca")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--wave-size",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Jobs re-issued at once; the next wave starts when they all serve the new issuer.",
)
@click.option(
    "--wave-timeout",
    type=click.FloatRange(min=1),
    default=900.0,
    show_default=True,
    help="Seconds a wave may take before the rotation stops as failed.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05),
    default=5.0,
    show_default=True,
    help="Seconds between looks at a wave in progress.",
)
@click.option(
    "--stale-after",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    help="A rotation whose record was not written for this long is taken over and resumed.",
)
def rotate_ca(
    yes: bool, wave_size: int, wave_timeout: float, poll: float, stale_after: float
) -> None:
    """Rotate the mesh's intermediate CA and re-issue every meshed job's leaves in waves."""
    settings = load_settings("rotate-ca")
    options = RotationSettings(
        wave_size=wave_size,
        wave_timeout=wave_timeout,
        poll=poll,
        stale_after=stale_after,
        rotate_before=settings.controller.ca_rotate_before,
        namespaces=settings.controller.watched_namespaces,
    )
    try:
        code = asyncio.run(_rotate(settings, yes, options))
    except RotationBusy as err:
        fail("rotate-ca", EXIT_FAILED, f"{err}; it resumes here once its heartbeat is stale")
    except RotationLost as err:
        fail("rotate-ca", EXIT_FAILED, f"{err}; another driver took over")
    except (NomadError, ConsulError, VaultError) as err:
        fail("rotate-ca", EXIT_UNREACHABLE, str(err))
    raise SystemExit(code)
