"""The rotation record's I/O: read it, and write it with CAS so one driver at a time proceeds.

The record (``state``) is what makes a rotation resumable; this is the one place it is read
from and written to the ``mesh-controller/rotation`` Variable. Every write stamps the driver's
heartbeat and is fenced by the index of the last read or write, so a second driver (the
controller's tick and ``controllerctl rotate-ca``, or two controllers) loses the race with
``RotationLost`` instead of both proceeding. Kept apart from the procedure (``rotator``) so the
steps there read as steps.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.nomad.errors import Conflict
from controller.runtime.clock import Clock
from crds_equivalent import keys
from reconcilers.ports import VariableStore
from reconcilers.rotation.metrics import RotationMetrics
from reconcilers.rotation.state import RotationState

Progress = Callable[[RotationState, str], None]


class RotationLost(Exception):
    """Our write of the record lost a CAS race: someone else drives the rotation now."""


class RotationRecord:
    """Reads and CAS-writes the record for one driver (``owner``), reporting each write."""

    def __init__(
        self,
        store: VariableStore,
        owner: str,
        clock: Clock,
        metrics: RotationMetrics | None = None,
        on_progress: Progress | None = None,
    ) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        self.metrics = metrics
        self.on_progress = on_progress
        self._index = 0

    async def read(self) -> RotationState | None:
        var = await self.store.get(keys.VAR_ROTATION)
        self._index = var.modify_index if var is not None else 0
        state = RotationState.from_items(var.items) if var is not None and var.items else None
        if self.metrics is not None:
            self.metrics.rotating(state is not None and state.active)
        return state

    async def save(self, state: RotationState, detail: str = "") -> RotationState:
        state = state.beat(self.owner, self.clock.now())
        try:
            var = await self.store.put(keys.VAR_ROTATION, state.to_items(), cas=self._index)
        except Conflict:
            raise RotationLost("the rotation record changed under us") from None
        self._index = var.modify_index
        if self.metrics is not None:
            self.metrics.rotating(state.active)
        self._report(state, detail or state.message)
        return state

    def _report(self, state: RotationState, detail: str) -> None:
        if self.on_progress is not None:
            self.on_progress(state, detail)
