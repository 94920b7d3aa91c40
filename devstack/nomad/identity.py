"""Workload identities: Nomad's signed JWTs, and the Variables access the default one grants.

Signing follows nomad/encrypter.go ``Encrypter.SignClaims``: the active root key of the keyring
signs with RS256 (the RSA key Nomad has generated since 1.7; EdDSA is only the fallback for
older keys), the header carries ``kid`` (the root key's ID) and ``typ: JWT``, and ``iss`` is
added only when the server has an ``oidc_issuer``. The claims are
nomad/structs/workload_id.go ``IdentityClaimsBuilder.Build``: ``nomad_namespace``,
``nomad_job_id`` (the parent's ID for dispatched and periodic children),
``nomad_allocation_id``, ``nomad_task`` (task identities), ``vault_namespace``/``vault_role``
for ``vault_*`` identities, then ``sub`` = ``<region>:<namespace>:<job>:<group>:<task>:<name>``,
``aud`` (go-jose's ``Audience``: a lone audience is a string), ``nbf``/``iat`` = now, ``exp`` =
now + TTL only when the identity has a TTL, and a random ``jti``. The public keys are served as
``/.well-known/jwks.json`` (command/agent/keyring_endpoint.go ``JWKSRequest``) and
``/.well-known/openid-configuration`` (structs/keyring.go ``NewOIDCDiscoveryConfig``).

A task's default identity is also the Nomad token its template runner presents: the server then
grants, without any ACL policy, read and list on ``nomad/jobs``, ``nomad/jobs/<job>``,
``nomad/jobs/<job>/<group>`` and ``nomad/jobs/<job>/<group>/<task>`` in the allocation's
namespace (REPORT §6), plus the rules of ACL policies attached to that job, group or task
(``JobACL``). An identity is good only while its allocation exists and is not client-terminal.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from devstack.nomad.acl import NamespaceRule, Rules
from devstack.nomad.wire import client_terminal

VAR_READ = {"read", "list"}
DEFAULT_NAME = "default"  # structs.WorkloadIdentityDefaultName
DEFAULT_AUD = "nomadproject.io"  # structs.WorkloadIdentityDefaultAud
VAULT_PREFIX = "vault_"  # structs.WorkloadIdentityVaultPrefix
JWKS_PATH = "/.well-known/jwks.json"  # structs.JWKSPath
RS256 = "RS256"  # structs.PubKeyAlgRS256
EDDSA = "EdDSA"  # structs.PubKeyAlgEdDSA
ROOT_KEY_ROTATION_THRESHOLD = 30 * 24 * 3600.0  # server root_key_rotation_threshold default
JWKS_MIN_MAX_AGE = 15 * 60.0  # keyring_endpoint.go jwksMinMaxAge


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _uint_b64(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class Claims:
    namespace: str
    job_id: str
    alloc_id: str
    task: str


def workload_job_id(job: Mapping[str, Any]) -> str:
    """Dispatched and periodic children act as their parent job (GetIDforWorkloadIdentity)."""
    return str(job.get("ParentID") or job.get("ID") or "")


def default_identity() -> dict[str, Any]:
    """structs.DefaultWorkloadIdentity: only valid for Nomad itself, never expires."""
    return {"Name": DEFAULT_NAME, "Audience": [DEFAULT_AUD]}


@dataclass(frozen=True)
class RootKey:
    """One keyring root key: its ID (the JWT ``kid``), RSA key and creation time (ns)."""

    key_id: str
    private: rsa.RSAPrivateKey = field(repr=False)
    create_time: int


class WorkloadIdentities:
    """The twin's keyring and its workload identity signer (one active root key)."""

    def __init__(self, issuer: str | None = None, key: rsa.RSAPrivateKey | None = None) -> None:
        self.issuer = issuer  # the server's oidc_issuer; None: no iss, discovery disabled
        private = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key = RootKey(str(uuid.uuid4()), private, time.time_ns())

    @property
    def key_id(self) -> str:
        return self._key.key_id

    # ---- signing --------------------------------------------------------------------------
    def claims(
        self,
        alloc: Mapping[str, Any],
        task: Mapping[str, Any] | str,
        identity: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """IdentityClaimsBuilder.Build for a task identity, in IdentityClaims field order."""
        job = alloc.get("Job") or {}
        wid = dict(identity or default_identity())
        name = str(wid.get("Name") or DEFAULT_NAME)
        task_name = task if isinstance(task, str) else str(task.get("Name") or "")
        vault = None if isinstance(task, str) else task.get("Vault")
        issued = int(time.time() if now is None else now)
        out: dict[str, Any] = {
            "nomad_namespace": str(alloc.get("Namespace") or "default"),
            "nomad_job_id": workload_job_id(job),
            "nomad_allocation_id": str(alloc["ID"]),
            "nomad_task": task_name,
        }
        if name.startswith(VAULT_PREFIX) and vault:  # WithVault
            if vault.get("Namespace"):
                out["vault_namespace"] = str(vault["Namespace"])
            if vault.get("Role"):
                out["vault_role"] = str(vault["Role"])
        if self.issuer:
            out["iss"] = self.issuer  # SignClaims adds it from oidc_issuer
        out["sub"] = ":".join(
            [
                str(job.get("Region") or "global"),
                str(job.get("Namespace") or alloc.get("Namespace") or "default"),
                workload_job_id(job),
                str(alloc.get("TaskGroup") or ""),
                task_name,
                name,
            ]
        )
        audience = [str(a) for a in wid.get("Audience") or []]
        if audience:  # go-jose jwt.Audience: one audience marshals as a string
            out["aud"] = audience[0] if len(audience) == 1 else audience
        ttl_ns = int(wid.get("TTL") or 0)
        if ttl_ns:
            out["exp"] = issued + ttl_ns // 10**9
        out["nbf"] = issued
        out["iat"] = issued
        out["jti"] = str(uuid.uuid4())
        return out

    def sign(
        self,
        alloc: Mapping[str, Any],
        task: Mapping[str, Any] | str,
        identity: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """The signed JWT of one of a task's identities (the default one without ``identity``)."""
        return self.sign_claims(self.claims(alloc, task, identity, now))

    def mint(self, alloc: Mapping[str, Any], task: str) -> str:
        """The task's default identity: the token its template runner gives the Nomad API."""
        return self.sign(alloc, task)

    def sign_claims(self, claims: Mapping[str, Any]) -> str:
        header = {"alg": RS256, "kid": self._key.key_id, "typ": "JWT"}
        head = _b64(json.dumps(header, separators=(",", ":")).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{head}.{body}".encode()
        signature = self._key.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{_b64(signature)}"

    # ---- verifying ------------------------------------------------------------------------
    def decode(self, token: str, now: float | None = None) -> dict[str, Any] | None:
        """Encrypter.VerifyClaim: the claims of an unexpired token this keyring signed."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            raw = json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except ValueError:
            return None
        if not isinstance(header, dict) or not isinstance(raw, dict):
            return None
        if header.get("alg") != RS256 or header.get("kid") != self._key.key_id:
            return None
        try:
            self._key.private.public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return None
        at = time.time() if now is None else now
        if "exp" in raw and at >= float(raw["exp"]):
            return None
        if "nbf" in raw and at < float(raw["nbf"]):
            return None
        return raw

    def verify(self, token: str) -> Claims | None:
        """The workload behind a token this twin signed; None for anything else."""
        raw = self.decode(token)
        if raw is None:
            return None
        return Claims(
            namespace=str(raw.get("nomad_namespace") or "default"),
            job_id=str(raw.get("nomad_job_id") or ""),
            alloc_id=str(raw.get("nomad_allocation_id") or ""),
            task=str(raw.get("nomad_task") or ""),
        )

    # ---- publishing -----------------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        """JWKSRequest: a jose.JSONWebKeySet of the keyring's public keys, field order as
        go-jose marshals a JSONWebKey (use, kty, kid, alg, n, e)."""
        numbers = self._key.private.public_key().public_numbers()
        key = {
            "use": "sig",  # structs.PubKeyUseSig
            "kty": "RSA",
            "kid": self._key.key_id,
            "alg": RS256,
            "n": _uint_b64(numbers.n),
            "e": _uint_b64(numbers.e),
        }
        return {"keys": [key]}

    def jwks_max_age(self, now: float | None = None) -> int:
        """Cache-Control max-age: helper.ExpiryToRenewTime(newest key + rotation threshold)
        with jwksMinMaxAge as the floor (its random stagger left out)."""
        at = time.time() if now is None else now
        left = self._key.create_time / 1e9 + ROOT_KEY_ROTATION_THRESHOLD - at
        renew_at = left / 2
        return int(JWKS_MIN_MAX_AGE if renew_at < JWKS_MIN_MAX_AGE else renew_at)

    def discovery(self) -> dict[str, Any] | None:
        """NewOIDCDiscoveryConfig(oidc_issuer), or None when the server has no issuer."""
        if not self.issuer:
            return None
        return {
            "issuer": self.issuer,
            "jwks_uri": self.issuer.rstrip("/") + JWKS_PATH,
            "id_token_signing_alg_values_supported": [RS256, EDDSA],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
        }


def implicit_rules(claims: Claims, group: str) -> Rules:
    """The policy Nomad applies to a workload identity without any ACL policy."""
    base = "nomad/jobs"
    paths = [base, f"{base}/{claims.job_id}", f"{base}/{claims.job_id}/{group}"]
    paths.append(f"{paths[-1]}/{claims.task}")
    rule = NamespaceRule(variables={p: set(VAR_READ) for p in paths})
    return Rules(namespaces={claims.namespace: rule})


def live_group(allocs: Mapping[str, dict[str, Any]], claims: Claims) -> str | None:
    """The task group of the identity's allocation while it is alive, else None."""
    alloc = allocs.get(claims.alloc_id)
    if alloc is None or client_terminal(alloc):
        return None
    return str(alloc.get("TaskGroup") or "")


def attached(policy: Mapping[str, Any], claims: Claims, group: str) -> bool:
    """Whether an ACL policy's JobACL attaches it to this workload."""
    raw = policy.get("JobACL") or {}
    job_acl = {str(k).lower(): str(v or "") for k, v in raw.items()}
    if not job_acl.get("jobid"):
        return False
    return (
        (job_acl.get("namespace") or "default") == claims.namespace
        and job_acl["jobid"] == claims.job_id
        and job_acl.get("group", "") in ("", group)
        and job_acl.get("task", "") in ("", claims.task)
    )


@dataclass(frozen=True)
class VaultClientConfig:
    """The client agent's ``vault`` block (structs/config/vault.go): no token since 1.10."""

    addr: str | None = None
    jwt_auth_backend_path: str = "jwt-nomad"  # DefaultVaultConfig
    create_from_role: str = ""  # the role when the task's vault.role is empty


@dataclass
class NomadApi:
    """How a client's tasks reach the server: its HTTP address (set once it listens) and the
    identities it signs."""

    identities: WorkloadIdentities
    addr: str | None = None
