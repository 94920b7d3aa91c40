"""`make chaos`: run the reliability scenarios against the devstack, one result line each,
then the larger hypothesis fuzz run, then `chaos: N/N scenarios held`.

Usage: python -m chaos [--only 1,4] [--no-fuzz] [--json FILE] [--log FILE]
Controller and twin logs go to the log file (default: a temp file, printed at the start), so
the terminal shows only results. Exit 0 only when every scenario held and the fuzz run passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from chaos.harness import Report, run_scenario
from chaos.scenarios import SCENARIOS
from controller.logging import configure_logging

FUZZ_EXAMPLES = 2000
FUZZ_BUDGET = 420  # seconds: with the scenarios (~4 min) the whole run stays under 15 min
FUZZ_TESTS = [
    "tests/unit/test_fuzz_inject.py",
    "tests/unit/test_fuzz_spec.py",
    "tests/unit/test_fuzz_stream.py",
]


def fuzz(root: Path, log: TextIO) -> tuple[bool, str]:
    """The fuzz tests again, with many more examples (and fresh randomness). pytest's whole
    report goes to the log, so a failing example (hypothesis prints it) is never lost."""
    env = os.environ | {"MESH_FUZZ_EXAMPLES": str(FUZZ_EXAMPLES)}
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FUZZ_TESTS],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=FUZZ_BUDGET,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"fuzz: did not finish within {FUZZ_BUDGET}s"
    log.write(done.stdout + done.stderr)
    log.flush()
    tail = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    took = time.monotonic() - started
    line = f"fuzz ({FUZZ_EXAMPLES} examples per property): {tail} in {took:.0f}s"
    return done.returncode == 0, line


async def main_async(only: set[int] | None) -> list[Report]:
    reports = []
    for scenario in SCENARIOS:
        if only and scenario.number not in only:
            continue
        print(f"[{scenario.number}] {scenario.name}: {scenario.invariant}", flush=True)
        report = await run_scenario(scenario)
        print(report.line(), flush=True)
        reports.append(report)
    return reports


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos")
    parser.add_argument("--only", default="", help="comma list of scenario numbers")
    parser.add_argument("--no-fuzz", action="store_true")
    parser.add_argument("--json", default="", help="write the figures to this file")
    parser.add_argument("--log", default="", help="controller/twin log file")
    args = parser.parse_args()
    only = {int(n) for n in args.only.split(",") if n.strip()} or None
    log_path = args.log or tempfile.mkstemp(prefix="chaos-", suffix=".log")[1]
    log_file = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the run
    configure_logging(level="info", fmt="json", stream=log_file)
    print(f"chaos: logs in {log_path}", flush=True)
    started = time.monotonic()
    reports = asyncio.run(main_async(only))
    fuzz_ok = True
    if not args.no_fuzz and not only:
        fuzz_ok, line = fuzz(Path(__file__).resolve().parent.parent, log_file)
        print(line, flush=True)
    held = sum(r.outcome.held for r in reports)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [
                    {
                        "number": r.scenario.number,
                        "name": r.scenario.name,
                        "held": r.outcome.held,
                        "seconds": round(r.seconds, 1),
                        "figures": r.outcome.figures,
                        "cause": r.outcome.cause,
                    }
                    for r in reports
                ],
                indent=2,
            )
        )
    print(f"chaos: total {time.monotonic() - started:.0f}s", flush=True)
    print(f"chaos: {held}/{len(reports)} scenarios held", flush=True)
    log_file.close()
    return 0 if held == len(reports) and fuzz_ok else 1


if __name__ == "__main__":
    sys.exit(main())
