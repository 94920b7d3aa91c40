"""The reconcile contract: a key in, a ``Result`` out, and the two kinds of failure.

Level-triggered: the key only says *what* to look at; the reconciler re-reads the world. An
ordinary exception means "try again later" (rate-limited backoff); ``TerminalError`` means
"retrying cannot help" (the key is forgotten and the reconciler's status says why).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol, TypeVar

K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


@dataclass(frozen=True, slots=True)
class Result:
    """Outcome of a successful reconcile.

    ``requeue_after``: look again after this many seconds (waiting for something external, e.g.
    a rollout); the backoff is reset first. ``None``: done until the next event or resync.

    ``requeue``: look again through the key's rate limiter (per-key exponential backoff plus the
    global bucket), keeping the backoff. For an expected, retryable race that is not a failure
    worth a warning (an EnforceIndex conflict): a fixed short delay would retry it at the same
    pace forever, while the backoff makes a sustained race cost less and less. As in
    controller-runtime, ``requeue_after`` wins when both are set.
    """

    requeue_after: float | None = None
    requeue: bool = False


class TerminalError(Exception):
    """A failure that retrying cannot fix (invalid input); the key is not requeued."""


class Reconciler(Protocol[K_contra]):
    async def reconcile(self, key: K_contra) -> Result: ...
