"""What ``controller dev [--nodes N] [--demo] [--no-consul]`` does: zero to a mesh in one command.

It starts the devstack (Nomad and Consul twins, the raw_exec executor, a real OpenBao), makes
the mesh PKI in OpenBao, and runs the real controller in this process against it, with the
sidecar as a raw_exec nginx (``MESH_SIDECAR_DRIVER=raw_exec``, ``MESH_NGINX_BIN``). It prints
the ``export`` lines of ``python -m devstack up`` plus those two knobs and ``MESH_STATUS_URL``
(so ``controllerctl`` run with them sees what the controller sees), then
``controller dev ready`` once the controller leads and has listed the cluster. ``--demo`` adds
three sample jobs and prints the proof (see ``controller.dev.demo`` and ``.demo_client``).
Ctrl-C (or SIGTERM) stops the controller, then everything the devstack started; nothing is
left running.

The devstack is imported lazily, inside ``run_dev``: product code never depends on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from controller.app import App, Tuning
from controller.config import Settings
from controller.consul.client import ConsulClient
from controller.dev.demo import (
    Endpoint,
    curl_command,
    native_tls_endpoint,
    print_table,
    tls_endpoint,
    wait_ready,
    web_job,
    worker_job,
)
from controller.dev.demo_client import (
    CLIENT,
    client_job,
    upstream_curl,
    upstream_port,
    wait_upstream,
)
from controller.vault import VaultClient, VaultConnection, bootstrap_pki, pki_layout, root_pem
from crds_equivalent.jobkey import JobKey

# Settings that point at a cluster: the devstack's own replace whatever the shell had.
_CLUSTER_PREFIXES = ("NOMAD_", "CONSUL_", "VAULT_")
DEMO_READY_WITHIN = 180.0
# A quicker rhythm than production: the dev loop is for watching things happen.
DEV_TUNING = Tuning(rollout_poll=2.0, alloc_debounce=0.5, handle_signals=False)


def dev_environment(stack_env: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
    """The controller's environment: the shell's MESH_* knobs, the devstack's addresses, and a
    raw_exec nginx sidecar. MESH_HTTP_ADDR defaults to a free loopback port."""
    env = {k: v for k, v in base.items() if not k.startswith(_CLUSTER_PREFIXES)}
    env.update(stack_env)
    env["MESH_SIDECAR_DRIVER"] = "raw_exec"
    env.setdefault("MESH_NGINX_BIN", "/usr/sbin/nginx")
    env.setdefault("MESH_HTTP_ADDR", "127.0.0.1:0")
    return env


# The knobs dev_environment sets for the controller that change what injection produces: they
# are exported too, so that controllerctl, run with the printed environment, computes the same
# marker hashes as the controller (else every meshed job would look stale to `status`).
DEV_EXPORTED_KNOBS = ("MESH_SIDECAR_DRIVER", "MESH_NGINX_BIN")


def dev_exports(
    stack_env: Mapping[str, str], controller_env: Mapping[str, str], status_url: str
) -> dict[str, str]:
    """What `controller dev` prints: the devstack's addresses, the dev knobs, the status URL."""
    knobs = {k: controller_env[k] for k in DEV_EXPORTED_KNOBS if k in controller_env}
    return {**stack_env, **knobs, "MESH_STATUS_URL": status_url}


