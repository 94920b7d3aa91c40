"""A task's Vault token, obtained the way a Nomad 1.10 client obtains it.

client/allocrunner/taskrunner/vault_hook.go (``vaultHook``) with client/vaultclient:
- Prestart (first run only): ``deriveVaultTokenJWT`` asks the identity manager for the task's
  ``vault_<cluster>`` identity and logs in with it: ``PUT /v1/auth/<jwt_auth_backend_path>/login``
  ``{"role": <vault.role, else the client's create_from_role>, "jwt": <JWT>}`` without any
  token (``DeriveTokenWithJWT``). A login error is not recoverable: the task is killed with
  ``Vault: failed to derive vault token: failed to derive Vault token for identity <name>:
  failed to login with JWT: <the Vault API error>`` and never starts. A missing identity is
  recoverable: retried with backoff (5 s doubling up to 3 min).
- ``writeToken``: ``private/vault_token`` (0600) always, ``secrets/vault_token`` (0666 under the
  umask) unless ``vault.disable_file``.
- Renewal (``vaultClient.RenewToken``/``renew``): ``renew-self`` with the lease as the increment,
  at once and then at ``renewalTime`` (half the lease; +/- 10 s jitter from 60 s leases). A
  fatal renewal error (``permission denied``, ``token not found``...) derives a new token and
  applies ``vault.change_mode`` (signal/restart/noop) with "Vault: new Vault token acquired".
  A non-renewable token is not renewed (``AllowTokenExpiration``).
- Stop: ``StopRenewToken`` only. Nomad 1.10 never revokes the token (neither the client nor the
  server: the legacy server-side revocation went with the token-derivation workflow); it
  lapses at the end of its TTL/period.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from devstack.template import VaultTarget

log = logging.getLogger(__name__)

TOKEN_FILE = "vault_token"  # vault_hook.go vaultTokenFile
BACKOFF_BASELINE = 5.0  # vaultBackoffBaseline
BACKOFF_LIMIT = 180.0  # vaultBackoffLimit
# vaultclient.renew: errors after which renewing the token is pointless.
FATAL_RENEWAL = (
    "no namespace",
    "cannot renew a token across namespaces",
    "invalid lease ID",
    "lease expired",
    "lease is not renewable",
    "lease not found",
    "permission denied",
    "token not found",
)


class VaultLoginError(Exception):
    """The JWT login failed: the message is the one Nomad's task event carries."""


class VaultApiError(Exception):
    """A Vault API error, worded as the Go client's ``ResponseError`` is."""


def identity_name(vault: dict[str, Any]) -> str:
    """structs.Vault.IdentityName: ``vault_<cluster>``."""
    return "vault_" + str(vault.get("Cluster") or "default")


def renewal_time(lease: int, rng: random.Random) -> float:
    """vaultclient.renewalTime: half the lease; below 30 s no jitter, else +/- 10 s."""
    renew = lease // 2
    if renew < 30:
        return float(renew)
    return float(renew - 10 + rng.randrange(20))


async def _vault_call(
    session: aiohttp.ClientSession,
    target: VaultTarget,
    path: str,
    body: dict[str, Any],
    token: str | None,
) -> dict[str, Any]:
    """``Logical().Write`` (a PUT); errors read like api.ResponseError.Error()."""
    url = f"{target.addr.rstrip('/')}/v1/{path}"
    headers = {"X-Vault-Token": token} if token else {}
    if target.namespace:
        headers["X-Vault-Namespace"] = target.namespace
    tls: Any = None if target.verify is True else target.verify
    if isinstance(tls, str):
        tls = ssl.create_default_context(cafile=tls)
    try:
        async with session.put(url, json=body, headers=headers, ssl=tls) as resp:
            raw = await resp.text()
            if 200 <= resp.status < 400:
                return dict(await resp.json(content_type=None)) if raw.strip() else {}
            try:
                errors = [str(e) for e in (await resp.json(content_type=None)).get("errors") or []]
                listed = "".join(f"* {e}" for e in errors)
                kind = "Errors"
            except (ValueError, AttributeError):
                listed, kind = raw, "Raw Message"
            raise VaultApiError(
                f"Error making API request.\n\nURL: PUT {url}\nCode: {resp.status}. {kind}:\n\n"
                f"{listed}"
            )
    except aiohttp.ClientError as err:
        raise VaultApiError(f'Put "{url}": {err}') from err


