"""controllerctl graph against the Nomad twin: the DOT of the jobs Nomad holds, a real PNG from
Graphviz's dot (installed by `make install`), and clear errors when dot is missing or Nomad
cannot be reached."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.cmd import controllerctl
from controller.nomad.client import NomadClient
from controller.nomad.jobs import NomadJobs
from devstack.nomad import NomadTwin, start_nomad_twin
from tests.support.ctl_stack import UNSET
from tests.support.mesh_graph_jobs import demo_jobs

pytestmark = pytest.mark.timeout(60)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def nomad() -> AsyncIterator[NomadTwin]:
    twin = await start_nomad_twin(nodes=1)
    client = NomadClient(twin.url, retry_budget=0.5)
    try:
        for job in demo_jobs():
            await NomadJobs(client).register_job(job, enforce_index=0)
        yield twin
    finally:
        await client.close()
        await twin.stop()


async def ctl(url: str, *args: str, path: str | None = None) -> Result:
    env: dict[str, str | None] = dict.fromkeys(UNSET) | {"NOMAD_ADDR": url}
    if path is not None:
        env["PATH"] = path
    return await asyncio.to_thread(
        CliRunner().invoke, controllerctl, list(args), env=env, catch_exceptions=False
    )


async def test_graph_prints_the_dot_of_the_meshed_jobs(nomad: NomadTwin) -> None:
    result = await ctl(nomad.url, "graph")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "digraph mesh {"
    assert any(line.startswith('  "client" -> "web" [label="mTLS') for line in lines)
    assert any(
        line.startswith('  "intruder" -> "web" [label="refused: intruder not in allow')
        for line in lines
    )


async def test_graph_png_is_drawn_by_dot(nomad: NomadTwin, tmp_path: Path) -> None:
    assert shutil.which("dot"), "Graphviz's dot is missing: run make install (apt-get graphviz)"
    out = tmp_path / "mesh.png"
    result = await ctl(nomad.url, "graph", "--png", str(out))
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {out}\n"
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


async def test_graph_png_without_dot_says_how_to_get_it(nomad: NomadTwin, tmp_path: Path) -> None:
    out = tmp_path / "mesh.png"
    result = await ctl(nomad.url, "graph", "--png", str(out), path=str(tmp_path))
    assert result.exit_code == 1
    assert "needs Graphviz's dot, which is not on PATH" in result.output
    assert "apt-get install -y graphviz" in result.output
    assert not out.exists()


async def test_graph_without_nomad_exits_2() -> None:
    twin = await start_nomad_twin(nodes=1)
    url = twin.url
    await twin.stop()
    result = await ctl(url, "graph")
    assert result.exit_code == 2
    assert "controllerctl graph: cannot read Nomad" in result.output
