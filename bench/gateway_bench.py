"""The gateway's hot path against nginx and the bare upstream, interleaved in one run.

Upstream pinned to CPU 0, nginx and the gateway to CPU 1, wrk from a third process:
req/s at 32 connections, p50/p99 at 32 and at 1 connection, proxy CPU per request. The
gateway runs twice: tracing on without an exporter (spans made, ids propagated, nothing
exported) and tracing with OTLP/HTTP export to a local receiver (the production shape).
Both write one JSON access line per request and run the real edge auth (JWKS + EdDSA token).
Run: .venv/bin/python -m bench.gateway_bench [--seconds 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "bench" / "nginx.conf"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if shutil.which("taskset") else argv


def wait_http(url: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float | None


@dataclass
class Target:
    name: str
    url: str
    pid: int | None  # the proxy process whose CPU is counted (None: the upstream alone)
    samples: dict[int, list[Sample]] = field(default_factory=dict)
    requests: int = 0  # every request wrk sent it, warm-up included


class OtlpReceiver:
    """A local OTLP/HTTP trace endpoint that decodes what it gets and counts the spans."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        receiver = self
        self.spans = 0
        self.batches = 0
        self.services: set[str] = set()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    for attribute in resource_spans.resource.attributes:
                        if attribute.key == "service.name":
                            receiver.services.add(attribute.value.string_value)
                    for scope_spans in resource_spans.scope_spans:
                        receiver.spans += len(scope_spans.spans)
                receiver.batches += 1
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

        def serve() -> None:
            # Decoding is the receiver's work, not the gateway's: keep it off the gateway's
            # CPU (handler threads inherit this thread's affinity).
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, {0})
            self.server.serve_forever()

        threading.Thread(target=serve, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()


def wrk(
    url: str, connections: int, seconds: float, token: str | None
) -> tuple[float, float, float, int]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", url]
    if token:
        argv[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * UNITS[m.group(2)]

    return rps, pct("50"), pct("99"), total


def measure(target: Target, connections: int, seconds: float, token: str | None) -> Sample:
    proc = psutil.Process(target.pid) if target.pid else None
    before = sum(proc.cpu_times()[:2]) if proc else 0.0
    rps, p50, p99, total = wrk(target.url, connections, seconds, token)
    target.requests += total
    cpu = None
    if proc:
        cpu = (sum(proc.cpu_times()[:2]) - before) / max(total, 1) * 1e6
    return Sample(rps, p50, p99, cpu)


def median(samples: list[Sample]) -> Sample:
    def med(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    return Sample(
        med([s.rps for s in samples]) or 0.0,
        med([s.p50_ms for s in samples]) or 0.0,
        med([s.p99_ms for s in samples]) or 0.0,
        med([s.cpu_us_per_req for s in samples]),
    )


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], env: dict[str, str] | None = None, log: str = "") -> int:
        out = open(self.tmp / log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc.pid

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(seconds: float = 8.0, rounds: int = 3) -> dict[str, Any]:
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is not installed (make bench installs it with apt)")
    tmp = Path(tempfile.mkdtemp(prefix="intellipost-bench-"))
    bench = Bench(tmp)
    try:
        return _run(bench, tmp, seconds, rounds)
    finally:
        bench.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _run(bench: Bench, tmp: Path, seconds: float, rounds: int) -> dict[str, Any]:
    py = sys.executable
    up_port, nginx_port = free_port(), free_port()
    bench.spawn(
        pinned(0, [py, "-m", "uvicorn", "bench.upstream:app", "--port", str(up_port),
                   "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                   "--log-level", "warning"]),
    )  # fmt: skip
    upstream_url = f"http://127.0.0.1:{up_port}"
    wait_http(upstream_url + "/")

    conf = NGINX_CONF.read_text().format(tmp=tmp, port=nginx_port, upstream_port=up_port)
    (tmp / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    nginx_pid = bench.spawn(pinned(1, [nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf")]))
    wait_http(f"http://127.0.0.1:{nginx_port}/")

    issuer = _issuer()
    otlp = OtlpReceiver()
    token = issuer["token"]
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("INTELLIPOST_", "OTEL_"))},
        "INTELLIPOST_ENV_FILE": str(tmp / "none.env"),
        "INTELLIPOST_VAR_DIR": str(tmp / "var"),
        "INTELLIPOST_GATEWAY_USER_URL": upstream_url,
        "INTELLIPOST_LOG_FORMAT": "json",
        "INTELLIPOST_LOG_LEVEL": "INFO",
        "INTELLIPOST_JWKS_URL": issuer["jwks_url"],
        # The limiter runs (its cost is measured) but never refuses the load generator.
        "INTELLIPOST_GATEWAY_RATE_LIMIT_PER_MINUTE": "1000000000",
        "INTELLIPOST_GATEWAY_RATE_LIMIT_BURST": "100000000",
        # As in the container image: every line is written out when it is logged.
        "PYTHONUNBUFFERED": "1",
    }
    gateways = {
        "gateway": {},
        # The same without the per-caller rate limit: the difference is what the limit costs.
        "gateway, no rate limit": {"INTELLIPOST_GATEWAY_RATE_LIMIT_PER_MINUTE": "0"},
        "gateway + OTLP export": {"INTELLIPOST_OTEL_EXPORTER_ENDPOINT": otlp.endpoint},
    }
    targets = [
        Target("upstream direct", upstream_url + "/api/v1/users/bench", None),
        Target("nginx", f"http://127.0.0.1:{nginx_port}/api/v1/users/bench", nginx_pid),
    ]
    logs: dict[str, Path] = {}
    for name, extra in gateways.items():
        port = free_port()
        log = f"{name.split()[0]}-{len(logs)}.log"
        env = {**base_env, **extra, "INTELLIPOST_GATEWAY_PORT": str(port)}
        pid = bench.spawn(pinned(1, [py, "-m", "intellipost.gateway"]), env, log=log)
        url = f"http://127.0.0.1:{port}/api/v1/users/bench"
        wait_http(url, headers={"Authorization": f"Bearer {token}"})
        _check_traced(url, token)
        targets.append(Target(name, url, pid))
        logs[name] = tmp / log

    for target in targets:  # warm up pools, caches and the JIT-less interpreter alike
        target.requests += wrk(target.url, 32, 2, token)[3]
    load_before = os.getloadavg()
    for connections in (32, 1):
        for _ in range(rounds):
            for target in targets:
                sample = measure(target, connections, seconds, token)
                target.samples.setdefault(connections, []).append(sample)
    load_after = os.getloadavg()
    bench.close()  # flushes the exporter's last batch and the logs

    result: dict[str, Any] = {
        "seconds": seconds,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "targets": {},
        "gateways": {},
    }
    for target in targets:
        result["targets"][target.name] = {
            c: median(samples).__dict__ for c, samples in target.samples.items()
        }
    t = result["targets"]
    direct, nginx = t["upstream direct"], t["nginx"]
    result["nginx_added_p50_ms_1c"] = nginx[1]["p50_ms"] - direct[1]["p50_ms"]
    for target in targets:
        if target.name not in gateways:
            continue
        lines = logs[target.name].read_text(errors="replace").splitlines()
        result["gateways"][target.name] = {
            "vs_nginx_rps_32c": t[target.name][32]["rps"] / nginx[32]["rps"],
            "added_p50_ms_1c": t[target.name][1]["p50_ms"] - direct[1]["p50_ms"],
            "requests": target.requests,
            "access_lines": sum(1 for line in lines if '"event_type":"access"' in line),
        }
    result["otlp_spans"] = otlp.spans
    result["otlp_batches"] = otlp.batches
    result["otlp_services"] = sorted(otlp.services)
    otlp.close()
    issuer["server"].shutdown()
    return result


def _check_traced(url: str, token: str) -> None:
    """The gateway continues an incoming trace and says so (or the numbers mean nothing)."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = httpx.get(
        url,
        headers={
            "Authorization": f"Bearer {token}",
            "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
        },
        timeout=5,
    )
    traceresponse = response.headers.get("traceresponse", "")
    if response.status_code != 200 or traceresponse.split("-")[1:2] != [trace_id]:
        raise RuntimeError(f"{url} is not tracing: {response.status_code} {traceresponse!r}")


def _issuer() -> dict[str, Any]:
    """A JWKS endpoint and a token, so the benchmark runs the gateway's real auth path."""
    import threading
    import uuid
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    kid = uuid.uuid4().hex[:16]
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    now = int(time.time())
    claims = {"iss": "intellipost-user", "aud": "intellipost", "sub": "bench-user",
              "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex}  # fmt: skip
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})
    return {
        "jwks_url": f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json",
        "token": token,
        "server": server,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        "| target | req/s @32 | p50 @32 (ms) | p99 @32 (ms) | p50 @1 (ms) | p99 @1 (ms) "
        "| proxy CPU/req (µs) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by_c in result["targets"].items():
        c32, c1 = by_c[32], by_c[1]
        cpu = f"{c32['cpu_us_per_req']:.0f}" if c32["cpu_us_per_req"] is not None else "-"
        lines.append(
            f"| {name} | {c32['rps']:,.0f} | {c32['p50_ms']:.2f} | {c32['p99_ms']:.2f} "
            f"| {c1['p50_ms']:.3f} | {c1['p99_ms']:.3f} | {cpu} |"
        )
    lines += [
        "",
        "| proxy | req/s vs nginx @32 (target >= 0.5x) | p50 added @1 (target <= 0.5 ms) "
        "| access lines / requests |",
        "|---|---:|---:|---:|",
        f"| nginx | 1.00x | {result['nginx_added_p50_ms_1c']:.3f} ms | - |",
    ]
    for name, g in result["gateways"].items():
        lines.append(
            f"| {name} | **{g['vs_nginx_rps_32c']:.2f}x** | **{g['added_p50_ms_1c']:.3f} ms** "
            f"| {g['access_lines']:,} / {g['requests']:,} |"
        )
    lines += [
        "",
        f"- OTLP receiver: {result['otlp_spans']:,} spans in {result['otlp_batches']:,} "
        f"batches from {', '.join(result['otlp_services']) or 'nobody'}",
        f"- {result['cpus']} CPUs; load average (1, 5, 15 min) {result['load_before']} before, "
        f"{result['load_after']} after; {result['rounds']} interleaved rounds of "
        f"{result['seconds']:g} s per target and connection count, medians shown",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(render(run(args.seconds, args.rounds)))
