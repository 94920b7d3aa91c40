"""Everything `controllerctl install` may write, in Nomad and Vault, as one comparable value.

A dry run must leave this unchanged; secrets appear only as accessors. Jobs are listed with
their JobModifyIndex, so a registered job (even an identical one) shows.
"""

from __future__ import annotations

from typing import Any

from controller.nomad.client import NomadClient
from controller.nomad.errors import BadRequest
from controller.vault import VaultClient


async def install_world(nomad: NomadClient, vault: VaultClient) -> dict[str, Any]:
    jobs = (await nomad.request("GET", "/v1/jobs")).body or []
    state: dict[str, Any] = {
        "jobs": sorted((j["ID"], j["JobModifyIndex"]) for j in jobs),
        "vars": sorted(
            (v["Path"], v["ModifyIndex"]) for v in (await nomad.request("GET", "/v1/vars")).body
        ),
    }
    try:
        policies = (await nomad.request("GET", "/v1/acl/policies", namespace=None)).body
        tokens = (await nomad.request("GET", "/v1/acl/tokens", namespace=None)).body
        state["acl"] = (
            sorted((p["Name"], p["ModifyIndex"]) for p in policies),
            sorted(t["AccessorID"] for t in tokens),
        )
    except BadRequest:  # ACLs off
        state["acl"] = None
    names = await vault.list("sys/policies/acl")
    state["vault"] = {
        "mounts": sorted(((await vault.read("sys/mounts")) or {}).get("data", {})),
        "auth": sorted(((await vault.read("sys/auth")) or {}).get("data", {})),
        "policies": {
            p: ((await vault.read(f"sys/policies/acl/{p}")) or {})["data"]["policy"] for p in names
        },
        "accessors": sorted(await vault.list("auth/token/accessors")),
    }
    return state
