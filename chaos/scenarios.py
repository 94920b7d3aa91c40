"""The scenario table: number, name, invariant (each module's docstring says more), budget."""

from __future__ import annotations

from chaos import (
    s1_stream_drops,
    s2_buffer_overflow,
    s3_nomad_storm,
    s4_vault_sealed,
    s5_consul_pause,
    s6_leader_kill,
    s7_user_race,
    s8_stuck_probe,
    s9_split_brain,
    s10_failed_deploys,
    s11_periodic_children,
)
from chaos.harness import Scenario

SCENARIOS: list[Scenario] = [
    Scenario(
        1,
        "stream dropped every 5 frames for 60s while 50 jobs change",
        "everything converges, one sidecar per group, no user change lost",
        s1_stream_drops.run,
        budget=150,
    ),
    Scenario(
        2,
        "event buffer of 10, burst of 500 changes",
        "a re-LIST catches up; the catch-up time is recorded",
        s2_buffer_overflow.run,
        budget=90,
    ),
    Scenario(
        3,
        "Nomad 503 on 30% of requests + 200ms latency for 20s",
        "bounded calls/s (backoff), errors counted, converges after the storm",
        s3_nomad_storm.run,
        budget=120,
    ),
    Scenario(
        4,
        "OpenBao sealed for 20s, a new meshed job submitted meanwhile",
        "running services keep serving; the new job waits with a reason, then converges",
        s4_vault_sealed.run,
        budget=200,
    ),
    Scenario(
        5,
        "Consul paused for 15s under a Ready meshed service (real nginx, real TLS)",
        "ConsulHealthy Unknown not False, nothing destructive, correct after the resume",
        s5_consul_pause.run,
        budget=180,
    ),
    Scenario(
        6,
        "leader SIGKILLed in the middle of a wave of 100 injections",
        "the standby takes over, every user spec injected exactly once, no update lost",
        s6_leader_kill.run,
        budget=150,
    ),
    Scenario(
        7,
        "user re-registers a hot job every 200ms for 30s",
        "the user's latest spec always survives, sidecar on top, <= 1 write per user write",
        s7_user_race.run,
        budget=90,
    ),
    Scenario(
        8,
        "a meshed sidecar frozen (SIGSTOP): its TLS probes hit a black hole",
        "no other key is blocked, every probe ends within its timeout",
        s8_stuck_probe.run,
        budget=180,
    ),
    Scenario(
        9,
        "split brain: the leader lock forged so two controllers lead",
        "fencing rejects the stale writer (conflicts counted), no job clobbered",
        s9_split_brain.run,
        budget=90,
    ),
    Scenario(
        10,
        "OpenBao refuses leaves past healthy_deadline while two jobs get meshed, with/without "
        "auto_revert",
        "Degraded with Nomad's text (DeploymentFailed / Reverted), bounded writes, Ready after",
        s10_failed_deploys.run,
        budget=300,
    ),
    Scenario(
        11,
        "a periodic meshed job launched 5 times",
        "parent injected once, each child carries the sidecar, 0 controller writes to children",
        s11_periodic_children.run,
        budget=60,
    ),
]
