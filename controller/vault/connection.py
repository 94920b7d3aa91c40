"""How to reach Vault: address, token source, TLS and timeout, shared by both transports
(hvac for administration, aiohttp for the calls the reconcilers make)."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.config import VaultSettings
from controller.tls import requests_kwargs
from controller.vault.token_source import TokenSource, token_source


@dataclass(frozen=True)
class VaultConnection:
    """How to reach Vault. `verify` is requests' convention: True, a CA file/dir path, or False.

    The composition root maps VAULT_ADDR/VAULT_TOKEN/VAULT_CACERT/VAULT_CAPATH/VAULT_CLIENT_CERT/
    VAULT_CLIENT_KEY/VAULT_SKIP_VERIFY/VAULT_NAMESPACE onto this.
    """

    addr: str
    token: str = field(repr=False)
    verify: bool | str = True
    client_cert: str | tuple[str, str] | None = None
    namespace: str | None = None
    timeout: float = 10.0
    # Where the token is re-read from before each call (a file Nomad rewrites); None: `token`.
    source: TokenSource | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: VaultSettings, timeout: float = 10.0) -> VaultConnection:
        """VAULT_* settings (controller.config) -> a connection, TLS per controller.tls."""
        tls = requests_kwargs(settings)
        source = token_source(settings)
        return cls(
            addr=settings.addr,
            token=source.current(),
            verify=tls["verify"],
            client_cert=tls.get("cert"),
            namespace=settings.namespace,
            timeout=timeout,
            source=source,
        )

    def current_token(self) -> str:
        """The token to send now: the source's (a rewritten file is in use from now on)."""
        return self.source.current() if self.source is not None else self.token
