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

import click

from controller.consul.wire import ConsulError
from controller.ctl.ca_rotation import EXIT_FAILED, rotate
from controller.ctl.common import EXIT_UNREACHABLE, fail, load_settings
from controller.nomad.errors import NomadError
from controller.vault import VaultError
from reconcilers.rotation.record import RotationLost
from reconcilers.rotation.rotator import RotationBusy, RotationSettings


def _confirm(yes: bool, question: str) -> bool:
    return yes or click.confirm(question, default=False)


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
        code = asyncio.run(
            rotate(
                settings,
                options,
                confirm=lambda question: _confirm(yes, question),
                say=click.echo,
                warn=lambda line: click.echo(line, err=True),
            )
        )
    except RotationBusy as err:
        fail("rotate-ca", EXIT_FAILED, f"{err}; it resumes here once its heartbeat is stale")
    except RotationLost as err:
        fail("rotate-ca", EXIT_FAILED, f"{err}; another driver took over")
    except (NomadError, ConsulError, VaultError) as err:
        fail("rotate-ca", EXIT_UNREACHABLE, str(err))
    raise SystemExit(code)
