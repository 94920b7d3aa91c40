"""Job events through the decoder and into the cache: every event comes out as a whole parse
of its line gives it, and the cache gives back the job the event carried, before and after
packing (the decoder and the cache share controller/runtime/jsonwire.py)."""

from __future__ import annotations

import json
from typing import Any

from controller.nomad.cache import JobCache
from controller.nomad.stream import StreamDecoder
from crds_equivalent.jobkey import JobKey
from reconcilers.mesh.interest import MESH_INTEREST


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def event(topic: str, key: str, payload: dict[str, Any], index: int = 7) -> dict[str, Any]:
    return {
        "Topic": topic,
        "Type": "PlanResult",
        "Key": key,
        "Namespace": "default",
        "FilterKeys": None,
        "Index": index,
        "Payload": payload,
    }


def job(job_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "ID": job_id,
        "Namespace": "default",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "app"}]}],
        "ModifyIndex": 7,
        "JobModifyIndex": 7,
        "Payload": None,
        **extra,
    }


def decode(events: list[dict[str, Any]], *, index: int = 7) -> list[Any]:
    line = compact({"Index": index, "Events": events}) + b"\n"
    (batch,) = StreamDecoder().feed(line)
    return list(batch.events)


def test_each_event_of_a_frame_comes_out_as_sent() -> None:
    web, api = job("web"), job("api", Status="running")
    alloc = {"ID": "a1", "JobID": "web", "Job": None, "TaskStates": {"app": {"State": "x"}}}
    raw = [
        event("Job", "web", {"Job": web}),
        event("Allocation", "a1", {"Allocation": alloc}),
        event("Job", "api", {"Job": api, "Deleted": False}),
        event("Deployment", "d1", {"Deployment": {"ID": "d1", "JobID": "web"}}),
    ]
    got = decode(raw)
    assert [(e.topic, dict(e.payload)) for e in got] == [(r["Topic"], r["Payload"]) for r in raw]


def test_a_job_whose_strings_look_like_json_is_kept_as_strings() -> None:
    tricky = job(
        "web",
        Payload="eyJKb2IiOnt9fQ==",
        Meta={"mesh.tls": "true", "note": '"Payload":{"Job":{"ID":"x"}} }]}'},
    )
    (got,) = decode([event("Job", "web", {"Job": tricky})])
    assert got.payload["Job"] == tricky


def test_a_frame_not_written_compactly_decodes_the_same() -> None:
    web = job("web")
    line = json.dumps({"Index": 3, "Events": [event("Job", "web", {"Job": web}, 3)]}).encode()
    (batch,) = StreamDecoder().feed(line + b"\n")
    assert batch.events[0].payload["Job"] == web


def test_a_job_event_without_a_job_decodes_as_before() -> None:
    (got,) = decode([event("Job", "web", {"Job": None})])
    assert got.payload == {"Job": None}


def test_a_broken_job_is_a_malformed_line_like_any_other() -> None:
    dec = StreamDecoder()
    assert dec.feed(b'{"Index":3,"Events":[{"Topic":"Job","Payload":{"Job":{"ID":}}}]}\n') == []
    assert dec.malformed == 1 and dec.last_index == 0


def test_the_cache_gives_back_the_job_of_the_event_before_and_after_packing() -> None:
    web = job("web", Meta={"mesh.tls": "true", "owner": "équipe <ops> \u2603", "x": None})
    (got,) = decode([event("Job", "web", {"Job": web})])
    cache = JobCache(keep=MESH_INTEREST.job_interesting)
    cache.apply_event(got)
    key = JobKey("default", "web")
    assert cache.job(key) == web
    cache.flush()
    assert cache.jobs[key].packed and cache.job(key) == web
