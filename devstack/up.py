"""Compose the devstack: a real OpenBao, the Consul twin, the Nomad twin wired to both.

`build_devstack()` is the one place that knows the wiring (Nomad gets Vault's address and
token, and the registrar as its alloc hooks, so running allocations show up in Consul the way
a Nomad client would put them there). With `consul=False` there is no Consul twin and no
registrar, as on a cluster that uses Nomad's own service discovery only: `provider = "nomad"`
services still register in the Nomad twin's catalog, and nothing exports CONSUL_HTTP_ADDR.
`python -m devstack up` and `controller dev` both use it; a task executor plugs in through
`drivers` (e.g. `{"raw_exec": executor}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from devstack.consul import ConsulTwin, start_consul_twin
from devstack.registrar import ConsulRegistrar

log = logging.getLogger(__name__)
# The policy the mesh's workloads hold (the product's bootstrap-pki writes it; a role may name a
# policy before it exists). Spelled here, not imported: the devstack never imports product code.
WORKLOAD_POLICY = "mesh-workload"


@dataclass
class Devstack:
    """Everything `build_devstack()` started; `stop()` stops all of it, newest first."""

    nomad: Any  # devstack.nomad.NomadTwin
    consul: ConsulTwin | None  # None: started without Consul (--no-consul)
    vault: Any  # devstack.vault.OpenBao
    registrar: ConsulRegistrar | None
    acl: bool = False
    executor: Any = None  # the raw_exec driver build_devstack made (None: the caller's drivers)
    _stopped: bool = field(default=False, repr=False)

    def env(self) -> dict[str, str]:
        """The environment a HashiCorp CLI or our controller needs to talk to this stack."""
        out = {"NOMAD_ADDR": self.nomad.url}
        if self.consul is not None:
            out["CONSUL_HTTP_ADDR"] = self.consul.address  # host:port, as the consul CLI expects
        out |= {"VAULT_ADDR": self.vault.addr, "VAULT_TOKEN": self.vault.root_token}
        if self.acl and self.nomad.management_token:
            out["NOMAD_TOKEN"] = self.nomad.management_token
        return out

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        stops = [self.nomad.stop]
        if self.registrar is not None:
            stops.append(self.registrar.close)
        if self.consul is not None:
            stops.append(self.consul.stop)
        stops.append(self.vault.stop)
        if self.executor is not None:
            stops.insert(1, self.executor.close)
        await _stop_all(stops)


async def _stop_all(stops: list[Any]) -> None:
    """Call every stop even if one fails; the first failure is re-raised at the end."""
    first: BaseException | None = None
    for stop in stops:
        try:
            await stop()
        except Exception as e:
            log.exception("devstack: stop failed")
            first = first or e
    if first is not None:
        raise first


async def build_devstack(
    *,
    nodes: int = 3,
    acl: bool = False,
    data_dir: str | None = None,
    drivers: Mapping[str, Any] | None = None,
    min_check_interval: float = 1.0,
    consul: bool = True,
    workload_policies: Sequence[str] = (WORKLOAD_POLICY,),
) -> Devstack:
    """Start OpenBao, the Consul twin and the Nomad twin; on any failure stop what started.

    ``consul=False`` starts neither the Consul twin nor the registrar: the Nomad twin then has
    no alloc hooks, and Consul-provider services are registered nowhere (as on a cluster
    without Consul, where Nomad would refuse them only through its consul constraint).

    Without `drivers`, raw_exec tasks run as real processes (devstack.executor) and the stack
    owns that executor; other drivers are simulated by the twin.

    OpenBao is set up as `nomad setup vault` sets up Vault (`configure_workload_identity_auth`):
    tasks with a `vault` block log in at `jwt-nomad` with their `vault_default` identity and
    get tokens with `workload_policies`; nothing in a task sees the root token.
    """
    from devstack.executor import ExecutorSettings, RawExecDriver
    from devstack.nomad import start_nomad_twin
    from devstack.vault import (
        WorkloadAuthSpec,
        configure_workload_identity_auth,
        start_openbao,
    )

    base = Path(data_dir) if data_dir else None
    started: list[Any] = []
    try:
        vault = await start_openbao(data_dir=str(base / "vault") if base else None)
        started.append(vault.stop)
        consul_twin: ConsulTwin | None = None
        registrar: ConsulRegistrar | None = None
        if consul:
            consul_twin = await start_consul_twin(min_check_interval=min_check_interval)
            started.append(consul_twin.stop)
            registrar = ConsulRegistrar(consul_twin.address)
            started.append(registrar.close)
        executor = None
        if drivers is None:
            consul_addr = consul_twin.address if consul_twin is not None else None
            executor = RawExecDriver(ExecutorSettings(consul_addr=consul_addr))
            started.append(executor.close)
            drivers = {"raw_exec": executor}
        nomad = await start_nomad_twin(
            nodes=nodes,
            acl=acl,
            vault_addr=vault.addr,
            alloc_hooks=registrar,
            drivers=drivers,
            data_dir=str(base / "nomad") if base else None,
        )
        started.append(nomad.stop)
        # `nomad setup vault` against the twin: workloads log in with their vault_default
        # identity (the product replicates this on a real cluster: devstack.vault's seam).
        await configure_workload_identity_auth(
            vault,
            WorkloadAuthSpec(
                jwks_url=f"{nomad.url}/.well-known/jwks.json", policies=tuple(workload_policies)
            ),
        )
    except BaseException:
        await _stop_all(list(reversed(started)))
        raise
    return Devstack(
        nomad=nomad,
        consul=consul_twin,
        vault=vault,
        registrar=registrar,
        acl=acl,
        executor=executor,
    )


def print_env(env: Mapping[str, str], out: TextIO = sys.stdout) -> None:
    """`export K=V` lines (shell-quoted), then `devstack ready`, flushed at once."""
    for key, value in env.items():
        out.write(f"export {key}={shlex.quote(value)}\n")
    out.write("devstack ready\n")
    out.flush()


async def run_up(*, nodes: int, acl: bool, data_dir: str | None, consul: bool = True) -> None:
    """`python -m devstack up`: start, print the env, run until SIGINT/SIGTERM, stop."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    try:
        stack = await build_devstack(nodes=nodes, acl=acl, data_dir=data_dir, consul=consul)
        try:
            print_env(stack.env())
            await done.wait()
        finally:
            await stack.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
