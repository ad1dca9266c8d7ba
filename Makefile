# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
.DEFAULT_GOAL := help
.PHONY: help install run migrate migration test lint format browser haproxy oidc pgbouncer wrk bench bench-import

# uv from PATH, or installed with pip into .tools/ when missing.
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
# Use the Python on this machine; never download one.
export UV_PYTHON_DOWNLOADS := never
RUN := $(UV) run --locked

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv>=0.9,<1"

install: $(UV)  ## Create .venv from uv.lock
	$(UV) sync --locked

migrate: install  ## Apply the migrations to DATABASE_URL (aerich upgrade)
	$(RUN) aerich upgrade

# Needs the PostgreSQL and MariaDB servers the tests use (TEST_POSTGRES_URL, TEST_MYSQL_URL).
migration:  ## Write one migration for all three databases: make migration name=add_first_name
	@test -n "$(name)" || { echo "usage: make migration name=add_first_name" >&2; exit 2; }
	$(RUN) python -m migrations.make "$(name)"

run: migrate  ## Serve the app (SQLite by default) on HOST:PORT
	$(RUN) python main.py

lint: install  ## ruff (lint and format check) and mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: install  ## Fix what ruff can fix
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

# The browser tests drive Debian's chromium through Playwright; a browser is never downloaded.
browser:  ## Install Debian's chromium for the browser tests (as root; skipped otherwise)
	@command -v chromium >/dev/null \
	  || { [ "$$(id -u)" = 0 ] && apt-get update && apt-get install -y --no-install-recommends chromium; } \
	  || echo "chromium is missing: the browser tests will be skipped (and fail with CI=true)"

# The load-balancer tests (tests/test_scale.py) start Debian's haproxy themselves, never its service.
haproxy:  ## Install Debian's haproxy for the load-balancer tests (as root; skipped otherwise)
	@command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] \
	  || { [ "$$(id -u)" = 0 ] && apt-get update && apt-get install -y --no-install-recommends haproxy; } \
	  || echo "haproxy is missing: the load-balancer tests will be skipped (and fail with CI=true)"

# The OAuth tests run panva's oidc-provider (tests/oidc/) with node, installed from its lock.
oidc:  ## Install the OpenID provider of the OAuth tests (npm ci in tests/oidc)
	@command -v npm >/dev/null \
	  || { [ "$$(id -u)" = 0 ] && apt-get update && apt-get install -y --no-install-recommends nodejs npm; } \
	  || echo "node/npm are missing: the OAuth tests will be skipped (and fail with CI=true)"
	@! command -v npm >/dev/null || (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)

# tests/test_pgbouncer.py runs a PgBouncer of its own in front of the test PostgreSQL.
pgbouncer:  ## Install Debian's pgbouncer for the PgBouncer test (as root; skipped otherwise)
	@command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] \
	  || { [ "$$(id -u)" = 0 ] && apt-get update && apt-get install -y --no-install-recommends pgbouncer; } \
	  || echo "pgbouncer is missing: the PgBouncer test will be skipped (and fail with CI=true)"

test: lint browser haproxy oidc pgbouncer  ## Lint, type-check and run the whole suite
	$(RUN) pytest $(PYTEST_ARGS)

wrk:  ## Install Debian's wrk, the load generator of the benchmark (as root)
	@command -v wrk >/dev/null || { apt-get update && apt-get install -y --no-install-recommends wrk; }

bench: install wrk  ## Benchmark the service against a bare JWT route (BENCH_DATABASE, BENCH_WORKERS; under 5 minutes)
	$(RUN) python -m bench.run

bench-import: install  ## Benchmark `python -m app import` of 100k users against executemany
	$(RUN) python -m bench.import_users
