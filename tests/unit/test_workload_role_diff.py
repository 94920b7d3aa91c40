"""The JWT role comparison the bootstrap and `controllerctl check` share (role_diff)."""

from __future__ import annotations

from controller.vault.workload_auth import WorkloadAuth, role_diff, role_same

WANT = WorkloadAuth().role_config(("mesh-workload",))


def stored(**changes: object) -> dict[str, object]:
    """The role as Vault answers it: periods in seconds, lists in its own order, extra keys."""
    have = {**WANT, "token_period": 1800, "bound_audiences": ["vault.io"], "token_ttl": 0}
    have.update(changes)
    return have


def test_vaults_answer_for_the_written_role_is_the_same() -> None:
    assert role_diff(WANT, stored()) == []
    assert role_same(WANT, stored())


def test_each_differing_key_is_named_with_what_was_expected() -> None:
    have = stored(bound_audiences=["nomad.io"], user_claim="/nomad_job_id", token_period=3600)
    assert role_diff(WANT, have) == [
        "bound_audiences is ['nomad.io'], expected ['vault.io']",
        "user_claim is '/nomad_job_id', expected '/sub'",
        "token_period is 3600, expected '30m'",
    ]
    assert not role_same(WANT, have)


def test_a_missing_claim_mapping_is_a_difference() -> None:
    mappings = {"nomad_namespace": "nomad_namespace", "nomad_job_id": "nomad_job_id"}
    [line] = role_diff(WANT, stored(claim_mappings=mappings))
    assert line.startswith("claim_mappings is {'nomad_namespace'")
