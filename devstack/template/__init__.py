"""A consul-template subset renderer for the devstack executor (Go text/template, pkiCert,
secret, service, nomadVar...).

Entry points: `render`/`render_sync` for template text, `render_nomad_template` for a Nomad
Template block (DestPath, Perms, delimiters), `task_env` for the environment Nomad gives a task.
"""

from devstack.template.context import (
    Dependency,
    NomadTarget,
    RenderContext,
    RenderResult,
    VaultTarget,
)
from devstack.template.errors import MissingDependency, TemplateError, UnsupportedError
from devstack.template.files import write_atomic
from devstack.template.nomad import (
    NOMAD_FUNCTION_DENYLIST,
    PortMapping,
    TemplateOutcome,
    interpolate,
    render_nomad_template,
    render_nomad_template_async,
    task_env,
)
from devstack.template.render import render, render_sync

__all__ = [
    "NOMAD_FUNCTION_DENYLIST",
    "Dependency",
    "MissingDependency",
    "NomadTarget",
    "PortMapping",
    "RenderContext",
    "RenderResult",
    "TemplateError",
    "TemplateOutcome",
    "UnsupportedError",
    "VaultTarget",
    "interpolate",
    "render",
    "render_nomad_template",
    "render_nomad_template_async",
    "render_sync",
    "task_env",
    "write_atomic",
]
