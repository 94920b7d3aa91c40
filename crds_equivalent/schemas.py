"""JSON Schemas of the contract, generated from the models so docs and linters never drift.

`python -m crds_equivalent.schemas` rewrites `crds_equivalent/schema/*.json`; a test fails when
the committed files differ from what the models generate.
"""

import json
from pathlib import Path
from typing import Any

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import MeshSpec
from crds_equivalent.status import MeshStatus
from crds_equivalent.status_report import StatusReport

SCHEMA_DIR = Path(__file__).parent / "schema"

_GO_BOOL = "^(1|t|T|TRUE|true|True|0|f|F|FALSE|false|False)$"
_SERVICE = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_UPSTREAM = _SERVICE + r":[0-9]{1,5}(/(http|tcp))?(@(consul|nomad))?"
_UPSTREAMS = rf"^\s*({_UPSTREAM}(\s*,\s*{_UPSTREAM})*)?\s*$"
_SERVICE_LIST = rf"^\s*({_SERVICE}(\s*,\s*{_SERVICE})*)?\s*$"
_GO_DURATION = r"^[-+]?(0|((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$"


def meta_schema() -> dict[str, Any]:
    """Schema of the user-facing meta keys, as they appear in job or group `Meta`."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "nomad-tls-mesh job/group meta",
        "description": "Meta keys a team sets to mesh a task group. Group meta overrides job "
        "meta. All values are strings, as Nomad meta is map[string]string.",
        "type": "object",
        "properties": {
            keys.MESH_TLS: {
                "type": "string",
                "pattern": _GO_BOOL,
                "description": "Opt the group in (Go ParseBool syntax). Default off.",
            },
            keys.MESH_TLS_PORTS: {
                "type": "string",
                "pattern": r"^[A-Za-z0-9_-]+(\s*,\s*[A-Za-z0-9_-]+)*$",
                "description": "Comma list of port labels to front. Default: every port label "
                "a service of the group uses.",
            },
            keys.MESH_TLS_MODE: {
                "type": "string",
                "enum": ["strict", "permissive"],
                "default": "strict",
            },
            keys.MESH_TLS_PROTOCOL: {"type": "string", "enum": ["http", "tcp"], "default": "http"},
            keys.MESH_TLS_TTL: {
                "type": "string",
                "pattern": _GO_DURATION,
                "default": "72h",
                "description": "Leaf lifetime, a Go duration of at least 1h.",
            },
            keys.MESH_TLS_SANS: {"type": "string", "description": "Comma list of DNS names."},
            keys.MESH_TLS_MTLS: {"type": "string", "pattern": _GO_BOOL, "default": "false"},
            keys.MESH_TLS_PROMOTE: {
                "type": "string",
                "enum": ["manual", "auto"],
                "default": "manual",
                "description": "Who promotes the canaries of a deployment the controller caused "
                "(update.canary > 0 without auto_promote): the user (manual) or the controller "
                "once every canary is healthy (auto). Not an input of the injection.",
            },
            keys.MESH_TLS_UPSTREAMS: {
                "type": "string",
                "pattern": _UPSTREAMS,
                "description": "Comma list of <service>:<port>[/http|/tcp][@consul|@nomad]. "
                "The sidecar also listens on 127.0.0.1:<port> and carries each request (http, "
                "the default) or connection (tcp) over mTLS to a healthy mesh-tls instance of "
                "<service>, found in the given catalog (default: the provider of the group's "
                "services, consul for a group with none). One upstream per port. A meshed group "
                "with upstreams and no port to front is a pure client, named after its job ID.",
                "examples": ["billing:9001, search:9002", "search:9002/tcp@nomad"],
            },
            keys.MESH_TLS_ALLOW: {
                "type": "string",
                "pattern": _SERVICE_LIST,
                "description": "With mesh.tls.mtls = true only: comma list of service names "
                "(or pure clients' job IDs) whose certificates may call the group; others get "
                "403 (http) or a closed connection (tcp). Default: any mesh certificate.",
                "examples": ["frontend, reports"],
            },
        },
        "additionalProperties": {"type": "string"},
    }


def schemas() -> dict[str, dict[str, Any]]:
    """Every schema file name with its content."""
    return {
        "mesh-meta.schema.json": meta_schema(),
        "mesh-spec.schema.json": MeshSpec.model_json_schema(),
        "mesh-config.schema.json": MeshConfig.model_json_schema(),
        "mesh-status.schema.json": MeshStatus.model_json_schema(),
        "status-report.schema.json": StatusReport.model_json_schema(),
    }


def render(schema: dict[str, Any]) -> str:
    """The exact text committed for a schema."""
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Regenerate every schema file; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all():
        print(written_path)
