"""Helpers for tests: free ports, real component processes, PostgreSQL and Redis access."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
PG_HOST = os.environ.get("INTELLIPOST_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("INTELLIPOST_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("INTELLIPOST_TEST_PG_USER", "postgres")
REDIS_URL = os.environ.get("INTELLIPOST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_services() -> bool:
    return os.environ.get("INTELLIPOST_TEST_REQUIRE_SERVICES") == "1"


def unavailable(what: str) -> None:
    """A missing server fails the test in CI and skips it elsewhere."""
    message = f"{what} is not reachable"
    if require_services():
        pytest.fail(f"{message} and INTELLIPOST_TEST_REQUIRE_SERVICES=1")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echo_upstream(tmp: Path) -> Component:
    """The raw ASGI echo app of tests/gateway/echo_app.py under uvicorn, on a free port."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "tests.gateway.echo_app:app",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return Component("echo", port, base_env(tmp), tmp / f"echo-{port}.log", argv=argv)


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a component process: isolated var dir, JSON logs, no root .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTELLIPOST_", "OTEL_"))}
    env.update(
        {
            "INTELLIPOST_ENV_FILE": str(tmp / "absent.env"),
            "INTELLIPOST_VAR_DIR": str(tmp / "var"),
            "INTELLIPOST_LOG_FORMAT": "json",
            "INTELLIPOST_LOG_LEVEL": "INFO",
            "INTELLIPOST_ENVIRONMENT": "test",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            # Tests send bursts from one address; the limit has tests of its own.
            "INTELLIPOST_GATEWAY_RATE_LIMIT_PER_MINUTE": "10000000",
            "INTELLIPOST_GATEWAY_RATE_LIMIT_BURST": "1000000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class Component:
    """A real component process (``python -m intellipost.<module>``) on a free port."""

    def __init__(
        self,
        module: str,
        port: int,
        env: Mapping[str, str],
        log_path: Path,
        argv: list[str] | None = None,
    ) -> None:
        self.module = module
        self.port = port
        self.env = dict(env)
        self.log_path = log_path
        self.argv = argv or [sys.executable, "-m", f"intellipost.{module}"]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: str = "/health/live", timeout: float = 30.0) -> Component:
        prefix = "INTELLIPOST_" + self.module.upper() + "_"
        env = {**self.env, prefix + "PORT": str(self.port)}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.wait_for(wait, timeout=timeout)
        return self

    def wait_for(self, path: str, *, timeout: float = 30.0, status: int = 200) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.module} exited with {self.proc.returncode}:\n{self.output()[-4000:]}"
                )
            try:
                last = httpx.get(self.url + path, timeout=2.0).status_code
                if last == status:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.1)
        raise TimeoutError(f"{self.module} {path} not {status} (last: {last})\n{self.output()}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Records matching ``predicate``, waiting for them: a line may follow the response."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.log_records() if predicate(r)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.output().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records


@contextmanager
def running(*components: Component, wait: str = "/health/live") -> Iterator[None]:
    started: list[Component] = []
    try:
        for component in components:
            component.start(wait=wait)
            started.append(component)
        yield
    finally:
        for component in reversed(started):
            component.stop()


# --- Local HTTP peers --------------------------------------------------------------------


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output clean and answers with bytes in one call."""

    def answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class LocalHTTPServer:
    """A threaded HTTP server on a free loopback port, served from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- PostgreSQL and Redis ----------------------------------------------------------------


async def _pg_execute(sql: str, database: str = "postgres") -> None:
    import asyncpg

    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=5
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_pg_database(prefix: str = "intellipost_test") -> str:
    """A new empty database; returns its asyncpg SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        await _pg_execute(f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError) as exc:
        unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT} ({type(exc).__name__})")
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    await _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def redis_available() -> bool:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
        return True
    except Exception:
        return False
    finally:
        await client.aclose()


# --- Access tokens -----------------------------------------------------------------------


class TokenIssuer:
    """Signs access tokens like the user service and serves their JWKS over real HTTP."""

    def __init__(self, *, issuer: str = "intellipost-user", audience: str = "intellipost") -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.issuer = issuer
        self.audience = audience
        self.key = Ed25519PrivateKey.generate()
        self.kid = uuid.uuid4().hex[:16]
        self._server: Any = None
        self.port = 0

    def jwks(self) -> dict[str, Any]:
        import jwt

        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "alg": "EdDSA", "use": "sig"})
        return {"keys": [jwk]}

    def token(self, sub: str = "user-1", *, ttl: int = 300, **claims: Any) -> str:
        import jwt

        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="EdDSA", headers={"kid": self.kid})

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    def serve(self) -> TokenIssuer:
        issuer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                body = json.dumps(issuer.jwks()).encode()
                self.answer(200, body)

        self._server = LocalHTTPServer(Handler)
        self.port = self._server.port
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


# --- Real HTTP peers ---------------------------------------------------------------------


class OtlpReceiver:
    """A local OTLP/HTTP trace receiver: components export real protobuf spans to it."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self._server: Any = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> OtlpReceiver:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                request = ExportTraceServiceRequest.FromString(self.rfile.read(length))
                for resource_spans in request.resource_spans:
                    service = next(
                        (
                            a.value.string_value
                            for a in resource_spans.resource.attributes
                            if a.key == "service.name"
                        ),
                        "",
                    )
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            receiver.spans.append(
                                {
                                    "service": service,
                                    "name": span.name,
                                    "kind": span.kind,
                                    "trace_id": span.trace_id.hex(),
                                    "span_id": span.span_id.hex(),
                                    "parent_span_id": span.parent_span_id.hex(),
                                    "attributes": {
                                        a.key: _otlp_value(a.value) for a in span.attributes
                                    },
                                }
                            )
                body = ExportTraceServiceResponse().SerializeToString()
                self.answer(200, body, "application/x-protobuf")

        self._server = LocalHTTPServer(Handler)
        self.port = self._server.port
        return self

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in list(self.spans) if predicate(s)]
            if found:
                return found
            time.sleep(0.1)
        return []

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def _otlp_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class EchoServer:
    """A plain HTTP server answering every request with what it received, as JSON."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._server: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> EchoServer:
        echo = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length) if length else b""
                seen = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode(errors="replace"),
                }
                echo.requests.append(seen)
                out = json.dumps(seen).encode()
                self.answer(200, out)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        self._server = LocalHTTPServer(Handler)
        self.port = self._server.port
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
