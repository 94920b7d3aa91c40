"""Nomad Variables: the controller's own storage (status records, config, the leader lock).

Every write can be fenced by CAS (``?cas=<ModifyIndex>``; 0 = create only), so a deposed
leader's stale write fails with :class:`Conflict` instead of overwriting a newer record. Nomad
answers a CAS conflict with 409 and the *current* variable as JSON; we hand that back on the
exception so the caller can retry without an extra read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from controller.nomad.client import NomadClient, ParamValue
from controller.nomad.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class Variable:
    """A Variable as read or written; ``items`` is empty for metadata-only answers."""

    namespace: str
    path: str
    items: Mapping[str, str] = field(default_factory=dict)
    create_index: int = 0
    modify_index: int = 0
    lock_id: str | None = None
    lock: Mapping[str, str] | None = None

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Variable:
        lock = body.get("Lock") or None
        return cls(
            namespace=str(body.get("Namespace") or ""),
            path=str(body.get("Path") or ""),
            items={str(k): str(v) for k, v in (body.get("Items") or {}).items()},
            create_index=int(body.get("CreateIndex") or 0),
            modify_index=int(body.get("ModifyIndex") or 0),
            lock_id=(lock or {}).get("ID") or None,
            lock={str(k): str(v) for k, v in lock.items()} if lock else None,
        )


def var_url(path: str) -> str:
    return "/v1/var/" + quote(path.strip("/"), safe="/")


class NomadVariables:
    """get / put(cas) / delete(cas) / list(prefix) in one namespace."""

    def __init__(self, client: NomadClient, *, namespace: str = "default") -> None:
        self.client = client
        self.namespace = namespace

    async def get(self, path: str) -> Variable | None:
        """The variable with its items, or None when it does not exist."""
        try:
            resp = await self.client.request("GET", var_url(path), namespace=self.namespace)
        except NotFound:
            return None
        return Variable.from_wire(resp.body or {})

    async def put(self, path: str, items: Mapping[str, str], *, cas: int | None = None) -> Variable:
        """Write ``items``. With ``cas`` only if ModifyIndex == cas (0: only if absent).

        Raises Conflict (with ``.current`` = the variable now stored, when Nomad sent it).
        Only a CAS write is safe to retry, so only a CAS write is marked idempotent.
        """
        params: dict[str, ParamValue] = {} if cas is None else {"cas": cas}
        body = {"Namespace": self.namespace, "Path": path, "Items": dict(items)}
        resp = await self.client.request(
            "PUT",
            var_url(path),
            params=params,
            body=body,
            namespace=self.namespace,
            idempotent=cas is not None,
        )
        return Variable.from_wire(resp.body or body)

    async def cas_put(self, path: str, items: Mapping[str, str], *, cas: int) -> Variable | None:
        """Like :meth:`put` with CAS, but None instead of Conflict (for store-style callers)."""
        try:
            return await self.put(path, items, cas=cas)
        except Conflict:
            return None

    async def delete(self, path: str, *, cas: int | None = None) -> None:
        """Delete; a missing variable is not an error. Raises Conflict on a CAS mismatch."""
        params: dict[str, ParamValue] = {} if cas is None else {"cas": cas}
        try:
            await self.client.request(
                "DELETE", var_url(path), params=params, namespace=self.namespace, idempotent=True
            )
        except NotFound:
            return

    async def cas_delete(self, path: str, *, cas: int) -> bool:
        """Like :meth:`delete` with CAS; False instead of Conflict."""
        try:
            await self.delete(path, cas=cas)
        except Conflict:
            return False
        return True

    async def list_prefix(self, prefix: str = "") -> list[Variable]:
        """Metadata (no items) of every variable under ``prefix``, all pages."""
        out: list[Variable] = []
        token: str | None = None
        while True:
            params: dict[str, ParamValue] = {"prefix": prefix} if prefix else {}
            if token:
                params["next_token"] = token
            resp = await self.client.request(
                "GET", "/v1/vars", params=params, namespace=self.namespace
            )
            out.extend(Variable.from_wire(meta) for meta in resp.body or [])
            token = resp.next_token
            if not token:
                return out
