"""The Nomad token probes table: every row's call is one that cannot change anything.

The volume rows register (a plan would not do: nomad/job_endpoint.go ``Plan`` checks only
``submit-job``), so what they send is checked here: a fresh job ID, an EnforceIndex fence the
missing job cannot pass, and a volume that passes Nomad's validation.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller.ctl.token_probes import PROBE_JOB, TokenProbes
from controller.nomad.errors import NomadError, PermissionDenied, error_for


class FakeNomad:
    """Records requests; answers each with the given status and body."""

    def __init__(self, status: int, body: str) -> None:
        self.status, self.body = status, body
        self.calls: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        self.calls.append({"method": method, "path": path, **kw})
        raise error_for(self.status, self.body, f"{method} {path}")


def probes(nomad: FakeNomad) -> TokenProbes:
    return TokenProbes(nomad, "default", ("web",))  # type: ignore[arg-type]


FENCE = "rpc error: Enforcing job modify index 1: job does not exist"


@pytest.mark.parametrize(
    ("probe", "volume_type"), [("host_volumes", "host"), ("csi_volumes", "csi")]
)
async def test_a_volume_probe_registers_a_job_its_fence_refuses(
    probe: str, volume_type: str
) -> None:
    nomad = FakeNomad(500, FENCE)
    answer = await getattr(probes(nomad), probe)()
    assert isinstance(answer, NomadError)  # refused after the ACL checks: allowed
    [call] = nomad.calls
    body = call["body"]
    job = body["Job"]
    assert call["method"] == "POST" and call["path"] == f"/v1/job/{job['ID']}"
    assert call["namespace"] == "web" and job["Namespace"] == "web"
    assert call["idempotent"] is False
    assert body["EnforceIndex"] is True and body["JobModifyIndex"] != 0
    assert job["ID"].startswith(PROBE_JOB + "-") and job["ID"] != PROBE_JOB
    [volume] = job["TaskGroups"][0]["Volumes"].values()
    assert volume["Type"] == volume_type and volume["Source"] and volume["ReadOnly"] is False
    if volume_type == "csi":  # VolumeRequest.Validate refuses CSI volumes without both modes
        assert volume["AccessMode"] and volume["AttachmentMode"]
    [mount] = job["TaskGroups"][0]["Tasks"][0]["VolumeMounts"]
    assert mount["Volume"] in job["TaskGroups"][0]["Volumes"]


async def test_each_volume_probe_uses_a_new_job_id() -> None:
    nomad = FakeNomad(500, FENCE)
    p = probes(nomad)
    await p.host_volumes()
    await p.host_volumes()
    assert nomad.calls[0]["body"]["Job"]["ID"] != nomad.calls[1]["body"]["Job"]["ID"]


@pytest.mark.parametrize("probe", ["host_volumes", "csi_volumes", "plan"])
async def test_a_403_is_a_missing_right(probe: str) -> None:
    with pytest.raises(PermissionDenied):
        await getattr(probes(FakeNomad(403, "Permission denied")), probe)()
