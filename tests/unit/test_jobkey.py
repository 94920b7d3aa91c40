"""JobKey.of: keys of one job built from separate decodes share their names."""

from __future__ import annotations

from controller.nomad.cache_objects import key_of, owner
from controller.runtime import jsonwire
from crds_equivalent.jobkey import JobKey


def test_of_equals_the_plain_key_and_tuple() -> None:
    key = JobKey.of("bench", "svc-1")
    assert key == JobKey("bench", "svc-1") == ("bench", "svc-1")
    assert str(key) == "bench/svc-1"


def test_of_takes_a_str_subclass_and_keeps_an_exact_str() -> None:
    class Name(str):
        pass

    key = JobKey.of(Name("bench"), Name("svc-1"))
    assert key == ("bench", "svc-1")
    assert type(key.namespace) is str and type(key.job_id) is str


def test_keys_from_separate_decodes_share_one_copy_of_each_name() -> None:
    # two documents parsed apart, as an event's payload and a LIST stub are: equal strings,
    # distinct objects until interned
    job = jsonwire.loads(b'{"Namespace": "team-a", "ID": "web-frontend-7"}')
    alloc = jsonwire.loads(b'{"Namespace": "team-a", "JobID": "web-frontend-7"}')
    assert job["ID"] is not alloc["JobID"]
    from_job, from_alloc = key_of(job), owner(alloc)
    assert from_job == from_alloc
    assert from_job.namespace is from_alloc.namespace
    assert from_job.job_id is from_alloc.job_id
