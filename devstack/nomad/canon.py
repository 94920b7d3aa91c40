"""Job canonicalisation on register, as Nomad's agent and server apply it.

The api-side ``Canonicalize`` fills defaults (counts, restart/reschedule/update/migrate
policies, template and service defaults, port host networks), the agent converts to the
server struct (dropping request-only fields such as ``Vault.Policies``) and the server
adds implied constraints (Vault version, OS signals, Nomad service discovery, CNI
plugins). The result is the stored job: every key present, in struct order.
"""

from __future__ import annotations

import copy
import re
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
)  # structs.Job.SpecChanged: VersionTag is spec, so a changed tag alone is a new version


def _merge(default: dict[str, Any] | None, given: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(default or {})
    out.update({k: v for k, v in (given or {}).items() if v is not None})
    return out


def canonicalize_job(
    api_job: dict[str, Any],
    namespace: str,
    vault_default_identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Turn a decoded api.Job into the stored structs.Job (no status/index fields set).

    The server mutators run in ``Job`` endpoint order (job_endpoint.go ``NewJobEndpoints``):
    canonicalize, implied constraints, implicit identities. ``vault_default_identity`` is
    the server's ``vault { default_identity {...} }`` (a WorkloadIdentity without Name).
    """
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
    _implicit_identities(job, vault_default_identity)
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
    else:
        task["Identity"] = _canon_identity(task["Identity"])
    if task.get("Identities"):
        task["Identities"] = [_canon_identity(w) for w in task["Identities"]]
    return task


def _canon_identity(wid: dict[str, Any]) -> dict[str, Any]:
    """structs.WorkloadIdentity.Canonicalize: Name defaults to "default", whose audience is
    always nomadproject.io; ChangeSignal upper-cased."""
    out = dict(wid)
    if not out.get("Name"):
        out["Name"] = "default"
    if out["Name"] == "default":
        out["Audience"] = ["nomadproject.io"]
    if out.get("ChangeSignal"):
        out["ChangeSignal"] = str(out["ChangeSignal"]).upper()
    return out


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
    """api/services.go ``Service.Canonicalize`` then structs/services.go ``Service.Canonicalize``.

    The server half resolves ``${JOB}``, ``${TASKGROUP}``, ``${TASK}`` and ``${BASE}`` in the
    name (TaskGroup.Canonicalize passes ``task = "group"`` for group services, so a group
    service's ``${BASE}`` is ``<job>-<group>-group``), names checks after the resolved name,
    and sets ``Namespace`` to Consul's ``default`` for Consul services (the job namespace
    only for Nomad services): Consul answers ``default`` either way.
    """
    s = dict(svc)
    job_name = job.get("Name") or job.get("ID", "")
    if not s.get("Name"):
        s["Name"] = "-".join([job_name, group] + ([task] if task else []))
    if not s.get("AddressMode"):
        s["AddressMode"] = "auto"
    if not s.get("OnUpdate"):
        s["OnUpdate"] = "require_healthy"
    if not s.get("Provider"):
        s["Provider"] = "consul"
    if not s.get("Cluster"):
        s["Cluster"] = "default"
    svc_restart = s.pop("CheckRestart", None)
    # structs.Service.Canonicalize(job.Name, tg.Name, task or "group", job.Namespace)
    task_arg = task or "group"
    if not s.get("TaskName") and task_arg != "group":
        s["TaskName"] = task_arg
    s["Name"] = replace_env(
        s["Name"],
        {
            "JOB": job_name,
            "TASKGROUP": group,
            "TASK": task_arg,
            "BASE": f"{job_name}-{group}-{task_arg}",
        },
    )
    checks = []
    for chk in s.get("Checks") or []:
        c = dict(chk)
        c.pop("Advertise", None)
        if svc_restart is not None:
            c["CheckRestart"] = _merge(svc_restart, c.get("CheckRestart"))
        if not c.get("OnUpdate"):  # api: "Inhert Service"
            c["OnUpdate"] = s["OnUpdate"]
        # structs.ServiceCheck.Canonicalize(s.Name, s.TaskName)
        if not c.get("Name"):
            c["Name"] = f'service: "{s["Name"]}" check'
        if not c.get("TaskName") and (s.get("TaskName") or "") != "group":
            c["TaskName"] = s.get("TaskName") or ""
        checks.append(c)
    s["Checks"] = checks or None
    if not s.get("Namespace") and s["Provider"] == "consul":
        s["Namespace"] = "default"
    elif s["Provider"] == "nomad":
        s["Namespace"] = job["Namespace"]
    return s


_ENV_REF = re.compile(r"\$\{[a-zA-Z0-9_\-\.]+\}")


def replace_env(arg: str, env: dict[str, str]) -> str:
    """helper/args ``ReplaceEnv``: known ``${KEY}`` references replaced, others kept."""
    return _ENV_REF.sub(lambda m: env.get(m.group(0)[2:-1], m.group(0)), arg)


def _implied_constraints(job: dict[str, Any]) -> None:
    """nomad/job_endpoint_hooks.go ``jobImpliedConstraints.Mutate`` (v1.8-v1.10).

    Per group, in the source's order: Vault (per Vault task, sorted by task name, matched
    on LTarget only, so a user constraint on ``${attr.vault.version}`` wins), signals (the
    group's tasks' required signals, sorted, matched in full), Nomad service discovery
    (full), its checks (full), Consul service discovery (LTarget; group services on the
    group, task services on the task since 1.8), CNI plugins for bridge groups (LTarget).
    Matching means a re-register of the stored job adds nothing twice.
    """
    for tg in job["TaskGroups"]:
        tasks = tg.get("Tasks") or []
        for task in sorted((t for t in tasks if t.get("Vault")), key=lambda t: t["Name"]):
            _mutate(tg, _vault_constraint(task["Vault"]), left=True)
        signals: set[str] = set()
        for t in tasks:  # structs.Job.RequiredSignals
            vault = t.get("Vault") or {}
            if vault.get("ChangeMode") == "signal":
                signals.add(vault.get("ChangeSignal") or "")
            if t.get("KillSignal"):
                signals.add(t["KillSignal"])
            for tmpl in t.get("Templates") or []:
                if tmpl.get("ChangeMode") == "signal":
                    signals.add(tmpl.get("ChangeSignal") or "")
        if signals:  # job_endpoint.go getSignalConstraint
            _mutate(tg, _c("${attr.os.signals}", ",".join(sorted(signals)), "set_contains"))
        group_svcs = list(tg.get("Services") or [])
        all_svcs = group_svcs + [s for t in tasks for s in (t.get("Services") or [])]
        nomad_svcs = [s for s in all_svcs if s.get("Provider") == "nomad"]
        if nomad_svcs:
            _mutate(tg, _c("${attr.nomad.service_discovery}", "true", "="))
        if any(s.get("Checks") for s in nomad_svcs):
            _mutate(tg, _c("${attr.nomad.version}", ">= 1.4.0", "semver"))
        if any(_is_consul(s) for s in all_svcs):
            for svc in group_svcs:
                if _is_consul(svc):
                    _mutate(tg, _consul_constraint(svc), left=True)
            for t in tasks:
                for svc in t.get("Services") or []:
                    if _is_consul(svc):
                        _mutate(t, _consul_constraint(svc), left=True)
        if any((n or {}).get("Mode") == "bridge" for n in tg.get("Networks") or []):
            version, plugins = SEMVER_CNI
            for plugin in plugins:
                _mutate(tg, _c(f"${{attr.plugins.cni.version.{plugin}}}", version, "semver"), True)


def _is_consul(svc: dict[str, Any]) -> bool:
    return svc.get("Provider") in ("consul", "", None)  # structs.Service.IsConsul


def _vault_constraint(vault: dict[str, Any]) -> dict[str, str]:
    """job_endpoint_hooks.go ``vaultConstraintFn``."""
    cluster = vault.get("Cluster") or ""
    if cluster not in ("default", ""):
        return _c(f"${{attr.vault.{cluster}.version}}", ">= 1.11.0", "semver")
    return _c("${attr.vault.version}", ">= 0.6.1", "semver")


def _consul_constraint(svc: dict[str, Any]) -> dict[str, str]:
    """job_endpoint_hooks.go ``consulConstraintFn``."""
    cluster = svc.get("Cluster") or ""
    if cluster not in ("default", ""):
        return _c(f"${{attr.consul.{cluster}.version}}", ">= 1.8.0", "semver")
    return _c("${attr.consul.version}", ">= 1.8.0", "semver")


def _mutate(owner: dict[str, Any], con: dict[str, str], left: bool = False) -> None:
    """job_endpoint_hooks.go ``mutateConstraint``: constraintMatcherLeft compares LTarget
    only, constraintMatcherFull the whole constraint; append when nothing matches."""
    existing = list(owner.get("Constraints") or [])
    if left:
        found = any(c.get("LTarget") == con["LTarget"] for c in existing)
    else:
        found = any(_same(c, con) for c in existing)
    if not found:
        existing.append(con)
    owner["Constraints"] = existing or None


def _same(a: dict[str, Any], b: dict[str, str]) -> bool:
    return all((a.get(k) or "") == b[k] for k in ("LTarget", "RTarget", "Operand"))


IDENTITY_CLIENT_VERSION = ("${attr.nomad.version}", ">= 1.7.0-a", "semver")


def _implicit_identities(
    job: dict[str, Any], vault_default_identity: dict[str, Any] | None
) -> None:
    """nomad/job_endpoint_hook_implicit_identities.go ``jobImplicitIdentitiesHook.Mutate``.

    A task with a Vault block and no ``vault_<cluster>`` identity gets the server's
    ``vault.default_identity`` (when configured: ``handleVault``). A group whose services
    carry an identity, or whose tasks have any ``Identities``, gets
    ``${attr.nomad.version} semver >= 1.7.0-a`` *appended* — no match, no dedupe — so
    every register of the stored job adds one more copy. The Consul identities
    (``consul.service_identity`` / ``task_identity``) are not configurable in the twin.
    """
    for tg in job["TaskGroups"]:
        has_identity = any(s.get("Identity") for s in tg.get("Services") or [])
        for t in tg.get("Tasks") or []:
            has_identity = has_identity or any(s.get("Identity") for s in t.get("Services") or [])
            vault = t.get("Vault")
            if vault is not None and vault_default_identity is not None:
                name = "vault_" + (vault.get("Cluster") or "")  # structs.Vault.IdentityName
                ids = list(t.get("Identities") or [])
                if not any(i.get("Name") == name for i in ids):
                    ids.append({**copy.deepcopy(vault_default_identity), "Name": name})
                    t["Identities"] = ids
            has_identity = has_identity or bool(t.get("Identities"))
        if has_identity:
            tg["Constraints"] = [*(tg.get("Constraints") or []), _c(*IDENTITY_CLIENT_VERSION)]


def _c(ltarget: str, rtarget: str, operand: str) -> dict[str, str]:
    return {"LTarget": ltarget, "RTarget": rtarget, "Operand": operand}


def spec_of(job: dict[str, Any]) -> dict[str, Any]:
    """The part of a stored job that decides whether a register is a new version."""
    return {k: v for k, v in job.items() if k not in NON_SPEC}