def export_lines(env: Mapping[str, str]) -> str:
    """``export K=V`` lines, shell-quoted, in the format ``python -m devstack up`` prints."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


async def _start_devstack(nodes: int, consul: bool = True) -> Any:
    """The devstack; it runs raw_exec tasks (the app, nginx) as real processes by itself.
    ``consul=False``: no Consul twin, so the stack exports no CONSUL_HTTP_ADDR."""
    from devstack.up import build_devstack

    return await build_devstack(nodes=nodes, consul=consul)


async def _until(what: str, holds: Callable[[], bool], task: asyncio.Task[int]) -> None:
    """Wait for ``holds()``; fail if the controller stops first (e.g. its port is taken)."""
    while not holds():
        if task.done():
            raise RuntimeError(f"the controller stopped before {what} (exit {task.result()})")
        await asyncio.sleep(0.05)


async def run_demo(app: App, ca_file: str, out: TextIO) -> None:
    """Submit `web`, `client` and `worker`, wait for `web` to be Ready, `client`'s call to get
    through and `client` to be Ready, print the proof (or why not)."""
    try:
        await _demo(app, ca_file, out)
    except Exception as exc:  # the stack keeps running, so the user can look around
        out.write(f"demo failed: {exc}\n")
        out.flush()


async def _demo(app: App, ca_file: str, out: TextIO) -> None:
    started = time.monotonic()
    native = not app.settings.consul.configured  # no Consul: the demo uses Nomad's catalog
    port = upstream_port()
    web = web_job(provider="nomad" if native else "consul", callers=[CLIENT])
    for job in (web, client_job(port, native), worker_job()):
        await app.jobs.register_job(job, enforce_index=None)
    await wait_ready(app.statuses, JobKey("default", "web"), DEMO_READY_WITHIN)
    endpoint = await _web_endpoint(app, native)
    out.write(f"web is Ready after {time.monotonic() - started:.1f}s\n")
    # The client is a pure client: Ready once its edge to web is healthy; the proof of the edge
    # is also a request through its listener.
    await wait_upstream(port, DEMO_READY_WITHIN)
    await wait_ready(app.statuses, JobKey("default", CLIENT), DEMO_READY_WITHIN)
    edge = f"http://127.0.0.1:{port} -> web (mTLS)"
    await print_table(
        out, app.jobs, app.statuses, ["web", CLIENT, "worker"], endpoint, {CLIENT: edge}
    )
    out.write(curl_command(ca_file, endpoint) + "\n")
    out.write(
        f"{CLIENT} -> web: {CLIENT}'s sidecar listens on 127.0.0.1:{port} and carries plain "
        f"HTTP to web over mTLS (web allows {CLIENT} only):\n"
    )
    out.write(upstream_curl(port) + "\n")
    out.flush()


async def _web_endpoint(app: App, native: bool) -> Endpoint:
    """web's TLS endpoint as its catalog advertises it (Nomad's own without Consul)."""
    domain = app.settings.mesh.domain
    if native:
        return await native_tls_endpoint(app.native, "web", "default", domain, 60.0)
    consul = ConsulClient.from_settings(app.settings.consul)
    try:
        return await tls_endpoint(consul, "web", domain, 60.0)
    finally:
        await consul.close()


async def run_dev(
    *, nodes: int, demo: bool, out: TextIO, stop: asyncio.Event, consul: bool = True
) -> int:
    """Everything ``controller dev`` does; returns the exit code. ``stop`` ends it.
    ``consul=False`` (``--no-consul``): the devstack without Consul, and the controller with
    CONSUL_HTTP_ADDR unset, as on a cluster that runs only Nomad-native services."""
    workdir = tempfile.mkdtemp(prefix="mesh-dev-")
    stack = await _start_devstack(nodes, consul)
    app: App | None = None
    try:
        stack_env: dict[str, str] = stack.env()
        controller_env = dev_environment(stack_env, os.environ)
        settings = Settings.from_env(controller_env)
        ca_file = Path(workdir) / "mesh-root-ca.pem"
        async with VaultClient(VaultConnection(stack.vault.addr, stack.vault.root_token)) as vault:
            await bootstrap_pki(vault, pki_layout(settings.mesh))
            ca_file.write_text(await root_pem(vault, settings.mesh.root_mount))

        app = ctl = App(settings, tuning=DEV_TUNING)
        task = asyncio.create_task(ctl.run())
        await _until("serving HTTP", ctl.http.started.is_set, task)
        out.write(export_lines(dev_exports(stack_env, controller_env, ctl.http.url + "/status")))
        out.flush()
        await _until("leading", lambda: ctl.elector.is_leader and ctl.source.synced.is_set(), task)
        out.write("controller dev ready\n")
        out.flush()

        demo_task = asyncio.create_task(run_demo(app, str(ca_file), out)) if demo else None
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if demo_task is not None:
            demo_task.cancel()
            await asyncio.gather(demo_task, return_exceptions=True)
        app.request_stop()
        return await task
    finally:
        if app is not None:
            await app.close()
        await stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def main(nodes: int, demo: bool, consul: bool = True) -> int:
    """``run_dev`` on stdout until SIGINT or SIGTERM; returns its exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await run_dev(nodes=nodes, demo=demo, out=sys.stdout, stop=stop, consul=consul)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
