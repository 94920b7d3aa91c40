"""Job canonicalisation on register, as Nomad's agent and server apply it.

The api-side ``Canonicalize`` fills defaults (counts, restart/reschedule/update/migrate
policies, template and service defaults, port host networks), the agent converts to the
server struct (dropping request-only fields such as ``Vault.Policies``) and the server
adds implied constraints (Vault version, OS signals, Nomad service discovery, CNI
plugins). The result is the stored job: every key present, in struct order.
"""

from __future__ import annotations

import copy
from typing import Any

from devstack.nomad.codec import NS
from devstack.nomad.shape import shape

MIN = 60 * NS
HOUR = 60 * MIN

DEFAULT_UPDATE = {
    "Stagger": 30 * NS,
    "MaxParallel": 1,
    "HealthCheck": "checks",
    "MinHealthyTime": 10 * NS,
    "HealthyDeadline": 5 * MIN,
    "ProgressDeadline": 10 * MIN,
    "AutoRevert": False,
    "AutoPromote": False,
    "Canary": 0,
}
DEFAULT_MIGRATE = {
    "MaxParallel": 1,
    "HealthCheck": "checks",
    "MinHealthyTime": 10 * NS,
    "HealthyDeadline": 5 * MIN,
}
RESTART = {
    "service": {"Attempts": 2, "Interval": 30 * MIN, "Delay": 15 * NS, "Mode": "fail"},
    "batch": {"Attempts": 3, "Interval": 24 * HOUR, "Delay": 15 * NS, "Mode": "fail"},
}
RESCHEDULE = {
    "service": {
        "Attempts": 0,
        "Interval": 0,
        "Delay": 30 * NS,
        "DelayFunction": "exponential",
        "MaxDelay": HOUR,
        "Unlimited": True,
    },
    "batch": {
        "Attempts": 1,
        "Interval": 24 * HOUR,
        "Delay": 5 * NS,
        "DelayFunction": "constant",
        "MaxDelay": 0,
        "Unlimited": False,
    },
}
SEMVER_CNI = (">= 0.4.0", ("bridge", "firewall", "host-local", "loopback", "portmap"))
# Fields that say nothing about the spec; SpecChanged ignores them.
NON_SPEC = (
    "Status",
    "StatusDescription",
    "Stable",
    "Version",
    "SubmitTime",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "VersionTag",
)


