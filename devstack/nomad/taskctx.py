"""What a task driver sees of the client: identity, directories, env, and callbacks.

A driver reports through the context instead of touching the state store: task events
(``emit_task_event``), state changes (``set_task_state``) and process exits
(``task_exited``, after which the client applies the restart policy like Nomad does), and
the two things a template manager may ask of the client (``request_restart``, ``fail_task``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


async def _nothing(*_: Any, **__: Any) -> None:
    return None


@dataclass
class TaskContext:
    alloc_id: str
    task_name: str
    node_id: str
    node_name: str
    node_address: str
    alloc_dir: Path
    task_dir: Path
    env: dict[str, str]
    vault_addr: str | None = None  # the client's vault.address; clients hold no token
    vault_auth_path: str = "jwt-nomad"  # the client's vault.jwt_auth_backend_path
    vault_client_role: str = ""  # the client's vault.create_from_role
    nomad_addr: str | None = None  # the server's HTTP API, for templates (nomadVar)
    nomad_token: str | None = None  # the task's workload identity
    nomad_namespace: str = "default"
    _emit: Callable[..., None] = field(default=lambda *a, **k: None, repr=False)
    _set_state: Callable[..., None] = field(default=lambda *a, **k: None, repr=False)
    _exited: Callable[..., None] = field(default=lambda *a, **k: None, repr=False)
    _restart: Callable[..., Awaitable[None]] = field(default=_nothing, repr=False)
    _fail: Callable[..., Awaitable[None]] = field(default=_nothing, repr=False)
    _sign_identity: Callable[[str], str | None] = field(default=lambda _n: None, repr=False)

    @property
    def local_dir(self) -> Path:
        return self.task_dir / "local"

    @property
    def secrets_dir(self) -> Path:
        return self.task_dir / "secrets"

    @property
    def shared_alloc_dir(self) -> Path:
        return self.alloc_dir / "alloc"

    def emit_task_event(self, type_: str, message: str = "", **details: Any) -> None:
        """Record a TaskEvent; keyword names are TaskEvent fields or go into Details."""
        self._emit(self.task_name, type_, message, **details)

    def set_task_state(self, state: str, *, failed: bool = False) -> None:
        """Move the task to pending|running|dead."""
        self._set_state(self.task_name, state, failed)

    def task_exited(self, exit_code: int, signal: int = 0, message: str = "") -> None:
        """The task's process ended by itself; the client decides about restarts."""
        self._exited(self.task_name, exit_code, signal, message)

    async def request_restart(self, reason: str) -> None:
        """Restart the task through the client, as a template change_mode restart does."""
        await self._restart(self.task_name, reason)

    def signed_identity(self, name: str) -> str | None:
        """A fresh JWT of the task's identity ``name`` (widmgr.Get); None if it has none."""
        return self._sign_identity(name)

    async def fail_task(self, message: str) -> None:
        """Kill the task as failed (a Killing event that fails it) and the rest of the alloc."""
        await self._fail(self.task_name, message)