@dataclass
class VaultLogin:
    token: str
    renewable: bool
    lease: int


async def jwt_login(
    session: aiohttp.ClientSession, target: VaultTarget, mount: str, role: str, jwt: str, name: str
) -> VaultLogin:
    """vaultClient.DeriveTokenWithJWT, wrapped as deriveVaultTokenJWT wraps its error."""
    prefix = f"failed to derive Vault token for identity {name}: "
    try:
        secret = await _vault_call(
            session, target, f"auth/{mount}/login", {"role": role, "jwt": jwt}, None
        )
    except VaultApiError as err:
        raise VaultLoginError(f"{prefix}failed to login with JWT: {err}") from None
    if not secret:
        raise VaultLoginError(f"{prefix}JWT login returned an empty secret")
    auth = secret.get("auth")
    if not auth:
        raise VaultLoginError(f"{prefix}JWT login did not return a token")
    return VaultLogin(
        token=str(auth["client_token"]),
        renewable=bool(auth.get("renewable")),
        lease=int(auth.get("lease_duration") or 0),
    )


async def renew_self(
    session: aiohttp.ClientSession, target: VaultTarget, token: str, increment: int
) -> int:
    """``Auth().Token().RenewSelf(increment)``: the new lease duration."""
    try:
        resp = await _vault_call(
            session, target, "auth/token/renew-self", {"increment": increment}, token
        )
    except VaultApiError as err:
        raise VaultApiError(f"failed to renew the vault token: {err}") from None
    auth = resp.get("auth")
    if not auth:
        raise VaultApiError("failed to renew the vault token")
    return int(auth.get("lease_duration") or increment)


class VaultHook:
    """One task's Vault token: derive, write, renew, stop renewing."""

    def __init__(
        self,
        *,
        target: VaultTarget,  # the task's Vault; once derived, ``target.token`` is the token
        mount: str,
        role: str,
        identity: str,
        sign: Callable[[str], str | None],
        write: Callable[[str], None],
        on_new_token: Callable[[str], Awaitable[None]],
        rng: random.Random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.target = target
        self.mount = mount
        self.role = role
        self.identity = identity
        self.sign = sign
        self.write = write
        self.on_new_token = on_new_token
        self.rng = rng
        self.sleep = sleep
        self.lease = 0
        self.renewable = True
        self._session: aiohttp.ClientSession | None = None
        self._renewer: asyncio.Task[None] | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def derive(self) -> str:
        """deriveVaultToken: the first token, written. VaultLoginError when login fails."""
        attempt = 0
        while True:
            jwt = self.sign(self.identity)
            if jwt is not None:
                break
            # "failed to retrieve signed workload identity": recoverable, backed off
            await self.sleep(min(BACKOFF_LIMIT, BACKOFF_BASELINE * (2**attempt)))
            attempt += 1
        login = await jwt_login(
            self._http(), self.target, self.mount, self.role, jwt, self.identity
        )
        self.target = dataclasses.replace(self.target, token=login.token)
        self.lease = login.lease
        self.renewable = login.renewable
        self.write(login.token)
        return login.token

    def start_renewal(self) -> None:
        if self.renewable and self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        increment = self.lease or 30
        while True:
            try:
                lease = await renew_self(self._http(), self.target, self.target.token, increment)
                increment = lease
            except VaultApiError as err:
                if not any(f in str(err) for f in FATAL_RENEWAL):
                    log.warning("vault token renewal failed, retrying: %s", err)
                else:
                    log.warning("vault token renewal failed: %s", err)
                    try:
                        token = await self.derive()
                    except VaultLoginError as login_err:
                        log.warning("re-deriving the vault token failed: %s", login_err)
                        await self.sleep(BACKOFF_BASELINE)
                        continue
                    increment = self.lease or 30
                    await self.on_new_token(token)
                    if not self.renewable:
                        return
                    continue
            await self.sleep(renewal_time(increment, self.rng))

    async def stop(self) -> None:
        """StopRenewToken: renewal ends; the token is left to lapse, as Nomad leaves it."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(BaseException):
                await renewer
        if self._session is not None:
            await self._session.close()
            self._session = None
