"""controllerctl check, pure parts: verdicts, thresholds, capability parsing, rendering."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from controller.ctl import checks
from controller.ctl.checks import CheckResult, Mark, exit_code
from controller.ctl.checkup import render_text
from controller.ctl.probes_nomad import transport
from controller.ctl.probes_vault import install_capabilities
from controller.ctl.table import make_console
from controller.vault.policies import PolicyPaths, controller_policy

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PATHS = PolicyPaths(root_mount="pki", int_mount="pki_int", role="mesh")


@pytest.mark.parametrize(
    ("version", "mark"),
    [("1.10.5", Mark.OK), ("1.7.0", Mark.OK), ("v2.0.1-beta", Mark.OK), ("1.6.9", Mark.FAIL)],
)
def test_nomad_version(version: str, mark: Mark) -> None:
    assert checks.nomad_version("Nomad", version).mark is mark


def test_unknown_version_is_a_warning() -> None:
    result = checks.nomad_version("Nomad", "dev")
    assert result.mark is Mark.WARN and result.hint


@pytest.mark.parametrize(
    ("skew", "mark"),
    [(-0.9, Mark.OK), (0.0, Mark.OK), (1.5, Mark.OK), (-3.0, Mark.WARN), (12.0, Mark.FAIL)],
)
def test_clock_skew(skew: float, mark: Mark) -> None:
    result = checks.clock_skew("Nomad", "Nomad", NOW + timedelta(seconds=skew), NOW)
    assert result.mark is mark
    if mark is not Mark.OK:
        assert "NTP" in result.hint


def test_clock_skew_without_a_time_is_a_warning() -> None:
    assert checks.clock_skew("Vault", "Vault", None, NOW).mark is Mark.WARN


@pytest.mark.parametrize(
    ("days_left", "mark", "text"),
    [(31, Mark.OK, "31d left"), (10, Mark.FAIL, "10d left"), (-1, Mark.FAIL, "EXPIRED")],
)
def test_intermediate_validity_threshold(days_left: int, mark: Mark, text: str) -> None:
    result = checks.validity(
        "PKI", "intermediate", NOW + timedelta(days=days_left), NOW, 30, "rotate it"
    )
    assert result.mark is mark and text in result.detail
    assert result.name == "intermediate is valid for at least 30 days"
    assert (result.hint == "rotate it") == (mark is Mark.FAIL)


def test_required_capabilities_follow_the_controller_policy() -> None:
    policy = controller_policy(PATHS)
    required = checks.required_capabilities(policy)
    assert required["pki_int/config/issuers"] == ("read", "update")
    assert required["pki_int/issuer/default"] == ("read", "update", "patch", "delete")
    assert required["pki/root/sign-intermediate"] == ("update",)
    assert required["sys/health"] == ("read",)
    assert len(required) == policy.count('path "')


def test_missing_capabilities_name_path_and_capability() -> None:
    required = {"pki_int/config/issuers": ("read", "update"), "pki/cert/ca": ("read",)}
    granted = {"pki_int/config/issuers": ("read",), "pki/cert/ca": ("read", "list")}
    result = checks.vault_capabilities("Vault", "the controller", required, granted)
    assert result.mark is Mark.FAIL
    assert result.detail == "missing pki_int/config/issuers: update"
    assert "pki_int/config/issuers: update" in result.hint
    rooted = checks.vault_capabilities("Vault", "x", required, {p: ("root",) for p in required})
    assert rooted.mark is Mark.OK


def test_install_capabilities_cover_mounts_policies_and_role() -> None:
    caps = install_capabilities(PATHS)
    assert {"sys/mounts/pki", "sys/mounts/pki_int", "pki_int/roles/mesh"} <= set(caps)
    assert "sys/policies/acl/mesh-controller" in caps
    # install writes both login roles, the controller's own instead of a long-lived token
    assert {"auth/jwt-nomad/role/mesh-workload", "auth/jwt-nomad/role/mesh-controller"} <= set(caps)
    assert not any("token/create" in path for path in caps)


def test_leader_verdicts() -> None:
    since = (NOW - timedelta(hours=3)).isoformat()
    items = {"identity": "node-1/42", "since": since}
    held = checks.leader("C", items, "held", 15.0, NOW, None)
    assert held.mark is Mark.OK and "renewed its 15s lease" in held.detail
    fresh = checks.leader("C", {"identity": "n", "since": NOW.isoformat()}, "held", 15.0, NOW, None)
    assert fresh.mark is Mark.OK and "acquired within" in fresh.detail
    released = checks.leader("C", items, "released", 15.0, NOW, None)
    assert released.mark is Mark.FAIL and "nobody holds the lock" in released.detail
    assert checks.leader("C", None, "unknown", None, NOW, None).mark is Mark.FAIL
    assert checks.leader("C", items, "hidden", None, NOW, None).mark is Mark.WARN
    assert checks.leader("C", items, "hidden", None, NOW, True).mark is Mark.OK


def test_event_stream_verdicts() -> None:
    fresh = {"leading": True, "event_stream": {"last_index": 812, "last_line_age_s": 3.2}}
    assert checks.event_stream("C", fresh, "", 120).detail == "at index 812, last line 3.2s ago"
    stale = {"leading": True, "event_stream": {"last_index": 812, "last_line_age_s": 400.0}}
    assert checks.event_stream("C", stale, "", 120).mark is Mark.FAIL
    standby = {"leading": False, "leader": {"identity": "node-2/7"}}
    result = checks.event_stream("C", standby, "", 120)
    assert result.mark is Mark.WARN and "node-2/7" in result.detail
    unknown = checks.event_stream("C", None, "no /status address", 120)
    assert unknown.mark is Mark.WARN and "MESH_STATUS_URL" in unknown.hint


@pytest.mark.parametrize(
    ("addr", "skip", "mark"),
    [
        ("http://127.0.0.1:4646", False, Mark.OK),
        ("http://10.0.0.5:4646", False, Mark.WARN),
        ("https://nomad.example:4646", False, Mark.OK),
        ("https://nomad.example:4646", True, Mark.WARN),
    ],
)
def test_transport(addr: str, skip: bool, mark: Mark) -> None:
    assert transport(addr, skip, "NOMAD")[0] is mark


def test_exit_codes_and_rendering() -> None:
    ok = CheckResult("Nomad", "reachable", Mark.OK, "plain http on loopback")
    warn = CheckResult("Vault", "policy exists", Mark.WARN, "cannot verify", "use an admin token")
    bad = CheckResult("Vault PKI", "intermediate valid", Mark.FAIL, "10d left", "rotate it")
    down = CheckResult("Consul", "reachable", Mark.FAIL, "refused", "check", unreachable=True)
    assert exit_code([ok, warn]) == 0
    assert exit_code([ok, bad]) == 1
    assert exit_code([ok, bad, down]) == 2
    out = io.StringIO()
    make_console(out, tty=False).print(render_text([ok, warn, bad], pre=False))
    text = out.getvalue()
    assert "\x1b[" not in text
    assert "Nomad\n-----\n✔ reachable: plain http on loopback\n" in text
    assert "‼ policy exists: cannot verify\n    hint: use an admin token\n" in text
    assert "× intermediate valid: 10d left\n    hint: rotate it\n" in text
    assert text.rstrip().endswith("× 1 of 3 checks failed (exit 1)")
    assert bad.to_json()["result"] == "fail"
