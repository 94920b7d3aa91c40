"""Fuzzing the spec parser: arbitrary effective meta (any JSON value, Unicode, 200 kB strings,
unknown `mesh.tls.*` keys) on jobs and groups of arbitrary shape.

Every input ends as specs (one MeshSpec per named group) or a SpecError whose message names the
group, the offending key and what was expected — never another exception or a hang.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crds_equivalent import keys
from crds_equivalent.spec import MeshSpec, SpecError, parse_job_specs
from tests.support.fuzzing import FUZZ, FUZZ_TIMEOUT, MESH_KEYS, WRONG_TYPES, meta_maps, meta_value

pytestmark = pytest.mark.timeout(FUZZ_TIMEOUT)

ports = st.lists(
    st.fixed_dictionaries({"Label": st.sampled_from(["http", "admin", "", "mesh_tls_http"])}),
    max_size=3,
)
networks = st.lists(
    st.fixed_dictionaries({"DynamicPorts": ports | st.sampled_from(WRONG_TYPES)})
    | st.sampled_from(WRONG_TYPES),
    max_size=2,
)
groups = st.fixed_dictionaries(
    {"Name": st.sampled_from(["web", "api", "", "ｗｅｂ"])},
    optional={
        "Meta": meta_maps | st.sampled_from(WRONG_TYPES),
        "Networks": networks | st.sampled_from(WRONG_TYPES),
        "Services": st.lists(
            st.fixed_dictionaries({"PortLabel": st.sampled_from(["http", "admin", "", None])}),
            max_size=2,
        )
        | st.sampled_from(WRONG_TYPES),
    },
)
jobs = st.fixed_dictionaries(
    {},
    optional={
        "Meta": meta_maps | st.sampled_from(WRONG_TYPES),
        "TaskGroups": st.lists(groups | st.sampled_from(WRONG_TYPES), max_size=4)
        | st.sampled_from(WRONG_TYPES),
    },
)


def parse(job: dict[str, Any]) -> dict[str, MeshSpec] | SpecError:
    try:
        return parse_job_specs(job)
    except SpecError as err:
        return err


@FUZZ
@given(jobs)
def test_any_meta_parses_or_names_the_key(job: dict[str, Any]) -> None:
    out = parse(job)
    if isinstance(out, SpecError):
        assert out.key in MESH_KEYS or out.key.startswith(keys.MESH_TLS)
        assert f'meta "{out.key}"' in str(out)
        assert "expected" in str(out)
        assert len(str(out)) < 2000
    else:
        assert all(isinstance(s, MeshSpec) for s in out.values())


@FUZZ
@given(st.sampled_from(MESH_KEYS), meta_value)
def test_every_key_with_any_value(key: str, value: Any) -> None:
    """Each user key, in an otherwise meshed group, with a hostile value."""
    job = {
        "Meta": {keys.MESH_TLS: "true", key: value},
        "TaskGroups": [
            {
                "Name": "web",
                "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"PortLabel": "http"}],
            }
        ],
    }
    out = parse(job)
    if isinstance(out, SpecError):
        assert out.group == "web"
        assert out.key in MESH_KEYS
        assert str(out).startswith(f'group "web": meta "{out.key}" = ')
    else:
        spec = out["web"]
        assert spec.group == "web"
        assert not spec.enabled or spec.ports == ("http",)
