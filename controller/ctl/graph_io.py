"""I/O for ``controllerctl graph``: the meshed jobs from Nomad, and the PNG from Graphviz.

The jobs are the ones ``controllerctl status`` looks at (every job with a status record, and
every job whose job-level meta mentions ``mesh.tls``), read as Nomad stores them; the picture
is drawn by Graphviz's ``dot`` (Debian's ``graphviz`` package), run only when a PNG is asked
for, so the DOT text needs nothing installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from controller.config import Settings
from controller.ctl.common import open_clients
from controller.ctl.gather import StatusOptions, read_jobs_only, status_keys
from controller.ctl.graph import mesh_graph, to_dot

DOT_TIMEOUT = 60.0


class GraphvizError(Exception):
    """``dot`` is missing or failed: the message says what to do."""


async def graph_dot(settings: Settings, namespace: str = "*") -> str:
    """The DOT text of the mesh as Nomad has it now; raises NomadError when Nomad cannot be read."""
    async with open_clients(settings) as clients:
        options = StatusOptions(namespace=namespace)
        jobs = await read_jobs_only(clients, options, await status_keys(clients, options))
    return to_dot(mesh_graph(jobs.values(), settings.mesh))


def write_png(dot_text: str, path: Path) -> None:
    """Render ``dot_text`` into ``path`` with ``dot -Tpng``."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizError(
            "a PNG needs Graphviz's dot, which is not on PATH: install it "
            "(Debian/Ubuntu: sudo apt-get install -y graphviz; make install does it as root), "
            "or print the DOT text and render it elsewhere"
        )
    try:
        done = subprocess.run(  # a fixed program and arguments, no shell
            [dot, "-Tpng", "-o", str(path)],
            input=dot_text.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GraphvizError(f"dot could not run: {exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        raise GraphvizError(f"dot -Tpng failed: {detail}")
