"""A task's workload identities, delivered as a Nomad client's identity hook delivers them.

client/allocrunner/taskrunner/identity_hook.go:
- ``setDefaultToken``: the default identity is the task's Nomad token; ``identity { env = true }``
  puts it in ``NOMAD_TOKEN``, ``file = true`` in ``secrets/nomad_token`` (or ``filepath``).
- ``setAltToken`` for every other ``identity`` block: ``env`` -> ``NOMAD_TOKEN_<name>``, ``file``
  -> ``secrets/nomad_<name>.jwt`` (or ``filepath``). Files are written 0666 under the umask
  (helper/users ``WriteFileFor`` for a task without ``user``).
- client/widmgr renews the identities that expire: at ``ExpiryToRenewTime`` of the earliest
  ``exp`` (half the time left, at least 10 s, plus up to a tenth as stagger), and each renewed
  identity applies its ``change_mode``: ``restart`` ("Identity[<name>]: new token acquired"),
  ``signal`` ("Identity[<name>]: new Identity token acquired"), else nothing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from devstack.executor.tokenfile import write_token

log = logging.getLogger(__name__)

MIN_WAIT = 10.0  # widmgr minWait


def _exp(jwt: str) -> float | None:
    try:
        body = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if exp is not None else None


def renew_wait(exp: float, now: float, rng: random.Random) -> float:
    """helper.ExpiryToRenewTime(exp, now, minWait)."""
    renew_at = (exp - now) / 2
    if renew_at < MIN_WAIT:
        return MIN_WAIT + rng.uniform(0, MIN_WAIT / 10)
    return renew_at + rng.uniform(0, renew_at / 10)


class IdentityHook:
    def __init__(
        self,
        task: dict[str, Any],
        task_dir: Path,
        sign: Callable[[str], str | None],
        *,
        restart: Callable[[str], Awaitable[None]],
        signal: Callable[[str, str], Awaitable[None]],
        rng: random.Random,
    ) -> None:
        self.task = task
        self.task_dir = task_dir
        self.sign = sign
        self.restart = restart
        self.signal = signal
        self.rng = rng
        self.env: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self._renewer: asyncio.Task[None] | None = None

    def _alt(self) -> list[dict[str, Any]]:
        return [w for w in self.task.get("Identities") or [] if w.get("Name")]

    def prestart(self) -> None:
        default = self.task.get("Identity") or {}
        token = self.sign("default")
        if token is not None:
            if default.get("Env"):
                self.env["NOMAD_TOKEN"] = token
            if default.get("File"):
                self._write(default, "nomad_token", token)
        for wid in self._alt():
            self._set_alt(wid)

    def _set_alt(self, wid: dict[str, Any]) -> bool:
        name = str(wid["Name"])
        token = self.sign(name)
        if token is None:
            return False
        self.tokens[name] = token
        if wid.get("Env"):
            self.env[f"NOMAD_TOKEN_{name}"] = token
        if wid.get("File"):
            self._write(wid, f"nomad_{name}.jwt", token)
        return True

    def _write(self, wid: dict[str, Any], default_name: str, token: str) -> None:
        if wid.get("Filepath"):
            path = self.task_dir / str(wid["Filepath"])
        else:
            path = self.task_dir / "secrets" / default_name
        write_token(path, token)

    def start_renewal(self) -> None:
        if self._renewer is None and any(_exp(t) for t in self.tokens.values()):
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        while True:
            exps = [e for e in (_exp(t) for t in self.tokens.values()) if e is not None]
            if not exps:
                return
            await asyncio.sleep(renew_wait(min(exps), time.time(), self.rng))
            for wid in self._alt():
                if not self._set_alt(wid):
                    continue
                name = str(wid["Name"])
                mode = wid.get("ChangeMode") or ""
                if mode == "restart":
                    await self.restart(f"Identity[{name}]: new token acquired")
                elif mode == "signal":
                    await self.signal(
                        str(wid.get("ChangeSignal") or ""),
                        f"Identity[{name}]: new Identity token acquired",
                    )

    async def stop(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(BaseException):
                await renewer
