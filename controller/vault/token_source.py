"""Where the controller's Vault token comes from, and who keeps it alive.

Two sources, and one rule for who renews:
- ``VAULT_TOKEN`` (an env token, e.g. the periodic token ``controllerctl install`` creates):
  nobody else holds it, so the controller renews it itself (``renews_itself``).
- ``VAULT_TOKEN_FILE`` (on a cluster, the file Nomad writes from the job's ``vault`` block,
  ``secrets/vault_token``): Nomad renews that token, and logs in again with the task's workload
  identity when renewal fails, rewriting the file. The controller only re-reads the file when
  it changes; two renewers of one lease would only race each other. The file wins over
  ``VAULT_TOKEN``, because Nomad also puts the token it started the task with into the
  environment, and that one goes stale after a re-login.

The file is looked at (``stat``) before every Vault call, and read again when its identity
(inode, size, mtime) changed or every few seconds, so a new token is in use from the next call
on. A file
that cannot be read keeps the last token: Nomad rewrites it atomically, and a token that is
briefly missing must not turn every call into "permission denied". The token itself is never
logged, only that it changed.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Protocol

import structlog

from controller.config import VaultSettings

log = structlog.get_logger(__name__)

REREAD_EVERY = 10.0  # seconds; the file is tiny and Vault calls are not that frequent


class TokenSource(Protocol):
    """The current token; ``renews_itself`` says whether the controller must renew it."""

    renews_itself: bool
    origin: str  # for logs and /status: "VAULT_TOKEN" or "VAULT_TOKEN_FILE=<path>"

    def current(self) -> str: ...


class EnvToken:
    """A token given once, in the environment: ours to renew."""

    renews_itself = True
    origin = "VAULT_TOKEN"

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "EnvToken(<redacted>)"

    def current(self) -> str:
        return self._token


class FileToken:
    """A token file someone else (Nomad) writes and renews; re-read when it changes."""

    renews_itself = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.origin = f"VAULT_TOKEN_FILE={self.path}"
        self._token = ""
        self._seen: tuple[int, int, int] | None = None
        self._missing = False  # logged once per stretch of unreadability
        self._read_at = 0.0  # monotonic time of the last read
        self._lock = threading.Lock()  # Vault calls run in worker threads
        self.changes = 0  # how many times a new token was read (tests, logs)

    def __repr__(self) -> str:
        return f"FileToken({str(self.path)!r})"

    def current(self) -> str:
        with self._lock:
            try:
                info = os.stat(self.path)
            except OSError as exc:
                self._unreadable(exc)
                return self._token
            seen = (info.st_ino, info.st_size, info.st_mtime_ns)
            # Also read it again now and then: a same-size rewrite within a coarse mtime tick
            # (a new token is as long as the old one) would otherwise go unseen.
            if seen != self._seen or time.monotonic() - self._read_at > REREAD_EVERY:
                self._reload(seen)
            return self._token

    def _reload(self, seen: tuple[int, int, int]) -> None:
        try:
            token = self.path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            self._unreadable(exc)
            return
        self._seen, self._missing = seen, False
        self._read_at = time.monotonic()
        if token and token != self._token:
            if self._token:  # a change, in a long-running process; the first read is silent
                log.info("vault token file changed; using the new token", file=str(self.path))
            self._token = token
            self.changes += 1

    def _unreadable(self, exc: OSError) -> None:
        # Only a process that already had a token says so (the keeper's failing lookup names
        # the file otherwise): controllerctl must not print log lines into its own output.
        if not self._missing and self._token:
            self._missing = True
            log.warning(
                "vault token file unreadable; keeping the last token",
                file=str(self.path),
                error=type(exc).__name__,
            )
        self._seen = None


def token_source(settings: VaultSettings) -> TokenSource:
    """VAULT_TOKEN_FILE when set, else VAULT_TOKEN (possibly empty)."""
    if settings.token_file:
        return FileToken(settings.token_file)
    return EnvToken(settings.token.get_secret_value() if settings.token else "")
