# `make run`  - a working portal from a fresh clone: venv, frontend, migrate, demo, then the Procfile's
#              web + grpc + worker + housekeeping + beat under supervisord (a process that dies is restarted).
# `make test` - the whole suite on real PostgreSQL, Redis, a Celery worker and headless Chromium.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WEB_PORT ?= 8000
export WEB_PORT
GRPC_PORT ?= 8001
export GRPC_PORT

# Test services: the machine's PostgreSQL (pytest-django makes its own test_ database) and a Redis
# database number of its own, so a running `make run` portal is never disturbed.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

# The Procfile entries `make run` starts (gpuworker runs on GPU hosts only).
RUN_PROCESSES := web grpc worker housekeeping beat

.PHONY: run logs test lint venv frontend browser check-redis migrate seed bench clean

# The example model-type plugins are installed in development mode, as a team installs its own.
EXAMPLE_PLUGINS := examples/portal-example-models

$(VENV)/.installed: requirements.txt $(EXAMPLE_PLUGINS)/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps -e $(EXAMPLE_PLUGINS)
	touch $@

venv: $(VENV)/.installed

FRONTEND_SOURCES := $(shell find frontend2/src frontend2/index.html frontend2/package.json frontend2/package-lock.json frontend2/vite.config.js -type f 2>/dev/null)

frontend2/node_modules/.installed: frontend2/package.json frontend2/package-lock.json
	cd frontend2 && npm ci --no-audit --no-fund --loglevel=error
	touch $@

frontend2/dist/.vite/manifest.json: frontend2/node_modules/.installed $(FRONTEND_SOURCES)
	cd frontend2 && npm run build --silent

frontend: frontend2/dist/.vite/manifest.json

# Debian's Chromium for the browser tests (browser downloads do not work on these machines).
browser:
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser tests..."; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

check-redis: venv
	@$(PY) -c "import os, redis; url=os.environ.get('REDIS_URL','redis://127.0.0.1:6379/0'); redis.Redis.from_url(url, socket_connect_timeout=2).ping()" 2>/dev/null || { \
	  echo ""; echo "No Redis answers at $${REDIS_URL:-redis://127.0.0.1:6379/0}."; \
	  echo "The portal needs Redis for Celery, Channels and the cache. Start one with:"; \
	  echo "    redis-server --daemonize yes --port 6379 --save '' --appendonly no"; \
	  echo "or point REDIS_URL at one, then run 'make run' again."; exit 1; }

migrate: venv
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

run: venv frontend check-redis migrate
	$(PY) manage.py seed_demo
	@echo ""
	@echo "  MLOps portal:  http://127.0.0.1:$(WEB_PORT)/            (dashboard)"
	@echo "  Admin:         http://127.0.0.1:$(WEB_PORT)/admin/"
	@echo "  gRPC (V2):     127.0.0.1:$(GRPC_PORT)   (tritonclient.grpc, token in 'authorization' metadata)"
	@echo "  ML Staff:      staff / staff-demo-pass"
	@echo "  Analyst:       analyst / analyst-demo-pass"
	@echo "  API token:     $(PY) manage.py create_api_token staff"
	@echo "  Logs:          make logs   (var/supervisor/<process>.log)"
	@echo ""
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" exec $(PY) -m mlops_portal.supervise --dir var/supervisor $(RUN_PROCESSES)

logs:
	tail -n 20 -F $(foreach p,$(RUN_PROCESSES),var/supervisor/$(p).log)

lint: venv frontend2/node_modules/.installed
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/ruff format --check --no-cache .
	cd frontend2 && npm run lint --silent

test: venv frontend browser lint
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) manage.py makemigrations --check --dry-run
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) MEDIA_ROOT=$(CURDIR)/var/test-media \
	  $(PY) -m pytest -c tests/pytest.ini --rootdir . tests
	cd frontend2 && npm test --silent

bench: venv
	@echo "See README 'Benchmarks' for each bench/ command."

clean:
	rm -rf $(VENV) frontend2/node_modules frontend2/dist var
