"""The controller's side of intermediate rotation: a leader-only loop around ``Rotator.tick``.

Every ``interval`` seconds the leader looks at the rotation record and the default issuer:
an orphaned rotation (its driver crashed, or a ``controllerctl rotate-ca`` was killed) is
resumed, and a new one starts when the intermediate expires within ``MESH_CA_ROTATE_BEFORE``.
One failing look (Vault sealed, Nomad away) is logged and retried at the next interval; it never
stops the controller. A rotation runs inside this loop, so the loop simply resumes looking once
that rotation is done or failed.
"""

from __future__ import annotations

import asyncio

import structlog

from controller.runtime.clock import Clock
from reconcilers.rotation.record import RotationLost
from reconcilers.rotation.rotator import RotationBusy, Rotator

log = structlog.get_logger(__name__)


async def rotation_loop(rotator: Rotator, clock: Clock, interval: float = 3600.0) -> None:
    """Run until cancelled (the manager cancels it when leadership is lost)."""
    while True:
        try:
            state = await rotator.tick()
            if state is not None and state.active and state.owner != rotator.owner:
                log.info("rotation driven elsewhere", id=state.id, owner=state.owner)
        except (RotationBusy, RotationLost) as exc:
            log.info("rotation driven elsewhere", detail=str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one failed look must not stop the controller
            log.error("rotation check failed", error=f"{type(exc).__name__}: {exc}")
        await clock.sleep(interval)
