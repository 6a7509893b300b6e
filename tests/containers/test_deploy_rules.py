"""The compose file and both Kubernetes overlays keep the deployment rules, and the rules bite."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
import yaml

from tests.containers.deploy_rules import (
    COMPOSE_FILE,
    OVERLAYS,
    REPO,
    compose_problems,
    k8s_problems,
    render,
)


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return doc


@cache
def _rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(render(overlay))


def rendered(overlay: str) -> list[dict[str, Any]]:
    return copy.deepcopy(list(_rendered(overlay)))


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_compose_file_keeps_every_rule() -> None:
    assert compose_problems(compose()) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_keeps_every_rule(overlay: str) -> None:
    assert k8s_problems(rendered(overlay), overlay) == []


def _drop_healthcheck(doc: dict[str, Any]) -> None:
    del doc["services"]["redis"]["healthcheck"]


def _plain_depends_on(doc: dict[str, Any]) -> None:
    doc["services"]["gateway"]["depends_on"] = ["user", "product"]


def _started_not_healthy(doc: dict[str, Any]) -> None:
    doc["services"]["product"]["depends_on"]["postgres"]["condition"] = "service_started"


def _no_migration_step(doc: dict[str, Any]) -> None:
    del doc["services"]["user"]["depends_on"]["user-migrate"]


def _writable_component(doc: dict[str, Any]) -> None:
    doc["services"]["mercadolibre"]["read_only"] = False


def _read_only_migration(doc: dict[str, Any]) -> None:
    del doc["services"]["user-migrate"]["tmpfs"]


def _misspelt_variable(doc: dict[str, Any]) -> None:
    doc["services"]["product"]["environment"]["INTELLIPOST_PRODUCT_S3_BUCKETS"] = "media"


def _upstream_from_dotenv(doc: dict[str, Any]) -> None:
    del doc["services"]["gateway"]["environment"]["INTELLIPOST_GATEWAY_USER_URL"]


def _loopback_component(doc: dict[str, Any]) -> None:
    doc["services"]["ai-content"]["environment"]["INTELLIPOST_AI_CONTENT_HOST"] = "127.0.0.1"


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (_drop_healthcheck, "compose: redis has no healthcheck"),
        (_plain_depends_on, "compose: gateway: depends_on must give a condition for each"),
        (_started_not_healthy, "compose: product -> postgres must be service_healthy"),
        (_no_migration_step, "compose: user: no migration step"),
        (_writable_component, "compose: mercadolibre: root filesystem is not read-only"),
        (_loopback_component, "compose: ai-content: does not listen on 0.0.0.0"),
        (_misspelt_variable, "compose: product sets INTELLIPOST_PRODUCT_S3_BUCKETS, which no"),
        (_upstream_from_dotenv, "compose: gateway would take INTELLIPOST_GATEWAY_USER_URL=http"),
        (_read_only_migration, "compose: user: user-migrate: /tmp, /var/lib/intellipost not"),
    ],
)
def test_compose_rules_catch(breakage: Callable[[dict[str, Any]], None], expected: str) -> None:
    doc = compose()
    breakage(doc)
    problems = compose_problems(doc)
    assert any(p.startswith(expected) for p in problems), problems


def _container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    container: dict[str, Any] = find(docs, "Deployment", name)["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def _runs_as_root(docs: list[dict[str, Any]]) -> None:
    find(docs, "Deployment", "user")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0


def _writable_root(docs: list[dict[str, Any]]) -> None:
    _container(docs, "product")["securityContext"]["readOnlyRootFilesystem"] = False


def _no_readiness(docs: list[dict[str, Any]]) -> None:
    del _container(docs, "gateway")["readinessProbe"]


def _short_grace(docs: list[dict[str, Any]]) -> None:
    find(docs, "Deployment", "mercadolibre")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ] = 25


def _open_policy(docs: list[dict[str, Any]]) -> None:
    del find(docs, "NetworkPolicy", "ai-content-ingress")["spec"]["ingress"][0]["from"]


def _no_pdb(docs: list[dict[str, Any]]) -> None:
    docs.remove(find(docs, "PodDisruptionBudget", "user"))


def _no_hpa(docs: list[dict[str, Any]]) -> None:
    docs.remove(find(docs, "HorizontalPodAutoscaler", "gateway"))


def _job_without_state(docs: list[dict[str, Any]]) -> None:
    spec = find(docs, "Job", "user-migrate")["spec"]["template"]["spec"]
    spec["containers"][0]["volumeMounts"] = spec["containers"][0]["volumeMounts"][:1]


def _misspelt_config(docs: list[dict[str, Any]]) -> None:
    config = next(d for d in docs if d["metadata"]["name"].startswith("intellipost-config"))
    config["data"]["INTELLIPOST_GATEWAY_USERS_URL"] = "http://user:8001"


def _no_migration_job(docs: list[dict[str, Any]]) -> None:
    docs.remove(find(docs, "Job", "product-migrate"))


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (_runs_as_root, "user: pod does not run as non-root uid 10001"),
        (_writable_root, "product: product: root filesystem is writable"),
        (_no_readiness, "gateway: gateway: no readinessProbe on /health/ready"),
        (_short_grace, "mercadolibre: terminationGracePeriodSeconds 25 is not longer"),
        (_open_policy, "ai-content: ai-content-ingress admits anyone"),
        (_no_pdb, "user: no PodDisruptionBudget covers it"),
        (_no_hpa, "no HorizontalPodAutoscaler for the gateway"),
        (_no_migration_job, "no migration Job for product"),
        (_misspelt_config, "intellipost-config sets INTELLIPOST_GATEWAY_USERS_URL, which no"),
        (_job_without_state, "user-migrate: migrate: /tmp and the state directory are not"),
    ],
)
def test_k8s_rules_catch(breakage: Callable[[list[dict[str, Any]]], None], expected: str) -> None:
    docs = rendered("prod")
    breakage(docs)
    problems = k8s_problems(docs, "prod")
    assert any(p.startswith(f"k8s prod: {expected}") for p in problems), problems


def test_only_the_dev_overlay_runs_the_sandbox_and_in_cluster_datastores() -> None:
    def deployments(overlay: str) -> set[str]:
        return {d["metadata"]["name"] for d in rendered(overlay) if d["kind"] == "Deployment"}

    assert {"sandbox", "postgres", "redis"} <= deployments("dev")
    assert not {"sandbox", "postgres", "redis"} & deployments("prod")


def test_prod_refers_to_its_secret_and_dev_generates_one() -> None:
    prod = rendered("prod")
    assert not [d for d in prod if d["kind"] == "Secret"]
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in _container(prod, "user")["env"]
        if "valueFrom" in e
    }
    assert refs == {"intellipost-secrets"}
    dev_secrets = [d for d in rendered("dev") if d["kind"] == "Secret"]
    assert [s["metadata"]["name"].startswith("intellipost-secrets") for s in dev_secrets] == [True]


def test_dev_database_init_is_the_compose_one() -> None:
    compose_init = REPO / "deploy/compose/postgres/init-databases.sh"
    dev_init = REPO / "deploy/k8s/overlays/dev/postgres-init.sh"
    assert dev_init.read_text() == compose_init.read_text()
