"""The alert rules (helm-less-deploy/prometheus) under Debian's promtool.

`promtool check rules` must accept them and `promtool test rules` must pass. Then each alert's
tests are shown to be able to fail: with the alert's expression made never true, some case that
expects it to fire must fail; made always true (and `for: 0s`), some case that expects silence
must fail. So every alert has a firing case and a quiet case that really look at it.
"""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.prometheus import RULE_FILES, RULE_TESTS, RULES_DIR, promtool

pytestmark = pytest.mark.timeout(180)

RULES = RULES_DIR / "nomad-tls-mesh.rules.yml"
ALERT = re.compile(r"^\s+- alert: (\S+)$", re.MULTILINE)
NEVER = "vector(1) < 0"
ALWAYS = "vector(1)"


def alerts() -> list[str]:
    return ALERT.findall(RULES.read_text())


def with_alert(text: str, name: str, *, expr: str, for_: str | None) -> str:
    """``text`` (the rules file) with alert ``name``'s expr (one line or a folded block) and,
    if given, its ``for`` replaced."""
    lines = text.splitlines()
    start = lines.index(f"      - alert: {name}")
    out = lines[: start + 1]
    i = start + 1
    while i < len(lines) and not lines[i].lstrip().startswith("- "):
        line = lines[i]
        if line.startswith("        expr:"):
            out.append(f"        expr: {expr}")
            i += 1
            while i < len(lines) and lines[i].startswith("          "):
                i += 1  # the folded block's continuation lines
            continue
        if for_ is not None and line.startswith("        for:"):
            line = f"        for: {for_}"
        out.append(line)
        i += 1
    out.extend(lines[i:])
    return "\n".join(out) + "\n"


def test_there_are_rule_files_and_unit_tests() -> None:
    assert RULE_FILES == [RULES]
    assert len(RULE_TESTS) >= 4
    assert len(alerts()) == 13


def test_promtool_check_rules_accepts_the_rule_files() -> None:
    done = promtool("check", "rules", *RULE_FILES)
    assert done.returncode == 0, done.stdout + done.stderr
    # 6 recording rules and one rule per alert, and no lint warning on any of them
    assert "SUCCESS: 19 rules found" in done.stdout, done.stdout
    assert "WARNING" not in done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    done = promtool("test", "rules", *RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_TESTS), done.stdout


def test_the_mutation_helper_replaces_only_the_named_alert() -> None:
    text = RULES.read_text()
    changed = with_alert(text, "MeshReconcileErrorRate", expr=NEVER, for_="0s")
    assert f"expr: {NEVER}" in changed
    assert changed.count(NEVER) == 1
    assert "ratio_rate10m > 0.2" not in changed  # the folded expr is gone, whole
    assert changed.count("- alert:") == text.count("- alert:")
    assert changed.count("for: 0s") == 1


def _fails(workdir: Path, name: str, mutated: str) -> tuple[str, bool, str]:
    """Run the unit tests that name alert ``name`` against ``mutated`` rules, in a copy;
    (name, failed because of that alert?, output)."""
    (workdir / RULES.name).write_text(mutated)
    tests = workdir / "tests"
    tests.mkdir()
    for path in RULE_TESTS:
        if f"alertname: {name}\n" in path.read_text():
            shutil.copy(path, tests / path.name)
    done = promtool("test", "rules", *sorted(tests.glob("*.test.yml")))
    output = done.stdout + done.stderr  # promtool writes the failed cases to stderr
    return name, done.returncode != 0 and f"alertname: {name}," in output, output


@pytest.mark.parametrize(("kind", "expr", "for_"), [("fire", NEVER, None), ("quiet", ALWAYS, "0s")])
def test_every_alert_has_a_case_that_catches_a_broken_rule(
    tmp_path: Path, kind: str, expr: str, for_: str | None
) -> None:
    """fire: a rule that never fires breaks a firing case. quiet: a rule that always fires
    breaks a quiet case."""
    text = RULES.read_text()
    jobs = []
    for name in alerts():
        workdir = tmp_path / name
        workdir.mkdir()
        jobs.append((workdir, name, with_alert(text, name, expr=expr, for_=for_)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: _fails(*job), jobs))
    uncaught = {name: out for name, failed, out in results if not failed}
    assert not uncaught, f"no {kind} case catches: {sorted(uncaught)}"
