"""Token files as a Nomad client writes them: ``os.WriteFile(path, token, 0666)``, so the
process umask decides the mode (0644 under the usual 022); the secrets directory (0700)
is what keeps them from other users."""

from __future__ import annotations

import os
from pathlib import Path


def process_umask() -> int:
    """The umask, read without changing it (Linux ``/proc/self/status``), else 022."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_token(path: Path, token: str, mode: int = 0o666) -> None:
    """Write ``token`` to ``path`` with ``mode`` under the umask, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, token.encode())
    finally:
        os.close(fd)
    os.chmod(tmp, mode & ~process_umask())
    os.replace(tmp, path)
