"""Regenerate the derived files of helm-less-deploy/ from their single sources.

- mesh-controller.nomad.json  <- mesh-controller.nomad.hcl (python-hcl2 + deploytools/)
  and the same bytes at controller/deploy/mesh-controller.nomad.json, the package data that
  `controllerctl install` registers (an installed controller has no checkout to read from)
- policies/*.hcl              <- controller.deploy.policies (Vault: controller.vault.policies)

    python helm-less-deploy/gen.py            # write the files
    python helm-less-deploy/gen.py --check    # exit 1 and name the stale files (CI, tests)
    python helm-less-deploy/gen.py --var driver=raw_exec --var command=/opt/bin/controller \
        --stdout                              # the job JSON for other variable values
    python helm-less-deploy/gen.py --nomad-policy web,api [--controller-namespace NS]
                                              # the Nomad policy for named watched namespaces

python-hcl2 is a development dependency, so this script (not the product) imports it, and the
HCL evaluator lives beside it in deploytools/ (see its docstring).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import hcl2
from deploytools.hcl2json import convert
from hcl2.utils import SerializationOptions

from controller.deploy.install import JOB_FILE_NAME
from controller.deploy.policies import nomad_policy, policy_files

HERE = Path(__file__).resolve().parent
HCL = HERE / "mesh-controller.nomad.hcl"
JSON = HERE / "mesh-controller.nomad.json"
# The copy shipped in the wheel, written in the checkout (never into an installed package).
PACKAGED_JSON = HERE.parent / "controller" / "deploy" / JOB_FILE_NAME
POLICIES = HERE / "policies"


def parse_hcl(text: str) -> dict[str, Any]:
    """python-hcl2's dict; heredocs stay heredocs (its own conversion drops the last newline)."""
    options = SerializationOptions(with_comments=False, preserve_heredocs=True)
    return dict(hcl2.loads(text, serialization_options=options))


def job_json(overrides: dict[str, Any] | None = None, hcl_text: str | None = None) -> str:
    """The API JSON of the job, as written to mesh-controller.nomad.json."""
    doc = parse_hcl(hcl_text if hcl_text is not None else HCL.read_text())
    return json.dumps(convert(doc, overrides), indent=2) + "\n"


def expected_files() -> dict[Path, str]:
    text = job_json()
    files = {JSON: text, PACKAGED_JSON: text}
    files.update({POLICIES / name: text for name, text in policy_files().items()})
    return files


def stale_files() -> list[Path]:
    return [
        path
        for path, text in expected_files().items()
        if not path.exists() or path.read_text() != text
    ]


def _var(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--var needs NAME=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value) if value[:1] in "[{" else value
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--var {name}: {exc}") from exc
    return name, parsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument("--var", type=_var, action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--stdout", action="store_true", help="print the job JSON only")
    parser.add_argument("--nomad-policy", metavar="NAMESPACES", help="print the Nomad policy")
    parser.add_argument("--controller-namespace", default="default")
    args = parser.parse_args(argv)
    if args.nomad_policy:
        watched = tuple(n.strip() for n in args.nomad_policy.split(",") if n.strip())
        sys.stdout.write(nomad_policy(watched, args.controller_namespace))
        return 0
    if args.stdout or args.var:
        sys.stdout.write(job_json(dict(args.var)))
        return 0
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(HERE.parent)} (run: python {Path(__file__).name})")
        return 1 if stale else 0
    for path, text in expected_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
