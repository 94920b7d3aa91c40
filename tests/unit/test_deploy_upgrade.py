"""The pure parts of an upgrade: the job at another version, Nomad's diff as text, how far a
rollout got, and the failovers read from lock samples."""

from __future__ import annotations

from typing import Any

import pytest

from controller.deploy.failover import Holder, Sample, failover_lines, failovers
from controller.deploy.jobversion import images, job_version, untagged, with_version
from controller.deploy.plandiff import diff_lines
from controller.deploy.rollout import RolloutFailed, progress


def job(image: str = "nomad-tls-mesh:0.1.0", driver: str = "docker") -> dict[str, Any]:
    config = {"image": image, "args": ["run"]} if driver == "docker" else {"command": "/c"}
    return {
        "ID": "mesh-controller",
        "Meta": {"version": "0.1.0", "team": "ops"},
        "TaskGroups": [{"Name": "controller", "Tasks": [{"Driver": driver, "Config": config}]}],
    }


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("nomad-tls-mesh:0.1.0", "nomad-tls-mesh"),
        ("registry:5000/ops/nomad-tls-mesh:0.1.0", "registry:5000/ops/nomad-tls-mesh"),
        ("registry:5000/nomad-tls-mesh", "registry:5000/nomad-tls-mesh"),
        ("nomad-tls-mesh@sha256:abc", "nomad-tls-mesh"),
    ],
)
def test_untagged_keeps_registry_ports(image: str, name: str) -> None:
    assert untagged(image) == name


def test_with_version_changes_meta_and_tag_and_nothing_else() -> None:
    before = job("registry:5000/nomad-tls-mesh:0.1.0")
    after = with_version(before, "0.2.0")
    assert job_version(after) == "0.2.0" and after["Meta"]["team"] == "ops"
    assert images(after) == ["registry:5000/nomad-tls-mesh:0.2.0"]
    assert job_version(before) == "0.1.0"  # a copy
    assert images(with_version(before, "0.2.0", "other/img:7")) == ["other/img:7"]
    assert with_version(before) == before
    raw = with_version(job(driver="raw_exec"), "0.2.0")
    assert images(raw) == [] and raw["TaskGroups"][0]["Tasks"][0]["Config"] == {"command": "/c"}


def test_diff_lines_read_like_nomad_job_plan() -> None:
    diff = {
        "Type": "Edited",
        "ID": "mesh-controller",
        "Fields": [{"Type": "Edited", "Name": "Meta[version]", "Old": "0.1.0", "New": "0.2.0"}],
        "Objects": None,
        "TaskGroups": [
            {
                "Type": "Edited",
                "Name": "controller",
                "Fields": None,
                "Objects": None,
                "Updates": {"create/destroy update": 3},
                "Tasks": [
                    {
                        "Type": "Edited",
                        "Name": "controller",
                        "Fields": None,
                        "Annotations": ["forces create/destroy update"],
                        "Objects": [
                            {
                                "Type": "Edited",
                                "Name": "Config",
                                "Fields": [
                                    {"Type": "Edited", "Name": "image", "Old": "a:1", "New": "a:2"},
                                    {"Type": "None", "Name": "args[0]", "Old": "run", "New": "run"},
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    assert diff_lines(diff) == [
        '+/- Job: "mesh-controller"',
        '+/- Meta[version]: "0.1.0" => "0.2.0"',
        '+/- Task Group: "controller" (3 create/destroy update)',
        '  +/- Task: "controller" (forces create/destroy update)',
        "    +/- Config {",
        '      +/- image: "a:1" => "a:2"',
        "    }",
    ]
    assert diff_lines({"Type": "None", "ID": "x", "TaskGroups": []}) == []
    added = {"Type": "Added", "Name": "env", "Fields": [{"Type": "Added", "Name": "A", "New": "1"}]}
    assert diff_lines({"Type": "Edited", "ID": "x", "Objects": [added]}) == [
        '+/- Job: "x"',
        "+ env {",
        '  + A: "1"',
        "}",
    ]


def alloc(aid: str, version: int, client: str = "running", desired: str = "run") -> dict[str, Any]:
    return {"ID": aid, "JobVersion": version, "ClientStatus": client, "DesiredStatus": desired}


def test_progress_without_a_deployment_waits_for_every_live_allocation() -> None:
    old_live = [alloc("a", 0), alloc("b", 1, "pending")]
    assert not progress(old_live, None, 1).done
    replaced = [alloc("a", 0, "complete", "stop"), alloc("b", 1, "pending")]
    assert not progress(replaced, None, 1).done
    done = progress([alloc("a", 0, "complete", "stop"), alloc("b", 1)], None, 1)
    assert done.done and "1 of 1 allocation(s) of version 1 running" in done.what
    assert not progress([], None, 1).done
    with pytest.raises(RolloutFailed, match="allocation c of version 1 failed"):
        progress([alloc("c", 1, "failed")], None, 1)


def test_progress_follows_nomads_deployment_of_the_version() -> None:
    running = {"ID": "d1234567xx", "JobVersion": 2, "Status": "running"}
    assert not progress([alloc("a", 2)], running, 2).done
    assert progress([], {**running, "Status": "successful"}, 2).done
    failed = {**running, "Status": "failed", "StatusDescription": "Failed due to unhealthy"}
    with pytest.raises(RolloutFailed, match="failed: Failed due to unhealthy"):
        progress([], failed, 2)
    older = {**running, "JobVersion": 1, "Status": "failed"}
    assert progress([alloc("a", 2)], older, 2).done  # not this version's deployment


def test_failovers_name_each_change_and_bound_the_gap() -> None:
    old, standby, new = Holder("h/1", "aaaa"), Holder("h/2", "bbbb"), Holder("h/3", "cccc")
    samples = [
        Sample(0.0, old),
        Sample(0.5, old),
        Sample(1.0, None),
        Sample(1.5, standby),
        Sample(2.0, standby),
        Sample(2.5, None),
        Sample(3.0, None),
        Sample(3.5, new),
    ]
    changes = failovers(old, samples)
    assert [(c.before, c.after, c.gap) for c in changes] == [
        (old, standby, 1.0),
        (standby, new, 1.5),
    ]
    lines = failover_lines(old, new, changes, {"bbbb": 0, "cccc": 1}, 0.5)
    first = "failover: h/1 (alloc aaaa) -> h/2 (alloc bbbb, job version 0), "
    assert lines[0] == first + "leaderless for at most 1.0s"
    assert "-> h/3 (alloc cccc, job version 1)" in lines[1]
    assert failovers(old, [Sample(0.0, old), Sample(0.5, old)]) == []
    assert "kept it" in failover_lines(old, old, [], {}, 0.5)[0]
    assert "free before this version was registered" in failover_lines(None, new, [], {}, 0.5)[0]
