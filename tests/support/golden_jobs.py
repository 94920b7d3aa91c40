"""Golden job fixtures: tests/fixtures/jobs/<case>.in.json -> <case>.out.json via `render`.

The inputs are real Nomad register/read bodies (from Nomad's testdata, python-nomad and the
Nomad API docs) with mesh meta added. Tests compare the rendered text exactly. After an
intentional change of the injection (bump INJECTOR_VERSION when the output changes), run
`.venv/bin/python -m tests.support.golden_jobs` and review the diff of the .out.json files.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from click.testing import CliRunner, Result

from controller.cmd.render import render
from crds_equivalent.config import MeshConfig
from tests.support import paths

JOBS = paths.FIXTURES / "jobs"


def cases() -> list[str]:
    return sorted(p.name.removesuffix(".in.json") for p in JOBS.glob("*.in.json"))


def settings(case: str) -> dict[str, str]:
    table: dict[str, Any] = json.loads((JOBS / "settings.json").read_text())
    return dict(table.get(case, {}))


def clean_env() -> dict[str, str]:
    """MESH_* emptied (empty counts as unset) so the caller's environment cannot leak in."""
    return {f"MESH_{name.upper()}": "" for name in MeshConfig.model_fields}


def run_render(args: list[str], stdin: str | None = None) -> Result:
    return CliRunner().invoke(render, args, input=stdin, env=clean_env(), catch_exceptions=False)


def render_case(case: str, *extra: str) -> Result:
    flags: list[str] = []
    for name, value in settings(case).items():
        flags += ["--" + name.replace("_", "-"), value]
    return run_render([*flags, *extra, str(JOBS / f"{case}.in.json")])


def main() -> int:
    for case in cases():
        result = render_case(case)
        if result.exit_code != 0:
            print(f"{case}: exit {result.exit_code}: {result.output}", file=sys.stderr)
            return 1
        (JOBS / f"{case}.out.json").write_text(result.stdout)
        print(f"wrote {case}.out.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
