"""Rules the compose file and the rendered Kubernetes overlays must keep (`make lint`).

`python -m tests.containers.deploy_rules` prints every broken rule and exits 1 if any. The
schema itself is kubernetes-validate's job; these are the project's own promises: health
checks and start order in compose, probes, hardening, draining and network isolation in
Kubernetes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
OVERLAYS = ("dev", "prod")
DOCKERFILE = "deploy/docker/Dockerfile"

# compose/Kubernetes name -> SERVICE build argument (and env module: upper case of it)
COMPONENTS = {
    "gateway": "gateway",
    "user": "user",
    "product": "product",
    "mercadolibre": "mercadolibre",
    "ai-content": "ai_content",
    "sandbox": "sandbox",
}
DATABASE_COMPONENTS = ("user", "product", "mercadolibre", "ai-content")
INFRASTRUCTURE = ("postgres", "redis", "minio", "otel-collector", "jaeger")
UID = 10001
# The only paths a component may write (the image's root filesystem is read-only).
WRITABLE = ("/tmp", "/var/lib/intellipost")
# The components' default INTELLIPOST_<MODULE>_GRACEFUL_TIMEOUT_SECONDS.
GRACEFUL_TIMEOUT_SECONDS = 20
PROBES = {
    "startupProbe": "/health/startup",
    "readinessProbe": "/health/ready",
    "livenessProbe": "/health/live",
}


def known_variables() -> frozenset[str]:
    """Every INTELLIPOST_* variable some component reads (module and fleet-wide forms)."""
    from intellipost.ai_content.config import AiContentConfig
    from intellipost.gateway.config import GatewayConfig
    from intellipost.mercadolibre.config import MercadoLibreConfig
    from intellipost.product.config import ProductConfig
    from intellipost.sandbox.config import SandboxConfig
    from intellipost.shared.config import GLOBAL_PREFIX
    from intellipost.user.config import UserConfig

    names = {"INTELLIPOST_ENV_FILE"}
    for cls in (
        GatewayConfig,
        UserConfig,
        ProductConfig,
        MercadoLibreConfig,
        AiContentConfig,
        SandboxConfig,
    ):
        for field in cls.model_fields:
            names.add(f"{cls.env_prefix()}{field}".upper())
            if field in cls.global_fields:
                names.add(f"{GLOBAL_PREFIX}{field}".upper())
    return frozenset(names)


def _unknown(variables: Iterable[str], known: frozenset[str]) -> list[str]:
    return sorted(v for v in variables if v.startswith("INTELLIPOST_") and v not in known)


def _seconds(value: Any) -> float:
    """Compose durations: 30s, 1m30s, 500ms, or a bare number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(value)):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def _env(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {str(k): str(v) for k, v in environment.items()}


# --- compose -----------------------------------------------------------------------------


def compose_problems(doc: Mapping[str, Any], known: frozenset[str] | None = None) -> list[str]:
    known = known if known is not None else known_variables()
    problems: list[str] = []
    services: dict[str, Any] = doc.get("services") or {}
    for name, service in services.items():
        for variable in _unknown(_env(service), known):
            problems.append(f"compose: {name} sets {variable}, which no component reads")
    for name in (*COMPONENTS, *INFRASTRUCTURE):
        if name not in services:
            problems.append(f"compose: service {name} is missing")

    def one_shot(name: str) -> bool:
        return str(services.get(name, {}).get("restart", "")) == "no"

    for name, service in services.items():
        healthcheck = service.get("healthcheck") or {}
        if not one_shot(name) and (healthcheck.get("disable") or not healthcheck.get("test")):
            problems.append(f"compose: {name} has no healthcheck")
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            problems.append(f"compose: {name}: depends_on must give a condition for each")
            continue
        for dependency, rule in depends_on.items():
            if dependency not in services:
                problems.append(f"compose: {name} depends on unknown service {dependency}")
                continue
            wanted = "service_completed_successfully" if one_shot(dependency) else "service_healthy"
            condition = (rule or {}).get("condition")
            if condition != wanted:
                problems.append(
                    f"compose: {name} -> {dependency} must be {wanted}, not {condition}"
                )

    for name, argument in COMPONENTS.items():
        service = services.get(name)
        if service is None:
            continue
        problems += [f"compose: {name}: {p}" for p in _component_problems(service, argument)]
        if name in DATABASE_COMPONENTS:
            problems += [
                f"compose: {name}: {p}" for p in _migration_problems(services, name, argument)
            ]
    problems += _loopback_problems(services)
    gateway = services.get("gateway", {})
    for upstream in DATABASE_COMPONENTS:
        if upstream not in (gateway.get("depends_on") or {}):
            problems.append(f"compose: gateway does not wait for {upstream}")
    return problems


def _loopback_problems(services: Mapping[str, Any]) -> list[str]:
    """A loopback address from .env (as `make run` wants it) means nothing in a container:
    the compose file must set every such variable itself for the component that reads it."""
    problems = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name, _, value = line.partition("=")
        if not name.startswith("INTELLIPOST_") or not re.search(r"127\.0\.0\.1|localhost", value):
            continue
        readers = [
            component
            for component, argument in COMPONENTS.items()
            if name.startswith(f"INTELLIPOST_{argument.upper()}_")
        ] or list(COMPONENTS)  # a fleet-wide variable reaches every component
        for component in readers:
            if component in services and name not in _env(services[component]):
                problems.append(f"compose: {component} would take {name}={value} from .env")
    return problems


def _writable_problems(service: Mapping[str, Any]) -> list[str]:
    tmpfs = service.get("tmpfs") or []
    targets = {str(t).split(":", 1)[0] for t in ([tmpfs] if isinstance(tmpfs, str) else tmpfs)}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            targets.add(str(volume.get("target")))
        else:
            parts = str(volume).split(":")
            targets.add(parts[1] if len(parts) > 1 else parts[0])
    missing = [path for path in WRITABLE if path not in targets]
    return [f"{', '.join(missing)} not writable (no volume or tmpfs)"] if missing else []


def _component_problems(service: Mapping[str, Any], argument: str) -> list[str]:
    problems = _writable_problems(service)
    build = service.get("build") or {}
    if (
        build.get("dockerfile") != DOCKERFILE
        or (build.get("args") or {}).get("SERVICE") != argument
    ):
        problems.append(f"not built from {DOCKERFILE} with SERVICE={argument}")
    if service.get("read_only") is not True:
        problems.append("root filesystem is not read-only")
    if "ALL" not in (service.get("cap_drop") or []):
        problems.append("capabilities are not all dropped")
    env_files = [e["path"] if isinstance(e, dict) else e for e in service.get("env_file") or []]
    if ".env" not in env_files:
        problems.append("does not read the root .env")
    if _env(service).get(f"INTELLIPOST_{argument.upper()}_HOST") != "0.0.0.0":
        problems.append("does not listen on 0.0.0.0")
    if _seconds(service.get("stop_grace_period", "10s")) <= GRACEFUL_TIMEOUT_SECONDS:
        problems.append(f"stop_grace_period is not longer than {GRACEFUL_TIMEOUT_SECONDS}s")
    return problems


def _migration_problems(services: Mapping[str, Any], name: str, argument: str) -> list[str]:
    service = services[name]
    module = argument.upper()
    problems = []
    if _env(service).get(f"INTELLIPOST_{module}_AUTO_MIGRATE") != "false":
        problems.append("migrates at startup although a migration step runs")
    steps = [
        dependency
        for dependency in service.get("depends_on") or {}
        if services.get(dependency, {}).get("command") == ["migrate"]
        and services[dependency].get("image") == service.get("image")
    ]
    if not steps:
        problems.append("no migration step (same image, command migrate) runs before it")
    for step in steps:
        problems += [f"{step}: {p}" for p in _writable_problems(services[step])]
        url = f"INTELLIPOST_{module}_DATABASE_URL"
        if _env(services[step]).get(url) != _env(service).get(url):
            problems.append(f"{step} migrates another database than {name} uses")
    return problems


# --- Kubernetes --------------------------------------------------------------------------


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"
    output = subprocess.run(
        [kubectl, "kustomize", str(REPO / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _ours(pod_spec: Mapping[str, Any]) -> bool:
    return any("intellipost/" in c.get("image", "") for c in pod_spec.get("containers", []))


def k8s_problems(
    docs: Iterable[Mapping[str, Any]], overlay: str, known: frozenset[str] | None = None
) -> list[str]:
    known = known if known is not None else known_variables()
    docs = list(docs)
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    problems: list[str] = []
    deployments = {
        d["metadata"]["name"]: d
        for d in by_kind.get("Deployment", [])
        if _ours(d["spec"]["template"]["spec"])
    }
    expected = set(COMPONENTS) if overlay == "dev" else set(COMPONENTS) - {"sandbox"}
    for name in sorted(expected - set(deployments)):
        problems.append(f"no Deployment for {name}")

    policies = by_kind.get("NetworkPolicy", [])
    if not any(
        p["spec"].get("podSelector") == {}
        and "Ingress" in p["spec"].get("policyTypes", [])
        and not p["spec"].get("ingress")
        for p in policies
    ):
        problems.append("no default-deny ingress NetworkPolicy")

    for name, deployment in sorted(deployments.items()):
        spec = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        problems += [f"{name}: {p}" for p in _pod_problems(spec)]
        problems += [f"{name}: {p}" for p in _serving_problems(spec)]
        if not any(
            _matches(s["spec"].get("selector", {}), labels) for s in by_kind.get("Service", [])
        ):
            problems.append(f"{name}: no Service selects it")
        if not any(
            _matches(p["spec"]["selector"].get("matchLabels", {}), labels)
            for p in by_kind.get("PodDisruptionBudget", [])
        ):
            problems.append(f"{name}: no PodDisruptionBudget covers it")
        own = [
            p
            for p in policies
            if p["spec"].get("podSelector", {}).get("matchLabels")
            and _matches(p["spec"]["podSelector"]["matchLabels"], labels)
        ]
        if not own:
            problems.append(f"{name}: no NetworkPolicy says who may call it")
        elif name != "gateway":
            for policy in own:
                for rule in policy["spec"].get("ingress", []):
                    if not rule.get("from"):
                        problems.append(f"{name}: {policy['metadata']['name']} admits anyone")
                    for peer in rule.get("from", []):
                        if set(peer) != {"podSelector"} or not peer["podSelector"]:
                            problems.append(f"{name}: {policy['metadata']['name']} admits {peer}")

    hpas = [
        h
        for h in by_kind.get("HorizontalPodAutoscaler", [])
        if h["spec"]["scaleTargetRef"]
        == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    ]
    if not hpas:
        problems.append("no HorizontalPodAutoscaler for the gateway")
    elif "replicas" in deployments.get("gateway", {}).get("spec", {}):
        problems.append("gateway: sets replicas although its HPA owns them")

    jobs = {j["metadata"]["name"]: j for j in by_kind.get("Job", [])}
    for name in DATABASE_COMPONENTS:
        job = jobs.get(f"{name}-migrate")
        if job is None:
            problems.append(f"no migration Job for {name}")
            continue
        spec = job["spec"]["template"]["spec"]
        problems += [f"{name}-migrate: {p}" for p in _pod_problems(spec)]
        if [c.get("args") for c in spec["containers"]] != [["migrate"]]:
            problems.append(f"{name}-migrate: does not run `migrate`")
        image = deployments.get(name, {}).get("spec", {}).get("template", {}).get("spec", {})
        if image and spec["containers"][0]["image"] != image["containers"][0]["image"]:
            problems.append(f"{name}-migrate: runs another image than the Deployment")

    config: dict[str, str] = {}
    for cm in by_kind.get("ConfigMap", []):
        if cm["metadata"]["name"].startswith("intellipost-config"):
            config.update(cm.get("data", {}))
    for variable in _unknown(config, known):
        problems.append(f"intellipost-config sets {variable}, which no component reads")
    for workload in [*deployments.values(), *jobs.values()]:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            names = [e["name"] for e in container.get("env", [])]
            for variable in _unknown(names, known):
                problems.append(
                    f"{workload['metadata']['name']}: sets {variable}, which no component reads"
                )
    for name in DATABASE_COMPONENTS:
        key = f"INTELLIPOST_{COMPONENTS[name].upper()}_AUTO_MIGRATE"
        if config.get(key) != "false":
            problems.append(f"{name}: {key} is not false although a Job migrates")
    return [f"k8s {overlay}: {p}" for p in problems]


def _pod_problems(spec: Mapping[str, Any]) -> list[str]:
    """Non-root, read-only, no privilege: for every pod of ours, servers and Jobs alike."""
    problems = []
    pod = spec.get("securityContext", {})
    if pod.get("runAsNonRoot") is not True or pod.get("runAsUser") != UID:
        problems.append(f"pod does not run as non-root uid {UID}")
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod has no RuntimeDefault seccomp profile")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("mounts a service account token it does not use")
    for container in spec["containers"]:
        security = container.get("securityContext", {})
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{container['name']}: root filesystem is writable")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{container['name']}: privilege escalation allowed")
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            problems.append(f"{container['name']}: capabilities not all dropped")
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(kind, {})):
                problems.append(f"{container['name']}: no cpu and memory {kind}")
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        if not set(WRITABLE) <= mounts:
            problems.append(f"{container['name']}: /tmp and the state directory are not mounted")
    return problems


def _serving_problems(spec: Mapping[str, Any]) -> list[str]:
    problems = []
    for container in spec["containers"]:
        for probe, path in PROBES.items():
            settings = container.get(probe)
            if not settings or settings.get("httpGet", {}).get("path") != path:
                problems.append(f"{container['name']}: no {probe} on {path}")
                continue
            if not 1 <= settings.get("timeoutSeconds", 1) < settings.get("periodSeconds", 10):
                problems.append(f"{container['name']}: {probe} timeout must be under its period")
        liveness = container.get("livenessProbe") or {}
        if liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3) < 30:
            problems.append(f"{container['name']}: liveness restarts within 30 s of trouble")
        pre_stop = container.get("lifecycle", {}).get("preStop", {})
        pause = 0
        if "exec" in pre_stop and pre_stop["exec"]["command"][:1] == ["sleep"]:
            pause = int(pre_stop["exec"]["command"][1])
        elif "sleep" in pre_stop:
            pause = int(pre_stop["sleep"]["seconds"])
        if not pause:
            problems.append(f"{container['name']}: no preStop pause for readiness to drain")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= pause + GRACEFUL_TIMEOUT_SECONDS:
            problems.append(
                f"terminationGracePeriodSeconds {grace} is not longer than the preStop pause "
                f"({pause}) plus the graceful timeout ({GRACEFUL_TIMEOUT_SECONDS})"
            )
    return problems


def main() -> int:
    problems = compose_problems(yaml.safe_load(COMPOSE_FILE.read_text()))
    for overlay in OVERLAYS:
        problems += k8s_problems(render(overlay), overlay)
    for problem in problems:
        sys.stderr.write(problem + "\n")
    if not problems:
        sys.stdout.write(f"deploy rules: compose and overlays {', '.join(OVERLAYS)} pass\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
