"""``GET /v1/deployments`` pages as Nomad's ``Deployment.List`` does.

Pinned against ``nomad/deployment_endpoint.go`` (``List``: ``paginator.NewPaginator`` with
``CreateIndexAndIDTokenizer`` when no prefix is given) and ``nomad/state/paginator/tokenizer.go``
(the token is ``<CreateIndex>.<ID>``; the index part is compared as a number). The controller's
fill asks for ``per_page``; a twin that answered every deployment at once handed it, at 10k
jobs, one body of tens of MB that Nomad never sends.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from devstack.nomad.server import NomadTwin
from tests.support.nomad_fixtures import job_spec
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually


def service(job_id: str) -> dict[str, Any]:
    """A one-group service with an update block, so that registering it starts a deployment."""
    spec = job_spec(job_id)
    spec["TaskGroups"][0]["Update"] = {"MaxParallel": 1, "MinHealthyTime": 0}
    return {"Job": spec}


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=1)


async def listing(
    http: aiohttp.ClientSession, twin: NomadTwin, query: str
) -> tuple[list[dict[str, Any]], str]:
    async with http.get(f"{twin.url}/v1/deployments?{query}") as r:
        assert r.status == 200, await r.text()
        return await r.json(), r.headers.get("X-Nomad-Nexttoken", "")


async def test_deployments_page_by_create_index_then_id(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    for job_id in ("c", "a", "b"):
        async with http.post(f"{twin.url}/v1/jobs", json=service(job_id)) as r:
            assert r.status == 200, await r.text()

    async def three() -> list[dict[str, Any]] | None:
        found, _ = await listing(http, twin, "")
        return found if len(found) == 3 else None

    every = await eventually(three, within=5)
    order = [(d["CreateIndex"], d["ID"]) for d in every]
    assert order == sorted(order)
    assert [d["JobID"] for d in every] == ["c", "a", "b"]  # registered in that order

    first, token = await listing(http, twin, "per_page=2")
    assert [d["ID"] for d in first] == [d["ID"] for d in every[:2]]
    assert token == f"{every[2]['CreateIndex']}.{every[2]['ID']}"
    rest, end = await listing(http, twin, f"per_page=2&next_token={token}")
    assert [d["ID"] for d in rest] == [every[2]["ID"]]
    assert end == ""
