"""Nomad job struct field tables, as data.

One table per Go struct: field names in declaration order with a compact kind code.
The same tables drive request decoding (case-insensitive keys, unknown fields dropped,
Go's type errors) and response shaping (every key present, in struct order, zero values
filled). Kinds: s string, i int, b bool, d duration ns, pd *duration, pi *int, pb *bool,
f float, ms map[string]string, any raw JSON, ls []string, b64 []byte, @X *X, !X X value,
[X []*X, {X map[string]*X.
"""

from __future__ import annotations

from typing import Final

_F = dict[str, str]


def _t(spec: str) -> _F:
    out: _F = {}
    for part in spec.split():
        name, _, kind = part.partition(":")
        out[name] = kind or "s"
    return out


STRUCTS: Final[dict[str, _F]] = {
    "Job": _t(
        "Stop:b Region Namespace ID ParentID Name Type Priority:i AllAtOnce:b Datacenters:ls "
        "NodePool Constraints:[Constraint Affinities:[Affinity Spreads:[Spread "
        "TaskGroups:[TaskGroup Update:!UpdateStrategy Multiregion:any Periodic:@PeriodicConfig "
        "ParameterizedJob:@ParameterizedJobConfig Dispatched:b DispatchIdempotencyToken "
        "Payload:b64 Meta:ms ConsulNamespace VaultNamespace NomadTokenID Status "
        "StatusDescription Stable:b Version:i SubmitTime:i CreateIndex:i ModifyIndex:i "
        "JobModifyIndex:i UI:any VersionTag:@JobVersionTag"
    ),
    "TaskGroup": _t(
        "Name Count:i Update:@UpdateStrategy Migrate:@MigrateStrategy Constraints:[Constraint "
        "Scaling:any RestartPolicy:@RestartPolicy Disconnect:@DisconnectStrategy Tasks:[Task "
        "EphemeralDisk:@EphemeralDisk Meta:ms ReschedulePolicy:@ReschedulePolicy "
        "Affinities:[Affinity Spreads:[Spread Networks:[NetworkResource Consul:@Consul "
        "Services:[Service Volumes:any ShutdownDelay:pd MaxRunDuration:pd "
        "StopAfterClientDisconnect:pd MaxClientDisconnect:pd PreventRescheduleOnLost:b"
    ),
    "Task": _t(
        "Name Driver User Config:any Env:ms Services:[Service Vault:@Vault Secrets:any "
        "Consul:@Consul Templates:[Template Constraints:[Constraint Affinities:[Affinity "
        "Resources:@Resources RestartPolicy:@RestartPolicy DispatchPayload:any "
        "Lifecycle:@TaskLifecycleConfig Meta:ms KillTimeout:d LogConfig:@LogConfig "
        "Artifacts:any Leader:b ShutdownDelay:d VolumeMounts:any ScalingPolicies:any "
        "KillSignal Kind CSIPluginConfig:any Identity:@WorkloadIdentity "
        "Identities:[WorkloadIdentity Actions:any Schedule:any"
    ),
    "Template": _t(
        "SourcePath DestPath EmbeddedTmpl ChangeMode ChangeSignal ChangeScript:@ChangeScript "
        "Once:b Splay:d Perms Uid:pi Gid:pi LeftDelim RightDelim Envvars:b VaultGrace:d "
        "Wait:@WaitConfig ErrMissingKey:b"
    ),
    "ChangeScript": _t("Command Args:ls Timeout:d FailOnError:b RunOnFirstRender:b"),
    "WaitConfig": _t("Min:pd Max:pd"),
    "Service": _t(
        "Name TaskName PortLabel AddressMode Address EnableTagOverride:b Tags:ls CanaryTags:ls "
        "Checks:[ServiceCheck Connect:any Meta:ms CanaryMeta:ms Weights:any TaggedAddresses:ms "
        "Namespace OnUpdate Provider Cluster Identity:@WorkloadIdentity Kind"
    ),
    "ServiceCheck": _t(
        "Name Type Command Args:ls Path Protocol PortLabel Expose:b AddressMode Interval:d "
        "Timeout:d InitialStatus Notes TLSServerName TLSSkipVerify:b Method Header:any "
        "CheckRestart:@CheckRestart GRPCService GRPCUseTLS:b TaskName SuccessBeforePassing:i "
        "FailuresBeforeCritical:i FailuresBeforeWarning:i Body OnUpdate"
    ),
    "CheckRestart": _t("Limit:i Grace:d IgnoreWarnings:b"),
    "Vault": _t(
        "Role Namespace Cluster Env:b DisableFile:b ChangeMode ChangeSignal AllowTokenExpiration:b"
    ),
    "WorkloadIdentity": _t(
        "Name Audience:ls ChangeMode ChangeSignal Env:b File:b Filepath ServiceName TTL:d "
        "ExtraClaims:any"
    ),
    "NetworkResource": _t(
        "Mode Device CIDR IP Hostname MBits:i DNS:@DNSConfig ReservedPorts:[Port "
        "DynamicPorts:[Port CNI:any"
    ),
    "Port": _t("Label Value:i To:i HostNetwork IgnoreCollision:b"),
    "DNSConfig": _t("Servers:ls Searches:ls Options:ls"),
    "Resources": _t(
        "CPU:i Cores:i MemoryMB:i MemoryMaxMB:i DiskMB:i IOPS:i Networks:[NetworkResource "
        "Devices:any NUMA:any SecretsMB:i"
    ),
    "TaskLifecycleConfig": _t("Hook Sidecar:b"),
    "RestartPolicy": _t("Attempts:i Interval:d Delay:d Mode RenderTemplates:b"),
    "ReschedulePolicy": _t("Attempts:i Interval:d Delay:d DelayFunction MaxDelay:d Unlimited:b"),
    "UpdateStrategy": _t(
        "Stagger:d MaxParallel:i HealthCheck MinHealthyTime:d HealthyDeadline:d "
        "ProgressDeadline:d AutoRevert:b AutoPromote:b Canary:i"
    ),
    "MigrateStrategy": _t("MaxParallel:i HealthCheck MinHealthyTime:d HealthyDeadline:d"),
    "DisconnectStrategy": _t("LostAfter:d Replace:pb Reconcile StopOnClientAfter:pd"),
    "EphemeralDisk": _t("Sticky:b SizeMB:i Migrate:b"),
    "LogConfig": _t("MaxFiles:i MaxFileSizeMB:i Disabled:b"),
    "Constraint": _t("LTarget RTarget Operand"),
    "Affinity": _t("LTarget RTarget Operand Weight:i"),
    "Spread": _t("Attribute Weight:i SpreadTarget:any"),
    "Consul": _t("Namespace Cluster Partition"),
    "JobVersionTag": _t("Name Description TaggedTime:i"),
    "PeriodicConfig": _t("Enabled:b Spec Specs:ls SpecType ProhibitOverlap:b TimeZone"),
    "ParameterizedJobConfig": _t("Payload MetaRequired:ls MetaOptional:ls"),
}

# Fields the request (api.*) structs accept that the server structs do not keep.
REQUEST_ONLY: Final[dict[str, _F]] = {
    "Job": _t("Reschedule:@ReschedulePolicy Migrate:@MigrateStrategy ConsulToken VaultToken"),
    "Service": _t("CheckRestart:@CheckRestart"),
    "ServiceCheck": _t("Advertise"),
    "Vault": _t("Policies:ls"),
}

# Structs whose every zero field is omitted on the wire (codec `_struct omitempty`).
OMITEMPTY: Final[frozenset[str]] = frozenset({"NetworkResource", "Port"})

GO_TYPES: Final[dict[str, str]] = {
    "s": "string",
    "i": "int",
    "pi": "int",
    "b": "bool",
    "pb": "bool",
    "d": "time.Duration",
    "pd": "time.Duration",
    "f": "float64",
    "ms": "map[string]string",
    "ls": "[]string",
    "b64": "[]uint8",
}


def request_fields(struct: str) -> _F:
    fields = dict(STRUCTS[struct])
    fields.update(REQUEST_ONLY.get(struct, {}))
    return fields
