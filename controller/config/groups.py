"""The settings groups: Nomad, Vault and Consul as their own CLIs read them, and our MESH_* knobs.

Field names are the variable names without the prefix, so ``NOMAD_SKIP_VERIFY`` is
``NomadSettings.skip_verify``. The TLS fields share names across groups (``cacert``, ``capath``,
``client_cert``, ``client_key``, ``tls_server_name``, ``skip_verify``) so one TLS builder serves
all three; Consul's ``skip_verify`` is derived from its inverted ``CONSUL_HTTP_SSL_VERIFY``.
Tokens are ``SecretStr`` and excluded from repr and dumps.
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from controller.config.values import Duration, GoBool, Group


def _secret(what: str) -> Any:
    return Field(
        default=None,
        repr=False,
        exclude=True,
        description=f"{what}. Secret: never logged or dumped.",
    )


class NomadSettings(Group):
    env_prefix: ClassVar[str] = "NOMAD_"

    addr: str = Field("http://127.0.0.1:4646", description="Nomad HTTP API address.")
    token: SecretStr | None = _secret("ACL token, sent as X-Nomad-Token")
    namespace: str | None = Field(None, description="Namespace for the controller's own calls.")
    region: str | None = Field(None, description="Region to target.")
    cacert: str | None = Field(None, description="CA bundle (PEM) that verifies the Nomad API.")
    capath: str | None = Field(None, description="Directory of CA certificates (PEM).")
    client_cert: str | None = Field(None, description="Client certificate (PEM) for mTLS.")
    client_key: str | None = Field(None, description="Client key (PEM) for mTLS.")
    tls_server_name: str | None = Field(None, description="SNI / name to verify instead.")
    skip_verify: GoBool = Field(False, description="Disable TLS verification (discouraged).")


class VaultSettings(Group):
    env_prefix: ClassVar[str] = "VAULT_"

    addr: str = Field("https://127.0.0.1:8200", description="Vault (or OpenBao) API address.")
    token: SecretStr | None = _secret("Token, sent as X-Vault-Token")
    token_file: str | None = Field(
        None,
        description="File holding the token (a Nomad task's `secrets/vault_token`); wins "
        "over VAULT_TOKEN, re-read when it changes, renewed by whoever writes it (Nomad).",
    )
    namespace: str | None = Field(None, description="Vault Enterprise namespace.")
    cacert: str | None = Field(None, description="CA bundle (PEM) that verifies Vault.")
    capath: str | None = Field(None, description="Directory of CA certificates (PEM).")
    client_cert: str | None = Field(None, description="Client certificate (PEM) for mTLS.")
    client_key: str | None = Field(None, description="Client key (PEM) for mTLS.")
    tls_server_name: str | None = Field(None, description="SNI / name to verify instead.")
    skip_verify: GoBool = Field(False, description="Disable TLS verification (discouraged).")


class ConsulSettings(Group):
    env_prefix: ClassVar[str] = "CONSUL_"

    http_addr: str | None = Field(
        None,
        description="Consul address; may carry a scheme. Unset: no Consul (a cluster on "
        'Nomad-native services); only services with provider = "consul" need it.',
    )
    http_token: SecretStr | None = _secret("ACL token, sent as X-Consul-Token")
    http_ssl: GoBool = Field(False, description="Use https for a scheme-less address.")
    http_ssl_verify: GoBool = Field(True, description="Verify TLS; false DISABLES verification.")
    cacert: str | None = Field(None, description="CA bundle (PEM) that verifies Consul.")
    capath: str | None = Field(None, description="Directory of CA certificates (PEM).")
    client_cert: str | None = Field(None, description="Client certificate (PEM) for mTLS.")
    client_key: str | None = Field(None, description="Client key (PEM) for mTLS.")
    tls_server_name: str | None = Field(None, description="SNI / name to verify instead.")

    @property
    def skip_verify(self) -> bool:
        return not self.http_ssl_verify

    @property
    def configured(self) -> bool:
        """Consul is optional: the mesh asks it only for services registered there, and a
        cluster that runs only Nomad-native services has none to point at."""
        return bool(self.http_addr and self.http_addr.strip())

    @property
    def url(self) -> str:
        """Base URL: a scheme in the address wins, else https when CONSUL_HTTP_SSL is true."""
        if not self.http_addr or not self.http_addr.strip():
            raise ValueError("CONSUL_HTTP_ADDR is not set: no Consul is configured")
        addr = self.http_addr.strip()
        if "://" in addr:
            scheme, rest = addr.split("://", 1)
            return f"{'https' if self.http_ssl else scheme}://{rest}".rstrip("/")
        return f"{'https' if self.http_ssl else 'http'}://{addr}".rstrip("/")


MIN_LOCK_TTL = 10.0
MAX_LOCK_TTL = 24 * 3600.0


class ControllerSettings(Group):
    env_prefix: ClassVar[str] = "MESH_"

    namespaces: str = Field("*", description="Watched namespaces: `*` or a comma list.")
    controller_namespace: str = Field("default", description="Namespace of our Variables.")
    workers: int = Field(4, ge=1, le=256, description="Concurrent reconciles.")
    nomad_concurrency: int = Field(
        16,
        ge=1,
        le=1024,
        description="Most Nomad requests the reconcilers and the event source have open at "
        "once; the event stream is not counted, the leader lock has its own connection.",
    )
    resync_interval: Duration = Field(600.0, description="Full re-LIST period (jittered).")
    http_addr: str = Field("127.0.0.1:9464", description="Listen address of /metrics etc.")
    http_allow_public: GoBool = Field(False, description="Allow a non-loopback MESH_HTTP_ADDR.")
    leader_ttl: Duration = Field(15.0, description="Leader lock TTL.")
    leader_renew: Duration = Field(5.0, description="Leader lock renew interval (< TTL).")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto (JSON unless stdout is a TTY), json or console."
    )
    heartbeat_timeout: Duration = Field(60.0, description="Event stream silence => reconnect.")
    backoff_base: Duration = Field(0.5, description="First retry delay of a failing job.")
    backoff_cap: Duration = Field(300.0, description="Longest retry delay of a failing job.")
    qps: float = Field(20.0, gt=0, description="Global retry budget, per second.")
    burst: int = Field(100, ge=1, description="Global retry burst.")
    drain_timeout: Duration = Field(30.0, description="Grace for in-flight work on SIGTERM.")
    health_interval: Duration = Field(30.0, description="Consul/TLS health re-check period.")
    health_handshake_max_age: Duration = Field(
        300.0,
        ge=0,
        description="Longest the health and certs re-checks reuse a verified TLS handshake with "
        "an unchanged, passing instance whose leaf is short of its renewal window "
        "(0: handshake every pass).",
    )
    status_write_interval: Duration = Field(
        1.0, ge=0, description="Coalesce status writes: at most one per job per window (0: off)."
    )
    ca_rotate_before: Duration = Field(
        30 * 86400.0, description="Rotate the intermediate this long before it expires."
    )

    @model_validator(mode="before")
    @classmethod
    def _lower_enums(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for k in ("log_level", "log_format"):
                if isinstance(data.get(k), str):
                    data[k] = data[k].strip().lower()
        return data

    @model_validator(mode="after")
    def _check(self) -> ControllerSettings:
        if not MIN_LOCK_TTL <= self.leader_ttl <= MAX_LOCK_TTL:
            # Nomad refuses such a lock; the controller would stay a standby forever.
            raise ValueError("MESH_LEADER_TTL must be between 10s and 24h (Nomad's lock TTL range)")
        if self.leader_renew >= self.leader_ttl:
            raise ValueError("MESH_LEADER_RENEW must be shorter than MESH_LEADER_TTL")
        if self.backoff_base > self.backoff_cap or self.backoff_base <= 0:
            raise ValueError("need 0 < MESH_BACKOFF_BASE <= MESH_BACKOFF_CAP")
        host, _ = self.http_host_port
        if not self.http_allow_public and not _is_loopback(host):
            raise ValueError(
                f"MESH_HTTP_ADDR {self.http_addr!r} is not a loopback address; "
                "set MESH_HTTP_ALLOW_PUBLIC=true to expose /metrics and /status"
            )
        return self

    @property
    def http_host_port(self) -> tuple[str, int]:
        host, sep, port = self.http_addr.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"MESH_HTTP_ADDR must be host:port, got {self.http_addr!r}")
        return host.strip("[]"), int(port)

    @property
    def watched_namespaces(self) -> tuple[str, ...]:
        names = tuple(n.strip() for n in self.namespaces.split(",") if n.strip())
        return ("*",) if not names or "*" in names else names


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


GROUPS: dict[str, type[Group]] = {
    "nomad": NomadSettings,
    "vault": VaultSettings,
    "consul": ConsulSettings,
    "controller": ControllerSettings,
}
