"""The fill's allocation and deployment LISTs: small pages, and one parsed page alive at a time.

A parsed page of 500 allocation stubs was ~6.8 MB, and while the next page was read and
parsed the previous one was still referenced, so a fill's high-water held two of them."""

from __future__ import annotations

import gc
import weakref
from typing import Any, cast

from controller.nomad.client import NomadClient, NomadResponse
from controller.nomad.jobs import NomadJobs


class Page(list[dict[str, Any]]):
    """A parsed page that can be watched for being freed."""


class PagedNomad:
    """Serves ``total`` allocation stubs ``per_page`` at a time, as Nomad's paginator does;
    notes, at each request, whether any page served before is still alive."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.asked_per_page: list[object] = []
        self.served: list[weakref.ref[Page]] = []
        self.alive_at_request: list[int] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> NomadResponse:
        gc.collect()
        self.alive_at_request.append(sum(1 for page in self.served if page() is not None))
        params = kwargs["params"]
        size = int(params["per_page"])
        self.asked_per_page.append(params["per_page"])
        start = int(params.get("next_token") or 0)
        end = min(start + size, self.total)
        page = Page(
            {"ID": f"a{i}", "JobID": "web", "Namespace": "default"} for i in range(start, end)
        )
        self.served.append(weakref.ref(page))
        token = str(end) if end < self.total else None
        return NomadResponse(status=200, body=page, index=7, next_token=token)


async def test_allocations_are_read_100_a_page_by_default() -> None:
    nomad = PagedNomad(total=250)
    listed = await NomadJobs(cast(NomadClient, nomad)).list_allocations()
    assert nomad.asked_per_page == [100, 100, 100]
    assert [s["ID"] for s in listed.stubs] == [f"a{i}" for i in range(250)]
    assert listed.index == 7


async def test_a_page_is_freed_before_the_next_is_read() -> None:
    nomad = PagedNomad(total=7)
    kept: list[str] = []

    def keep(stub: dict[str, Any]) -> dict[str, Any] | None:
        kept.append(stub["ID"])
        return None  # what the fill does: stage it elsewhere, keep nothing in the listing

    await NomadJobs(cast(NomadClient, nomad), objects_per_page=2).list_deployments(keep=keep)
    assert kept == [f"a{i}" for i in range(7)]
    assert nomad.alive_at_request == [0, 0, 0, 0]


async def test_job_lists_share_the_loop_with_their_own_page_size() -> None:
    nomad = PagedNomad(total=5)
    jobs = NomadJobs(cast(NomadClient, nomad), per_page=2, objects_per_page=100)
    listed = await jobs.list_jobs("*", prefix="web")
    assert nomad.asked_per_page == [2, 2, 2]
    assert len(listed.stubs) == 5
    assert nomad.alive_at_request == [0, 0, 0]
