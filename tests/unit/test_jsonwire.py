"""What the hot paths rely on from controller/runtime/jsonwire.py (orjson underneath): the same
values as the standard library for what Nomad sends and what we write back."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from controller.nomad.stream import StreamDecoder
from controller.runtime import jsonwire

FRAME: dict[str, Any] = {
    "Index": 18446744073709551615,  # Nomad's indexes are uint64: the largest one fits
    "Events": [
        {
            "Topic": "Job",
            "Key": "wéb-☃",
            "FilterKeys": None,
            "Payload": {"Job": {"Meta": {"owner": 'équipe\n"ops"', "none": None}, "Count": -1}},
        }
    ],
}


def test_a_frame_with_unicode_and_nested_nulls_round_trips() -> None:
    text = jsonwire.dumps(FRAME)
    assert jsonwire.loads(text) == FRAME
    assert json.loads(text) == FRAME  # what the standard library reads is the same value
    assert jsonwire.loads(json.dumps(FRAME)) == FRAME  # and \\u escapes read back the same


def test_dumps_is_compact_and_writes_non_string_keys_as_json_dumps_does() -> None:
    value = {"a": [1, 2.5, True, None], 7: "seven"}
    assert jsonwire.dumps(value) == json.dumps(value, separators=(",", ":")).encode()


def test_a_held_text_costs_about_its_length_not_the_encoders_buffer() -> None:
    allocation = {"ID": "00d2bfe6-1822-45b1-bde1-04d4f39b5158", "JobID": "svc-00013", "Index": 81}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [jsonwire.dumps(allocation) for _ in range(1000)]
        per_text = (tracemalloc.get_traced_memory()[0] - before) / len(held)
    finally:
        tracemalloc.stop()
    assert len(held[0]) < 120
    assert per_text < 256  # orjson's own bytes keep a >= 4 kB buffer each


def test_loads_takes_str_and_bytes_and_refuses_what_is_not_json() -> None:
    assert jsonwire.loads('{"k":"v"}') == jsonwire.loads(b'{"k":"v"}') == {"k": "v"}
    for bad in (b"", b"{", b'{"k":}', b"\xff\xfe"):
        with pytest.raises(jsonwire.DecodeError):
            jsonwire.loads(bad)
    assert issubclass(jsonwire.DecodeError, ValueError)


def test_the_stream_decoder_counts_invalid_utf8_and_broken_lines_as_malformed() -> None:
    dec = StreamDecoder()
    good = jsonwire.dumps({"Index": 5, "Events": []})
    assert dec.feed(b'{"Index":\xff}\n{"Index":4,"Events":[\n' + good + b"\n") != []
    assert dec.malformed == 2 and dec.last_index == 5
