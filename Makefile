# IntelliPost developer commands. The two that matter: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# A Python 3.13 that is already on the machine: uv must never download one.
PYTHON313 ?= $(shell for p in /root/.pyenv/versions/3.13.*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13 python3.13; do \
	if "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1; then echo "$$p"; break; fi; done)
# uv from PATH when it answers, else a copy bootstrapped into .tools/ with pip.
UV ?= $(shell if uv --version >/dev/null 2>&1; then echo uv; else echo $(CURDIR)/.tools/uv/bin/uv; fi)

export UV_PYTHON := $(PYTHON313)
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy
export UV_NO_PROGRESS := 1

LOG_FORMAT ?= console
RUN := $(UV) run --frozen --no-sync
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help install run test test-only lint fmt bench demo clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(CURDIR)/.tools/uv/bin/uv:
	@test -n "$(PYTHON313)" || { echo "Python 3.13 not found (install it, or set PYTHON313=/path/to/python3.13)"; exit 1; }
	$(PYTHON313) -m pip install --quiet --disable-pip-version-check --target $(CURDIR)/.tools/uv uv

.venv/.synced: uv.lock pyproject.toml */pyproject.toml services/*/pyproject.toml | $(filter $(CURDIR)/.tools/%,$(UV))
	@test -n "$(PYTHON313)" || { echo "Python 3.13 not found (install it, or set PYTHON313=/path/to/python3.13)"; exit 1; }
	$(UV) sync --locked --all-packages
	@touch $@

install: .venv/.synced ## Create .venv with every component and the dev tools (bootstraps uv)

run: install ## Start the whole fleet on embedded defaults (Ctrl-C stops it)
	@mkdir -p var
	INTELLIPOST_LOG_FORMAT=$${INTELLIPOST_LOG_FORMAT:-$(LOG_FORMAT)} $(RUN) honcho -f deploy/local/Procfile -d . start

lint: install ## ruff (lint + format check) and mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy shared/src gateway/src services/*/src sandbox/src tests bench

fmt: install ## Format and autofix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

test-only: install ## Run the test suite without lint
	$(RUN) pytest $(PYTEST_ARGS)

test: lint test-only ## Lint, type-check and run every test

bench: install ## Gateway and logger benchmarks (see docs/BENCHMARKS.md); installs nginx and wrk
	@missing=""; for tool in nginx wrk; do \
		command -v $$tool >/dev/null 2>&1 || [ -x /usr/sbin/$$tool ] || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing$$missing with apt-get"; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq $$missing; \
	fi
	$(RUN) python -m bench.run $(BENCH_ARGS)

demo: install ## With `make run` going in another terminal: photos + prompt -> a listing on the sandbox
	$(RUN) python samples/demo.py --gateway $(or $(GATEWAY),http://localhost:8000)

clean: ## Remove local state and caches
	rm -rf var .venv .tools .mypy_cache .ruff_cache

# --- Containers and deployment (deploy/, docker-compose.yml, tests/containers/) -------------
# `make up` uses Docker Compose (v2.24+); set COMPOSE="podman compose" or similar elsewhere.
COMPOSE ?= docker compose
KUSTOMIZE_OVERLAYS := deploy/k8s/overlays/dev deploy/k8s/overlays/prod
YAMLLINT_CONFIG := {extends: default, rules: {line-length: {max: 120, allow-non-breakable-inline-mappings: true}, document-start: disable, truthy: {check-keys: false}}}

.PHONY: up down logs container-test lint-deploy

up: ## Build and start the fleet in containers (compose), waiting until every one is healthy
	$(COMPOSE) up --build --detach --wait

down: ## Stop the compose fleet (volumes are kept; `make down VOLUMES=1` drops them too)
	$(COMPOSE) down --remove-orphans $(if $(VOLUMES),--volumes)

logs: ## Follow the compose fleet's logs
	$(COMPOSE) logs --follow --tail=100

container-test: install ## Build every image with podman and check it in real containers (root)
	bash tests/containers/container-test.sh

lint: lint-deploy
lint-deploy: install ## hadolint, yamllint, kustomize + kubernetes-validate, compose and k8s rules
	$(RUN) hadolint deploy/docker/Dockerfile
	$(RUN) yamllint --strict -d '$(YAMLLINT_CONFIG)' docker-compose.yml deploy/
	@rendered=$$(mktemp) && trap 'rm -f "$$rendered"' EXIT && \
	for overlay in $(KUSTOMIZE_OVERLAYS); do \
		echo "kubectl kustomize $$overlay | kubernetes-validate --strict"; \
		$(RUN) kubectl kustomize $$overlay >"$$rendered" && \
		$(RUN) kubernetes-validate --strict --quiet "$$rendered" || exit 1; \
	done
	$(RUN) python -m tests.containers.deploy_rules
