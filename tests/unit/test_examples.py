"""examples/*.json stay jobs the controller meshes: `controllerctl render` injects the sidecar
into each and `--uninject` gives the file's job back (the README walks through hello-mesh.json;
tests/e2e/test_newcomer_example.py runs it on `controller dev`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cmd import controllerctl
from crds_equivalent import keys

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))


def test_there_are_examples() -> None:
    assert [p.name for p in EXAMPLES] == ["hello-mesh.json"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_renders_meshed_and_back(path: Path) -> None:
    runner = CliRunner()
    meshed = runner.invoke(controllerctl, ["render", str(path)], env={}, catch_exceptions=False)
    assert meshed.exit_code == 0, meshed.output
    job = json.loads(meshed.output)["Job"]
    assert job["Meta"][keys.MESH_TLS] == "true"
    for group in job["TaskGroups"]:
        assert keys.SIDECAR_TASK in [t["Name"] for t in group["Tasks"]]
        assert all(s["PortLabel"].startswith("mesh_tls_") for s in group["Services"])
    back = runner.invoke(
        controllerctl, ["render", "--uninject", "-"], input=meshed.output, catch_exceptions=False
    )
    assert back.exit_code == 0, back.output
    assert json.loads(back.output) == json.loads(path.read_text())
