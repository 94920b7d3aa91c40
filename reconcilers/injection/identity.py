"""PURE: the name a PURE CLIENT's leaf carries — a meshed group that fronts nothing and only
calls upstreams (a batch job, a cron report).

A group that fronts services is named by them (``fronting.service_names``): its leaf is its
identity as a server and as a caller. A pure client registers no service, so its leaf is named
after its job: ``<job ID>.<domain>``. The job ID, not the name: IDs are unique in a namespace
and are what ``nomad job status`` shows; a team lists it in the server's ``mesh.tls.allow``
like a service name. It must be a DNS label (the CN is a DNS name under the mesh domain, and
``allow`` matches labels), so any other job ID is refused with a reason instead of a leaf
Vault would refuse at run time.

``pure_client_name`` is the one definition: the Vault role that binds each job's leaves to its
own names must allow exactly this name for a pure client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crds_equivalent.egress import SERVICE_NAME
from reconcilers.injection import jobview


class BadClientName(ValueError):
    """The job ID cannot name a pure client's leaf."""


def pure_client_name(job_id: str) -> str:
    """The service-like name of a pure client's leaf (lower-cased job ID); raises BadClientName."""
    if not SERVICE_NAME.match(job_id):
        raise BadClientName(
            f"is a pure client (it calls upstreams and fronts no service), so its certificate "
            f"is named after the job ID, and job ID {job_id!r} is not a DNS label (letters, "
            "digits and '-', at most 63, no leading or trailing '-'); rename the job, or give "
            "the group a service to front"
        )
    return job_id.lower()


def pure_client_cn(job: Mapping[str, Any], domain: str) -> str:
    """``<job ID>.<domain>``, the CN of a pure client's leaf; raises BadClientName."""
    return f"{pure_client_name(jobview.job_id(job))}.{domain}"
