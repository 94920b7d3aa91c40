"""controller.deploy.vault_install.ensure_controller_token against a small fake of Vault's token
store: keep a good token, renew one past half its period, replace an invalid one."""

from __future__ import annotations

from typing import Any

from controller.deploy.steps import InstallReport, Outcome
from controller.deploy.vault_install import ensure_controller_token
from controller.vault import VaultPermissionDenied

PERIOD = 768 * 3600


class FakeTokenStore:
    """Tokens with a ttl and a period; lookup, renew and create-orphan as Vault answers them."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}

    def add(self, token: str, ttl: int, policies: list[str]) -> None:
        self.tokens[token] = {
            "accessor": f"acc-{token}",
            "ttl": ttl,
            "period": PERIOD,
            "policies": ["default", *policies],
        }

    async def write(self, path: str, data: dict[str, Any]) -> dict[str, Any]:
        if path == "auth/token/lookup":
            if data["token"] not in self.tokens:
                raise VaultPermissionDenied(
                    "write auth/token/lookup: permission denied (bad token)"
                )
            return {"data": dict(self.tokens[data["token"]])}
        if path == "auth/token/renew":
            self.tokens[data["token"]]["ttl"] = self.tokens[data["token"]]["period"]
            return {"auth": {}}
        if path == "auth/token/create-orphan":
            token = f"t{len(self.tokens)}"
            self.add(token, PERIOD, list(data["policies"]))
            return {"auth": {"client_token": token, "accessor": f"acc-{token}"}}
        raise AssertionError(f"unexpected write {path}")


async def test_a_fresh_token_is_kept_as_is() -> None:
    vault = FakeTokenStore()
    vault.add("good", PERIOD - 5, ["mesh-controller"])
    report = InstallReport()
    assert await ensure_controller_token(vault, "good", report) == "good"  # type: ignore[arg-type]
    assert vault.tokens["good"]["ttl"] == PERIOD - 5
    assert [s.outcome for s in report.steps] == [Outcome.UNCHANGED]


async def test_a_token_past_half_its_period_is_renewed_not_replaced() -> None:
    vault = FakeTokenStore()
    vault.add("old", PERIOD // 3, ["mesh-controller"])
    report = InstallReport()
    assert await ensure_controller_token(vault, "old", report) == "old"  # type: ignore[arg-type]
    assert vault.tokens["old"]["ttl"] == PERIOD
    assert set(vault.tokens) == {"old"}
    assert report.steps[0].outcome is Outcome.CHANGED and "renewed" in report.steps[0].what


async def test_dry_run_renews_nothing() -> None:
    vault = FakeTokenStore()
    vault.add("old", PERIOD // 3, ["mesh-controller"])
    report = InstallReport(dry_run=True)
    await ensure_controller_token(vault, "old", report)  # type: ignore[arg-type]
    assert vault.tokens["old"]["ttl"] == PERIOD // 3
    assert report.steps[0].outcome is Outcome.WOULD_CHANGE


async def test_invalid_or_wrong_policy_tokens_are_replaced() -> None:
    vault = FakeTokenStore()
    vault.add("other", PERIOD, ["something-else"])
    for current in ("revoked", "other", None):
        report = InstallReport()
        new = await ensure_controller_token(vault, current, report)  # type: ignore[arg-type]
        assert new not in (None, current)
        assert "mesh-controller" in vault.tokens[str(new)]["policies"]
        assert report.steps[0].outcome is Outcome.CHANGED
