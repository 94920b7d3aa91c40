"""The data-plane benchmark's servers: the backend, our rendered sidecar, and the peers.

Every TLS terminator serves the same certificate file (leaf + intermediate + key, exactly as the
sidecar's ``pkiCert`` template renders it) with settings made equivalent to ours: TLS 1.2 and
1.3 only, the same TLS 1.2 cipher list, session cache on and session tickets off where the
server lets us choose, one worker/thread (a sidecar is one per allocation, not one per host),
HTTP/1.1 keep-alive to the backend where the server speaks HTTP, X-Forwarded-* headers.
Every process binds 127.0.0.1 on a free port and runs in its own session so it can be stopped
as a group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from reconcilers.injection.nginx import CIPHERS

NGINX = "/usr/sbin/nginx"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's process tree so far (every thread, every worker).

        Per request this is the profile's most robust figure on a shared machine: req/s moves
        with whatever else is running, the CPU a request costs the server much less.
        """
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def pin(self, cpus: list[int]) -> None:
        """Confine the server's processes to ``cpus``; threads started later inherit it."""
        root = psutil.Process(self.proc.pid)
        for proc in [root, *root.children(recursive=True)]:
            for thread in proc.threads():
                os.sched_setaffinity(thread.id, cpus)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _spawn(
    name: str,
    argv: list[str],
    port: int,
    workdir: Path,
    *,
    scheme: str = "https",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    notes: str = "",
) -> Server:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd or workdir,
            start_new_session=True,
        )
    server = Server(name, f"{scheme}://{HOST}:{port}/", port, proc, log, notes)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return server
        time.sleep(0.02)
    server.stop()
    raise RuntimeError(f"{name} never listened on {port}: {log.read_text()[-2000:]}")


def backend(workdir: Path) -> Server:
    """The app: nginx answering ``200 ok`` from memory, one worker, no logs."""
    port = free_port()
    root = workdir / "backend"
    root.mkdir(parents=True, exist_ok=True)
    temps = " ".join(
        f"{kind}_temp_path {root}/{kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    conf = root / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {root}/nginx.pid;\nerror_log stderr warn;\n"
        "events { worker_connections 8192; }\n"
        f"http {{ access_log off; {temps} uwsgi_temp_path {root}/uwsgi; "
        f"scgi_temp_path {root}/scgi; keepalive_requests 1000000;\n"
        f'  server {{ listen {HOST}:{port}; location / {{ return 200 "ok\\n"; }} }}\n}}\n'
    )
    argv = [NGINX, "-p", f"{root}/", "-e", "stderr", "-c", str(conf), "-g", "daemon off;"]
    return _spawn("backend", argv, port, workdir, scheme="http", notes="nginx return 200")


def direct(app: Server) -> Server:
    return Server("direct", app.url, app.port, app.proc, app.log, "plaintext, no proxy")


def sidecar(name: str, argv: list[str], env: dict[str, str], cwd: Path, port: int) -> Server:
    """Our sidecar: the task's own command line, env and rendered nginx.conf."""
    return _spawn(name, argv, port, cwd.parent, env=env, cwd=cwd, notes="rendered nginx.conf")


def haproxy(workdir: Path, pem: Path, app_port: int) -> Server:
    port = free_port()
    conf = workdir / "haproxy.cfg"
    conf.write_text(
        "global\n"
        "  nbthread 1\n"
        "  maxconn 4096\n"
        f"  ssl-default-bind-ciphers {CIPHERS}\n"
        "  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets\n"
        "defaults\n"
        "  mode http\n"
        "  timeout connect 5s\n  timeout client 3600s\n  timeout server 3600s\n"
        "  http-reuse always\n"
        "  option forwardfor\n"
        "frontend tls\n"
        f"  bind {HOST}:{port} ssl crt {pem}\n"
        "  http-request set-header X-Forwarded-Proto https\n"
        "  default_backend app\n"
        "backend app\n"
        f"  server app {HOST}:{app_port}\n"
    )
    argv = [shutil.which("haproxy") or "haproxy", "-db", "-f", str(conf)]
    return _spawn("haproxy", argv, port, workdir, notes="nbthread 1, http-reuse always")


def stunnel(workdir: Path, pem: Path, app_port: int) -> Server:
    port = free_port()
    conf = workdir / "stunnel.conf"
    conf.write_text(
        "foreground = yes\n"
        f"pid = {workdir}/stunnel.pid\n"
        "debug = 3\n"
        "[tls]\n"
        f"accept = {HOST}:{port}\n"
        f"connect = {HOST}:{app_port}\n"
        f"cert = {pem}\n"
        f"key = {pem}\n"
        "sslVersionMin = TLSv1.2\n"
        f"ciphers = {CIPHERS}\n"
        "options = NO_TICKET\n"
    )
    exe = shutil.which("stunnel4") or shutil.which("stunnel") or "stunnel4"
    return _spawn("stunnel", [exe, str(conf)], port, workdir, notes="TCP relay (no HTTP)")


def caddy(workdir: Path, exe: str, pem: Path, app_port: int) -> Server:
    port = free_port()
    home = workdir / "caddy-home"
    home.mkdir(exist_ok=True)
    conf = workdir / "Caddyfile"
    conf.write_text(
        "{\n  admin off\n  auto_https off\n  persist_config off\n"
        f"  storage file_system {home}\n}}\n"
        f"https://{HOST}:{port} {{\n"
        f"  tls {pem} {pem} {{\n    protocols tls1.2 tls1.3\n  }}\n"
        f"  reverse_proxy {HOST}:{app_port}\n"
        "}\n"
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home),
        "XDG_CONFIG_HOME": str(home),
        "GOMAXPROCS": "1",
    }
    argv = [exe, "run", "--config", str(conf), "--adapter", "caddyfile"]
    return _spawn("caddy", argv, port, workdir, env=env, notes="GOMAXPROCS=1; Go TLS tickets on")
