"""What a render needs from the outside world, and what it reports back.

`RenderContext` is what the Nomad client would give consul-template: the task environment,
a Vault address and token, a Consul address, the Nomad API with the task's workload identity,
the destination file (pkiCert's cache) and a clock. `RenderResult` carries the text plus the
moment it must be rendered again, so the devstack executor can schedule re-renders exactly
when Nomad would.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class VaultTarget:
    """Vault as the template sees it. `verify` follows requests: True, a CA path, or False."""

    addr: str
    token: str = field(repr=False)
    verify: bool | str = True
    namespace: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class NomadTarget:
    """The Nomad API as the task's template runner sees it: the token is the task's workload
    identity, the namespace and region those of its job (nomadVar's defaults)."""

    addr: str
    token: str | None = field(default=None, repr=False)
    namespace: str = "default"
    region: str = "global"
    verify: bool | str = True
    timeout: float = 10.0


@dataclass
class RenderContext:
    env: Mapping[str, str] = field(default_factory=dict)
    vault: VaultTarget | None = None
    consul_addr: str | None = None  # "http://127.0.0.1:8500" or "127.0.0.1:8500"
    consul_token: str | None = field(default=None, repr=False)
    destination: str | None = None  # absolute path the text will be written to
    task_dir: str | None = None  # base for relative writeToFile paths
    sandbox_dir: str | None = None  # writeToFile must stay inside (Nomad: the alloc dir)
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    name: str = "template"
    left_delim: str = "{{"
    right_delim: str = "}}"
    error_on_missing_key: bool = False
    vault_default_lease: float = 300.0  # Nomad client default vault_default_lease_duration
    consul_poll: float | None = None  # re-query Consul this often (None: no Consul refresh)
    nomad: NomadTarget | None = None
    nomad_poll: float | None = None  # re-read Nomad Variables/services this often (None: never)


@dataclass(frozen=True)
class Dependency:
    """One external input of a render and when it next needs refreshing (epoch seconds)."""

    # vault.pki|vault.write|vault.read|consul.service|consul.kv|nomad.var|nomad.list|nomad.service
    kind: str
    key: str
    refresh_at: float | None = None
    detail: str = ""


@dataclass
class RenderResult:
    text: str
    dependencies: list[Dependency] = field(default_factory=list)
    files_written: list[str] = field(default_factory=list)

    @property
    def next_refresh(self) -> float | None:
        """The earliest refresh_at of any dependency; None when nothing expires."""
        times = [d.refresh_at for d in self.dependencies if d.refresh_at is not None]
        return min(times) if times else None


@dataclass
class RenderState:
    """Per-render scratch: dependencies seen, de-duplicated secret reads, files written."""

    ctx: RenderContext
    deps: list[Dependency] = field(default_factory=list)
    secret_cache: dict[tuple[str, str], object] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
