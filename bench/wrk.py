"""Run wrk (Debian's 4.1) and read its results, latency percentiles included.

wrk's own ``--latency`` prints four percentiles; the CDF plots need more, so a small Lua
``done`` hook prints the summary and ~60 percentiles as one JSON line, which is what we parse.
Keep-alive is wrk's default; ``close=True`` sends ``Connection: close`` so every request opens
a new TCP (and TLS) connection. wrk does not resume TLS sessions: each is a full handshake.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

PERCENTILES = (
    *(float(p) for p in range(1, 100)),
    99.5,
    99.9,
    99.99,
)

LUA = (
    """
done = function(summary, latency, requests)
  local ps = {PS}
  local out = {}
  for i, p in ipairs(ps) do
    out[#out + 1] = string.format('"%s": %d', tostring(p), latency:percentile(p))
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors": %d, '
    .. '"mean_us": %f, "stdev_us": %f, "max_us": %d, "percentiles_us": {%s}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency.mean, latency.stdev, latency.max, table.concat(out, ", ")))
end
"""
).replace("{PS}", "{" + ", ".join(str(p) for p in PERCENTILES) + "}")


@dataclass(frozen=True)
class Load:
    connections: int
    close: bool  # a new connection per request

    @property
    def name(self) -> str:
        return f"c{self.connections}-{'close' if self.close else 'keepalive'}"


def script(workdir: Path) -> Path:
    path = workdir / "percentiles.lua"
    path.write_text(LUA)
    return path


def run(
    url: str, load: Load, seconds: int, lua: Path, threads: int = 1, cpus: str = ""
) -> dict[str, object]:
    """One wrk run; returns req/s, p50/p99 (us), errors and the percentile table.

    ``cpus`` (a taskset list such as ``"0"``) pins wrk, for studies that give each side its
    own core.
    """
    argv = [
        *(["taskset", "-c", cpus] if cpus else []),
        "wrk",
        f"-t{min(threads, load.connections)}",
        f"-c{load.connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(lua),
    ]
    if load.close:
        argv += ["-H", "Connection: close"]
    out = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout}")
    data = json.loads(line.removeprefix("WRKJSON "))
    pct = {float(k): int(v) for k, v in data["percentiles_us"].items()}
    return {
        "rps": round(data["requests"] / (data["duration_us"] / 1e6), 1),
        "p50_us": pct[50.0],
        "p99_us": pct[99.0],
        "mean_us": round(data["mean_us"], 1),
        "errors": data["errors"],
        "requests": data["requests"],
        "percentiles_us": {str(k): v for k, v in sorted(pct.items())},
    }
