"""What ``controllerctl rotate-ca`` does: say the plan, ask, drive the rotation, show progress.

The procedure itself is the controller's own (``reconcilers.rotation.rotator``), wired here to
the operator's clients and a progress bar on stderr. The command decides how to print and how
to ask (``say``, ``warn``, ``confirm``), so this module knows nothing about click.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from controller.config import Settings
from controller.ctl.common import EXIT_OK, Clients, open_clients
from controller.nomad.jobs import NomadJobs
from controller.nomad.services import NomadServices
from controller.nomad.variables import NomadVariables
from controller.tlsprobe import TlsProber
from controller.vault.pki_admin import VaultPki
from reconcilers.rotation.rotator import RotationSettings, Rotator
from reconcilers.rotation.state import RotationState, Stage

EXIT_FAILED = 1


def owner() -> str:
    """Who drives this rotation, as the rotation record names its driver."""
    return f"controllerctl@{socket.gethostname()}:{os.getpid()}"


def plan_text(state: RotationState | None, issuer: str, expires: str, jobs: int, size: int) -> str:
    """What running now will do: resume, retry, or start a rotation (and its size)."""
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


def _rotator(clients: Clients, settings: Settings, options: RotationSettings) -> Rotator:
    jobs = NomadJobs(clients.nomad)
    return Rotator(
        jobs=jobs,
        lister=jobs,
        consul=clients.consul,
        native=NomadServices(clients.nomad),
        probe=TlsProber(),
        pki=VaultPki(clients.vault, settings.mesh),
        store=NomadVariables(clients.nomad, namespace=clients.namespace),
        config=settings.mesh,
        owner=owner(),
        settings=options,
    )


async def _with_progress(rotator: Rotator) -> RotationState:
    """Run the rotation with a bar for waves, one for jobs, and the current step, on stderr."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    console = Console(stderr=True)
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=False) as bar:
        waves = bar.add_task("waves", total=None)
        done_jobs = bar.add_task("jobs", total=None)
        status = bar.add_task("", total=None, start=False)

        def show(s: RotationState, detail: str) -> None:
            bar.update(waves, total=max(1, len(s.waves)), completed=min(s.wave, len(s.waves)))
            bar.update(done_jobs, total=max(1, s.total_jobs), completed=len(s.done))
            bar.update(status, description=f"[{s.stage}] {detail}"[:120])

        rotator.on_progress = show
        return await rotator.rotate("cli")


async def rotate(
    settings: Settings,
    options: RotationSettings,
    *,
    confirm: Callable[[str], bool],
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> int:
    """Print the plan with ``say``; unless ``confirm`` agrees, stop (exit 1, nothing changed);
    else rotate and report the outcome. Returns the exit code. Raises RotationBusy and
    RotationLost, and the adapters' errors when a backend cannot be reached."""
    async with open_clients(settings) as clients:
        rotator = _rotator(clients, settings, options)
        state = await rotator.read()
        current = await rotator.pki.default_issuer()
        meshed = await rotator.meshed_jobs()
        expires = current.not_after.isoformat()
        say(plan_text(state, current.issuer_id, expires, len(meshed), options.wave_size))
        if not confirm("Proceed?"):
            say("aborted; nothing changed")
            return EXIT_FAILED
        state = await _with_progress(rotator)
        seconds = ((state.finished_at or state.heartbeat) - state.started_at).total_seconds()
        if state.stage is Stage.DONE:
            say(
                f"rotation {state.id} done in {seconds:.1f}s: {len(state.done)} job(s) on issuer "
                f"{state.new_issuer}; {state.old_issuer} is read-only"
            )
            return EXIT_OK
        warn(f"rotation {state.id} {state.stage}: {state.message}")
        return EXIT_FAILED
