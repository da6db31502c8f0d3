# Flash Tickets — the two commands: `make up` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Stores (override in the environment). Tests create and drop their own databases on the
# DATABASE_URL server, and use their own Redis key prefixes and RabbitMQ names.
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/flash?sslmode=disable
export REDIS_URL ?= redis://127.0.0.1:6379
export AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/%2f

# `make up`: the whole suite on one origin, services on their own ports on loopback.
export FLASH_ADDR ?= 127.0.0.1:8080
export GATEWAY_ADDR ?= 127.0.0.1:3000
export API_ADDR ?= 127.0.0.1:4000
export PAY_OPS_ADDR ?= 127.0.0.1:3100
export FLASH_ADMIN_EMAIL ?= admin@flash.local
export FLASH_ADMIN_PASSWORD ?= flash-admin-local
# Local runs sign and verify tokens with derived, well-known keys, and hash passwords at a low
# Argon2 cost so a drill can sign up 20,000 buyers in seconds (never in production, where the
# defaults are 19 MiB and 2 passes).
export FLASH_DEV_KEYS ?= true
export ARGON2_MEMORY_KIB ?= 1024
export ARGON2_ITERATIONS ?= 1
# Missing stores, web-test tools and (for make validate) promtool and Terraform are installed
# when root or passwordless sudo allows it (INSTALL=0: never; INSTALL=1: always try).
INSTALL ?= auto
# Node.js for the web tests when the machine's is missing or older than 20: deps.sh installs it
# from PyPI into FLASH_NODE_DIR, whose bin/ (node, npm and npx only) comes first on PATH for
# every recipe (nothing changes while it does not exist).
export FLASH_NODE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/flash-node
export PATH := $(FLASH_NODE_DIR)/bin:$(PATH)

CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help deps build up drill drill-late-payments abuse test fmt lint unit validate alerts documents web-deps clean-test-data

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

deps: ## Make sure Postgres, Redis and RabbitMQ answer and the web tests' tools are here (installs what is missing when it can; INSTALL=0 never)
	@INSTALL=$(INSTALL) bash scripts/deps.sh

build: ## Build the release binaries
	$(CARGO) build --release --locked --bins

up: export FLASH_DEMO_EVENT ?= true
up: deps build ## Run the whole suite on http://127.0.0.1:8080 (FLASH_ADDR) until Ctrl-C
	@./target/release/flash-api migrate
	@echo "Flash Tickets on http://$(FLASH_ADDR)  (api :$(lastword $(subst :, ,$(API_ADDR))), gateway :$(lastword $(subst :, ,$(GATEWAY_ADDR))), pay ops :$(lastword $(subst :, ,$(PAY_OPS_ADDR))))"
	@echo "Admin login: $(FLASH_ADMIN_EMAIL) / $(FLASH_ADMIN_PASSWORD)  (local defaults; set FLASH_ADMIN_EMAIL/FLASH_ADMIN_PASSWORD to change)"
	@exec ./target/release/flash

drill: deps build ## A flash-sale drill (20,000 buyers, 2,000 tickets) against `make up`'s suite, started if not running (DRILL_ARGS="…" for more options)
	@bash loadtest/drill.sh $(DRILL_ARGS)

drill-late-payments: deps build ## The drill with payments that land after their hold (ORDER_HOLD_SECS=2, a provider taking ~1.5 s): each must be refunded exactly once; starts its own suite (2,000 buyers, 300 tickets; DRILL_ARGS="…" for more)
	@ORDER_HOLD_SECS=2 HOLD_SWEEP_MS=250 PAY_LATENCY_P50_MS=1500 PAY_LATENCY_P99_MS=5000 bash loadtest/drill.sh --late-payments --users 2000 --tickets 300 $(DRILL_ARGS)

abuse: deps build ## The drill with attackers beside the burst (flash-drill abuse) against a suite at the production Argon2 cost, started if not running (1,000 buyers, 200 tickets; DRILL_ARGS="…" for more)
	@DRILL_KIND=abuse ARGON2_MEMORY_KIB=19456 ARGON2_ITERATIONS=2 bash loadtest/drill.sh --users 1000 --tickets 200 --signup-concurrency 8 $(DRILL_ARGS)

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit: ## The workspace's tests against the real stores
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --locked --workspace --profile ci
else
	$(CARGO) test --locked --workspace
endif

validate: ## Offline checks of gitops/, argocd/, the Dockerfiles, workflows and infra/ (kustomize, schemas, promtool, hadolint, policy tests, terraform fmt, checkov; installs promtool when it can, INSTALL=0 never)
	@INSTALL=$(INSTALL) bash scripts/validate.sh

alerts: deps ## The alert rules, routing and dashboards on real Prometheus and Alertmanager against the suite's processes, with faults (gitops/tests/live_alerts_test.py; ALERTS_ARGS="--keep" keeps its logs)
	@bash scripts/live-alerts.sh $(ALERTS_ARGS)

documents: ## The OpenAPI and AsyncAPI documents of docs/ pass openapi-spec-validator and @asyncapi/parser (pinned, installed on first run), and every relative link of the README and docs/ leads somewhere
	@bash scripts/check-documents.sh

web-deps: ## Install the web UI's browser-test tools (npm ci in services/web/e2e)
	cd services/web/e2e && npm ci --no-audit --no-fund

test: deps web-deps lint unit documents validate alerts ## Everything CI runs: deps, fmt, clippy, every test (browser tests included), the API documents' validators, make validate, make alerts

clean-test-data: ## Drop test databases left by killed test runs
	@psql "$(DATABASE_URL)" -Atc "select datname from pg_database where datname like 'flash_test_%'" | \
	  while read -r db; do psql "$(DATABASE_URL)" -qc "drop database \"$$db\" with (force)"; echo "dropped $$db"; done
