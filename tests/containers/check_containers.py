"""The component images in real containers: health, user, Python, hardening, one request, SIGTERM.

Run by `make container-test` (tests/containers/container-test.sh), which builds the images
with podman first and passes their names in INTELLIPOST_CT_IMAGE_PREFIX/_TAG. The file is
named check_* so the plain test suite, which has no images to check, does not collect it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.containers.podman import (
    COMPONENTS,
    DATABASE_COMPONENTS,
    STATE_DIR,
    UID,
    Container,
    inspect,
    podman,
    process_argv,
    process_ids,
    run_once,
)
from tests.support import (
    REDIS_URL,
    OtlpReceiver,
    create_pg_database,
    drop_pg_database,
    free_port,
    redis_available,
    unavailable,
)

PREFIX = os.environ.get("INTELLIPOST_CT_IMAGE_PREFIX", "localhost/intellipost/")
TAG = os.environ.get("INTELLIPOST_CT_IMAGE_TAG", "container-test")
RUN_ID = os.environ.get("INTELLIPOST_CT_RUN_ID") or uuid.uuid4().hex[:8]

# Executables that must not be in a runtime image: curl, uv (a build tool), and anything
# that compiles C/C++.
FORBIDDEN = re.compile(
    r"^(curl|uv|uvx|cc|c\+\+|cpp|cc1|cc1plus|tcc|([\w.+-]+-)?(gcc|g\+\+|clang|clang\+\+)(-[\d.]+)?)$"
)


def image(component: str) -> str:
    """Image names use dashes, like the packages (intellipost-ai-content)."""
    return f"{PREFIX}{component.replace('_', '-')}:{TAG}"


@dataclass
class Fleet:
    containers: dict[str, Container]
    otlp: OtlpReceiver

    @property
    def gateway(self) -> Container:
        return self.containers["gateway"]


@pytest.fixture(scope="module")
async def databases() -> AsyncIterator[dict[str, str]]:
    """One throwaway PostgreSQL database per service, dropped at the end."""
    urls: dict[str, str] = {}
    try:
        for component in DATABASE_COMPONENTS:
            urls[component] = await create_pg_database(f"intellipost_ct_{component}")
        yield urls
    finally:
        for url in urls.values():
            await drop_pg_database(url)


@pytest.fixture(scope="module")
async def redis_prefix() -> AsyncIterator[str]:
    """A key namespace for this run; its keys are deleted at the end."""
    if not await redis_available():
        unavailable(f"Redis at {REDIS_URL}")
    prefix = f"intellipost-ct:{RUN_ID}:"
    yield prefix
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def fleet(databases: dict[str, str], redis_prefix: str) -> Iterator[Fleet]:
    """Every component in its own container, wired as compose wires them, on free ports."""
    otlp = OtlpReceiver().serve()
    ports = {component: free_port() for component in COMPONENTS}
    urls = {component: f"http://127.0.0.1:{port}" for component, port in ports.items()}
    env: dict[str, str] = {
        "INTELLIPOST_ENVIRONMENT": "staging",
        "INTELLIPOST_REDIS_URL": REDIS_URL,
        "INTELLIPOST_JWKS_URL": urls["user"] + "/.well-known/jwks.json",
        "INTELLIPOST_OTEL_EXPORTER_ENDPOINT": otlp.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "INTELLIPOST_PRODUCT_AI_CONTENT_URL": urls["ai_content"],
        "INTELLIPOST_PRODUCT_MERCADOLIBRE_URL": urls["mercadolibre"],
        "INTELLIPOST_AI_CONTENT_MERCADOLIBRE_URL": urls["mercadolibre"],
        "INTELLIPOST_MERCADOLIBRE_API_BASE_URL": urls["sandbox"],
        "INTELLIPOST_SANDBOX_PUBLIC_URL": urls["sandbox"],
    }
    for component in ("user", "product", "mercadolibre", "ai_content"):
        env[f"INTELLIPOST_GATEWAY_{component.upper()}_URL"] = urls[component]
    for component in COMPONENTS:
        env[f"INTELLIPOST_{component.upper()}_REDIS_KEY_PREFIX"] = redis_prefix
    for component, url in databases.items():
        env[f"INTELLIPOST_{component.upper()}_DATABASE_URL"] = url
        env[f"INTELLIPOST_{component.upper()}_AUTO_MIGRATE"] = "false"

    containers: dict[str, Container] = {}
    try:
        # The migration step compose and the Kubernetes Job run, then the services.
        for component in DATABASE_COMPONENTS:
            run_once(image(component), ["migrate"], env)
        for component in ("sandbox", "user", "ai_content", "mercadolibre", "product", "gateway"):
            container = Container(
                name=f"intellipost-ct-{RUN_ID}-{component}",
                image=image(component),
                component=component,
                port=ports[component],
                env=env,
                labels=[f"intellipost.container-test={RUN_ID}"],
            )
            containers[component] = container.start()
            container.wait_for("/health/ready")
        yield Fleet(containers, otlp)
    finally:
        for container in reversed(containers.values()):
            container.remove()
        otlp.close()


# --- every image ---------------------------------------------------------------------------


@pytest.mark.parametrize("component", COMPONENTS)
def test_ready_endpoint_answers_200(fleet: Fleet, component: str) -> None:
    response = httpx.get(fleet.containers[component].url + "/health/ready", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"


@pytest.mark.parametrize("component", COMPONENTS)
def test_process_runs_as_uid_10001_not_root(fleet: Fleet, component: str) -> None:
    container = fleet.containers[component]
    pid = container.host_pid()
    ids = process_ids(pid)
    assert ids["Uid"] == [UID] * 4
    assert ids["Gid"] == [UID] * 4
    assert inspect("image", container.image)["Config"]["User"] == f"{UID}:{UID}"


@pytest.mark.parametrize("component", COMPONENTS)
def test_python_is_the_main_process_so_sigterm_reaches_it(fleet: Fleet, component: str) -> None:
    # Exec form: PID 1 of the container is Python itself, no shell in between.
    argv = process_argv(fleet.containers[component].host_pid())
    assert Path(argv[0]).name.startswith("python")
    assert argv[1:] == ["/app/entrypoint.py", "serve"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_python_is_3_13(fleet: Fleet, component: str) -> None:
    result = podman("exec", fleet.containers[component].name, "python", "--version")
    assert re.fullmatch(r"Python 3\.13\.\d+\s*", result.stdout), result.stdout


@pytest.mark.parametrize("component", COMPONENTS)
def test_image_healthcheck_uses_python_and_passes(fleet: Fleet, component: str) -> None:
    container = fleet.containers[component]
    healthcheck = inspect("image", container.image)["Healthcheck"]
    assert healthcheck["Test"] == ["CMD", "python", "/app/healthcheck.py"]
    result = podman("healthcheck", "run", container.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("component", COMPONENTS)
def test_root_filesystem_is_read_only_and_state_dir_writable(fleet: Fleet, component: str) -> None:
    container = fleet.containers[component]
    assert inspect("container", container.name)["HostConfig"]["ReadonlyRootfs"] is True
    probe = (
        "import sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path + '/probe', 'w').close()\n"
        "        print(path, 'writable')\n"
        "    except OSError:\n"
        "        print(path, 'read-only')\n"
    )
    result = podman(
        "exec", container.name, "python", "-c", probe, "/app", "/app/.venv", "/", STATE_DIR
    )
    assert result.stdout.split("\n")[:4] == [
        "/app read-only",
        "/app/.venv read-only",
        "/ read-only",
        f"{STATE_DIR} writable",
    ]


@pytest.mark.parametrize("component", COMPONENTS)
def test_image_has_no_curl_uv_or_compiler_and_user_owns_only_state(component: str) -> None:
    root = Path(podman("image", "mount", image(component)).stdout.strip())
    try:
        forbidden: list[str] = []
        owned: list[str] = []
        for directory, dirnames, filenames in os.walk(root):
            for name in filenames:
                if FORBIDDEN.match(name):
                    forbidden.append("/" + str((Path(directory) / name).relative_to(root)))
            for name in dirnames + filenames:
                path = Path(directory) / name
                status = path.lstat()
                if UID in (status.st_uid, status.st_gid):
                    owned.append("/" + str(path.relative_to(root)))
    finally:
        podman("image", "unmount", image(component), check=False)
    assert forbidden == []
    # The state directory is the only thing the runtime user owns (and so may write).
    assert owned == [STATE_DIR]


# --- the fleet -----------------------------------------------------------------------------


def test_request_through_gateway_reaches_service_with_correlation_id(fleet: Fleet) -> None:
    correlation_id = f"container-test-{uuid.uuid4().hex[:12]}"
    trace_id = uuid.uuid4().hex
    response = httpx.get(
        fleet.gateway.url + "/.well-known/jwks.json",
        headers={
            "X-Correlation-ID": correlation_id,
            "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-correlation-id"] == correlation_id
    assert "keys" in response.json()

    # The user service's own container logged the request under the same correlation id.
    user = fleet.containers["user"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [r for r in user.log_records() if r.get("correlation_id") == correlation_id]
        if lines:
            break
        time.sleep(0.2)
    assert lines, user.logs()[-3000:]
    assert all(r["service"] == "user" for r in lines)
    assert {r["trace_id"] for r in lines} == {trace_id}

    # And both containers exported their spans of that trace over OTLP.
    deadline = time.monotonic() + 15
    services: set[str] = set()
    expected = {"intellipost-gateway", "intellipost-user"}
    while time.monotonic() < deadline and not expected <= services:
        services = {s["service"] for s in fleet.otlp.spans if s["trace_id"] == trace_id}
        time.sleep(0.2)
    assert expected <= services


# --- graceful shutdown ---------------------------------------------------------------------


class SlowUpstream:
    """A stand-in user service on the host that holds one POST until it is released."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer({"status": "ready", "keys": []})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                upstream.arrived.set()
                upstream.release.wait(timeout=60)
                self._answer({"finished": True})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_sigterm_during_slow_request_lets_it_finish_before_exit() -> None:
    upstream = SlowUpstream()
    env = {f"INTELLIPOST_GATEWAY_{c.upper()}_URL": upstream.url for c in DATABASE_COMPONENTS}
    env |= {
        "INTELLIPOST_JWKS_URL": upstream.url + "/keys",
        # Readiness reports 503 for this long before the listener closes (a preStop in k8s).
        "INTELLIPOST_GATEWAY_SHUTDOWN_DELAY_SECONDS": "3",
        "INTELLIPOST_GATEWAY_GRACEFUL_TIMEOUT_SECONDS": "30",
    }
    gateway = Container(
        name=f"intellipost-ct-{RUN_ID}-gateway-sigterm",
        image=image("gateway"),
        component="gateway",
        port=free_port(),
        env=env,
        labels=[f"intellipost.container-test={RUN_ID}"],
    )
    outcome: dict[str, Any] = {}

    def slow_request() -> None:
        try:
            outcome["response"] = httpx.post(
                gateway.url + "/api/v1/auth/login", json={"slow": True}, timeout=60
            )
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    client = threading.Thread(target=slow_request)
    try:
        gateway.start().wait_for("/health/ready")
        client.start()
        assert upstream.arrived.wait(timeout=30), "the request never reached the upstream"

        podman("kill", "--signal=TERM", gateway.name)
        gateway.wait_for("/health/ready", status=503, timeout=10)
        # Past the shutdown delay the listener closes, while the request is still held.
        closed = False
        deadline = time.monotonic() + 15
        while not closed and time.monotonic() < deadline:
            try:
                httpx.get(gateway.url + "/health/live", timeout=1)
                time.sleep(0.2)
            except httpx.TransportError:
                closed = True
        assert closed, "the gateway kept accepting connections after SIGTERM"
        assert gateway.running(), "the container exited with a request in flight"
        assert client.is_alive()

        upstream.release.set()
        client.join(timeout=30)
        assert "error" not in outcome, outcome.get("error")
        response = outcome["response"]
        assert response.status_code == 200
        assert response.json() == {"finished": True}

        exit_code = podman("wait", gateway.name, timeout=60).stdout.strip()
        assert exit_code == "0", gateway.logs()[-3000:]
        messages = [r.get("message") for r in gateway.log_records()]
        assert "shutdown begun; readiness now reports 503" in messages
    finally:
        upstream.close()
        if client.ident is not None:
            client.join(timeout=5)
        gateway.remove()


def test_migrate_is_idempotent_in_the_image(databases: dict[str, str]) -> None:
    # Compose and the Kubernetes Job may run migrations again on every deploy.
    env = {"INTELLIPOST_USER_DATABASE_URL": databases["user"]}
    first = run_once(image("user"), ["migrate"], env)
    second = run_once(image("user"), ["migrate"], env)
    assert "migrations applied" in first
    assert "migrations applied" in second
