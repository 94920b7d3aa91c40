"""The injected sample that seeds the job cache's dictionary: it is a job the injector would
write for the configuration, and it makes the cache's injected jobs pack small."""

from __future__ import annotations

from bench.jobs import user_job
from controller.nomad.cache_objects import Packer, compact
from crds_equivalent.config import MeshConfig
from reconcilers.injection.plan import Apply, NoOp, plan_job
from reconcilers.injection.sample import injected_sample


def test_the_sample_is_what_the_injector_writes_and_plans_as_converged() -> None:
    config = MeshConfig()
    sample = injected_sample(config)
    assert sample is not None
    names = [t["Name"] for g in sample["TaskGroups"] for t in g["Tasks"]]
    assert len(names) == 2 and "app" in names  # the app and the sidecar
    assert isinstance(plan_job(sample, config), NoOp)  # already meshed as this config wants


def test_seeding_the_packer_with_the_sample_shrinks_injected_jobs_it_round_trips() -> None:
    config = MeshConfig()
    users = [user_job(f"svc-{n:03d}", 7, "bench") for n in range(20)]
    injected = []
    for user in users:
        decision = plan_job(user, config)
        assert isinstance(decision, Apply)
        injected.append(decision.job)
    seed = injected_sample(config)
    assert seed is not None

    def packed_sizes(packer: Packer) -> int:
        packer.pack(users[0])  # a cold start caches a user's job first
        sizes = 0
        for job in injected:
            packed = packer.pack(job)
            assert packer.unpack(packed) == job
            sizes += len(packed)
        return sizes

    assert packed_sizes(Packer(seed=compact(seed))) * 2 < packed_sizes(Packer())
