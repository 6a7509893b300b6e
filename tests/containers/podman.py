"""Thin helpers over the podman CLI for the container checks (`make container-test`)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

COMPONENTS = ("gateway", "user", "product", "mercadolibre", "ai_content", "sandbox")
DATABASE_COMPONENTS = ("user", "product", "mercadolibre", "ai_content")
UID = 10001
STATE_DIR = "/var/lib/intellipost"


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def inspect(kind: str, name: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(podman(kind, "inspect", name).stdout)
    return data[0]


def run_args(env: Mapping[str, str]) -> list[str]:
    """How every check runs a component: as the manifests do, minus the orchestrator."""
    args = [
        "--network=host",
        "--read-only",
        # The state directory is the one writable path; U hands the tmpfs to the image's user.
        f"--tmpfs={STATE_DIR}:rw,size=64m,mode=0700,U",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
    ]
    for name, value in sorted(env.items()):
        args.append(f"--env={name}={value}")
    return args


@dataclass
class Container:
    """A detached component container on the host network."""

    name: str
    image: str
    component: str
    port: int
    env: dict[str, str]
    labels: Sequence[str] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Container:
        prefix = f"INTELLIPOST_{self.component.upper()}_"
        env = {**self.env, prefix + "PORT": str(self.port)}
        labels = [f"--label={label}" for label in self.labels]
        podman("run", "--detach", f"--name={self.name}", *labels, *run_args(env), self.image)
        return self

    def wait_for(self, path: str, *, status: int = 200, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.name} exited:\n{self.logs()[-4000:]}")
            try:
                last = httpx.get(self.url + path, timeout=3).status_code
                if last == status:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} {path} not {status} (last: {last})\n{self.logs()[-4000:]}")

    def running(self) -> bool:
        return bool(inspect("container", self.name)["State"]["Running"])

    def host_pid(self) -> int:
        return int(inspect("container", self.name)["State"]["Pid"])

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def remove(self) -> None:
        podman("rm", "--force", "--time=5", self.name, check=False)


def run_once(image: str, args: Sequence[str], env: Mapping[str, str]) -> str:
    """A one-off container (``migrate``), removed when it exits; returns its output."""
    result = podman("run", "--rm", *run_args(env), image, *args, check=False, timeout=180)
    if result.returncode != 0:
        raise RuntimeError(f"{image} {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result.stdout + result.stderr


def process_ids(pid: int) -> dict[str, list[int]]:
    """Real, effective, saved and filesystem uid/gid of a host process (from /proc)."""
    ids: dict[str, list[int]] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"Uid", "Gid"}:
            ids[key] = [int(v) for v in value.split()]
    return ids


def process_argv(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode() for part in raw.split(b"\0") if part]