def _merge(default: dict[str, Any] | None, given: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(default or {})
    out.update({k: v for k, v in (given or {}).items() if v is not None})
    return out


def canonicalize_job(api_job: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Turn a decoded api.Job into the stored structs.Job (no status/index fields set)."""
    job = copy.deepcopy(api_job)
    job["Namespace"] = namespace
    job.setdefault("Name", job.get("ID", ""))
    job.setdefault("Region", "global")
    job.setdefault("Type", "service")
    job.setdefault("Priority", 50)
    job.setdefault("NodePool", "default")
    if not job.get("Datacenters"):
        job["Datacenters"] = ["*"]
    jtype = job["Type"]
    if job.get("Periodic") is not None:
        job["Periodic"] = _merge(
            {"Enabled": True, "SpecType": "cron", "ProhibitOverlap": False, "TimeZone": "UTC"},
            job["Periodic"],
        )
    # ApiJobToStructJob copies neither ParentID, Dispatched nor DispatchIdempotencyToken:
    # only the leader sets them (periodic.go deriveJob, job_endpoint.go Dispatch).
    for server_only in ("ParentID", "Dispatched", "DispatchIdempotencyToken"):
        job.pop(server_only, None)
    if job.get("ParameterizedJob") is not None:  # ParameterizedJobConfig.Canonicalize
        job["ParameterizedJob"] = _merge({"Payload": "optional"}, job["ParameterizedJob"])
        if not job["ParameterizedJob"]["Payload"]:
            job["ParameterizedJob"]["Payload"] = "optional"
    job_update = job.get("Update")
    if job_update is None and jtype == "service":
        job_update = dict(DEFAULT_UPDATE)
    elif job_update is not None:
        job_update = _merge(DEFAULT_UPDATE, job_update)
    groups = []
    for tg in job.get("TaskGroups") or []:
        if tg is not None:
            groups.append(_canon_group(job, tg, job_update))
    job["TaskGroups"] = groups
    if job_update is not None:
        job["Update"] = {"Stagger": job_update["Stagger"], "MaxParallel": job_update["MaxParallel"]}
    for gone in ("Reschedule", "Migrate", "ConsulToken", "VaultToken"):
        job.pop(gone, None)
    _implied_constraints(job)
    return shape("Job", job)


def _canon_group(
    job: dict[str, Any], tg: dict[str, Any], job_update: dict[str, Any] | None
) -> dict[str, Any]:
    jtype = job["Type"]
    kind = "batch" if jtype in ("batch", "sysbatch") else "service"
    if tg.get("Count") is None:
        scaling_min = (tg.get("Scaling") or {}).get("Min")
        tg["Count"] = int(scaling_min) if scaling_min is not None else 1
    tg["EphemeralDisk"] = _merge(
        {"Sticky": False, "SizeMB": 300, "Migrate": False}, tg.get("EphemeralDisk")
    )
    if job_update is not None and tg.get("Update") is not None:
        tg["Update"] = _merge(job_update, tg["Update"])
    elif job_update is not None:
        tg["Update"] = dict(job_update)
    elif tg.get("Update") is not None:
        tg["Update"] = _merge(DEFAULT_UPDATE, tg["Update"])
    if jtype in ("service", "batch"):
        tg["ReschedulePolicy"] = _merge(
            _merge(RESCHEDULE[kind], job.get("Reschedule")), tg.get("ReschedulePolicy")
        )
    if jtype == "service":
        tg["Migrate"] = _merge(_merge(DEFAULT_MIGRATE, job.get("Migrate")), tg.get("Migrate"))
    else:
        tg.pop("Migrate", None)
    tg["RestartPolicy"] = _merge(RESTART[kind], tg.get("RestartPolicy"))
    tg["RestartPolicy"].setdefault("RenderTemplates", False)
    tg["Consul"] = _merge(
        {"Namespace": "", "Cluster": "default", "Partition": ""}, tg.get("Consul")
    )
    tg["Networks"] = [_canon_network(n) for n in tg.get("Networks") or []] or None
    tg["Services"] = [
        _canon_service(s, job, tg.get("Name", ""), None) for s in tg.get("Services") or []
    ] or None
    tg["Tasks"] = [_canon_task(t, tg, job) for t in tg.get("Tasks") or [] if t is not None]
    return tg


def _canon_network(net: dict[str, Any]) -> dict[str, Any]:
    out = dict(net)
    for key in ("ReservedPorts", "DynamicPorts"):
        ports = []
        for port in out.get(key) or []:
            p = dict(port)
            if not p.get("HostNetwork"):
                p["HostNetwork"] = "default"
            ports.append(p)
        out[key] = ports or None
    return out


def _canon_task(task: dict[str, Any], tg: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    res = dict(task.get("Resources") or {})
    if res.get("Cores"):
        res.setdefault("CPU", 0)
    res.setdefault("CPU", 100)
    res.setdefault("MemoryMB", 300)
    res["Networks"] = [_canon_network(n) for n in res.get("Networks") or []] or None
    task["Resources"] = res
    task.setdefault("KillTimeout", 5 * NS)
    task["LogConfig"] = _merge(
        {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": False}, task.get("LogConfig")
    )
    task["RestartPolicy"] = _merge(tg["RestartPolicy"], task.get("RestartPolicy"))
    life = task.get("Lifecycle")
    if life is not None and not life.get("Hook"):
        task["Lifecycle"] = None
    if task.get("Templates"):
        task["Templates"] = [_canon_template(t) for t in task["Templates"] if t is not None]
    if task.get("Vault") is not None:
        vault = _merge(
            {
                "Role": "",
                "Namespace": "",
                "Cluster": "default",
                "Env": True,
                "DisableFile": False,
                "ChangeMode": "restart",
                "ChangeSignal": "SIGHUP",
                "AllowTokenExpiration": False,
            },
            task["Vault"],
        )
        vault.pop("Policies", None)
        vault["ChangeSignal"] = vault["ChangeSignal"].upper()
        task["Vault"] = vault
    task["Services"] = [
        _canon_service(s, job, tg.get("Name", ""), task.get("Name", ""))
        for s in task.get("Services") or []
    ] or None
    if task.get("Identity") is None:
        task["Identity"] = {"Name": "default", "Audience": ["nomadproject.io"]}
    return task


def _canon_template(tmpl: dict[str, Any]) -> dict[str, Any]:
    t = dict(tmpl)
    t.setdefault("ChangeMode", "restart")
    if t["ChangeMode"] == "signal" and not t.get("ChangeSignal"):
        t["ChangeSignal"] = "SIGHUP"
    t["ChangeSignal"] = (t.get("ChangeSignal") or "").upper()
    t.setdefault("Splay", 5 * NS)
    t.setdefault("Perms", "0644")
    t.setdefault("LeftDelim", "{{")
    t.setdefault("RightDelim", "}}")
    t.setdefault("VaultGrace", 0)
    if t.get("ChangeScript") is not None:
        t["ChangeScript"] = _merge({"Timeout": 5 * NS, "FailOnError": False}, t["ChangeScript"])
    return t


def _canon_service(
    svc: dict[str, Any], job: dict[str, Any], group: str, task: str | None
) -> dict[str, Any]:
    s = dict(svc)
    if not s.get("Name"):
        parts = [job.get("Name") or job.get("ID", ""), group] + ([task] if task else [])
        s["Name"] = "-".join(parts)
    if not s.get("AddressMode"):
        s["AddressMode"] = "auto"
    if not s.get("OnUpdate"):
        s["OnUpdate"] = "require_healthy"
    if not s.get("Provider"):
        s["Provider"] = "consul"
    if not s.get("Cluster"):
        s["Cluster"] = "default"
    if task:
        s["TaskName"] = task
    s["Namespace"] = job["Namespace"]
    svc_restart = s.pop("CheckRestart", None)
    checks = []
    for chk in s.get("Checks") or []:
        c = dict(chk)
        c.pop("Advertise", None)
        if not c.get("Name"):
            c["Name"] = f'service: "{s["Name"]}" check'
        if not c.get("OnUpdate"):
            c["OnUpdate"] = s["OnUpdate"]
        if svc_restart is not None:
            c["CheckRestart"] = _merge(svc_restart, c.get("CheckRestart"))
        checks.append(c)
    s["Checks"] = checks or None
    return s


def _implied_constraints(job: dict[str, Any]) -> None:
    for tg in job["TaskGroups"]:
        implied: list[dict[str, str]] = []
        tasks = tg.get("Tasks") or []
        if any(t.get("Vault") for t in tasks):
            implied.append(_c("${attr.vault.version}", ">= 0.6.1", "semver"))
        services = list(tg.get("Services") or []) + [
            s for t in tasks for s in (t.get("Services") or [])
        ]
        if any(s.get("Provider") == "nomad" for s in services):
            implied.append(_c("${attr.nomad.service_discovery}", "true", "="))
        signals: set[str] = set()
        for t in tasks:
            vault = t.get("Vault") or {}
            if vault.get("ChangeMode") == "signal":
                signals.add(vault["ChangeSignal"])
            for tmpl in t.get("Templates") or []:
                if tmpl.get("ChangeMode") == "signal":
                    signals.add(tmpl["ChangeSignal"])
            if t.get("KillSignal"):
                signals.add(t["KillSignal"])
        if signals:
            implied.append(_c("${attr.os.signals}", ",".join(sorted(signals)), "set_contains"))
        if any((n or {}).get("Mode") == "bridge" for n in tg.get("Networks") or []):
            version, plugins = SEMVER_CNI
            for plugin in plugins:
                implied.append(_c(f"${{attr.plugins.cni.version.{plugin}}}", version, "semver"))
        existing = list(tg.get("Constraints") or [])
        for con in implied:
            if con not in existing:
                existing.append(con)
        tg["Constraints"] = existing or None


def _c(ltarget: str, rtarget: str, operand: str) -> dict[str, str]:
    return {"LTarget": ltarget, "RTarget": rtarget, "Operand": operand}


def spec_of(job: dict[str, Any]) -> dict[str, Any]:
    """The part of a stored job that decides whether a register is a new version."""
    return {k: v for k, v in job.items() if k not in NON_SPEC}
