# One command per job, the same locally and in CI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= 2

# Every install comes from the hashed lock files in requirements/ (`make lock` writes them):
# build.txt (pip, setuptools), runtime.txt (what the service needs), dev.txt (runtime + the
# dev extra, same pins). `make run` installs runtime only; test, lint and bench add dev.
LOCK_BUILD := requirements/build.txt
LOCK_RUNTIME := requirements/runtime.txt
LOCK_DEV := requirements/dev.txt
# Stamps are named after what they installed, so a changed lock or pyproject.toml (even an
# older one checked out again) reinstalls.
digest = $(shell cat $(1) 2>/dev/null | sha1sum | cut -c1-12)
CLIENT := clients/python
RUNTIME_STAMP := $(VENV)/.runtime-$(call digest,pyproject.toml $(CLIENT)/pyproject.toml $(LOCK_BUILD) $(LOCK_RUNTIME))
DEV_STAMP := $(VENV)/.dev-$(call digest,pyproject.toml $(CLIENT)/pyproject.toml $(LOCK_BUILD) $(LOCK_RUNTIME) $(LOCK_DEV))
PIP := $(BIN)/python -m pip install --quiet

# The lock tool, pinned: only `make lock` installs and runs it.
UV_VERSION := 0.13.8
UV_STAMP := $(VENV)/.uv-$(UV_VERSION)
# --universal: one lock for every platform and Python >= 3.11 (markers pick the right pins),
# so the python:3.11-slim image and a laptop install the same versions.
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

.PHONY: install install-runtime lock run test lint bench clean redis-server wrk valgrind chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The project itself is not in the lock: installed without deps, built by the locked setuptools.
# So is our Python client (clients/python: httpx and pydantic, both locked), which the CLI's
# run/chat/tasks verbs use.
$(RUNTIME_STAMP): $(BIN)/python pyproject.toml $(CLIENT)/pyproject.toml $(LOCK_BUILD) $(LOCK_RUNTIME)
	$(PIP) --require-hashes -r $(LOCK_BUILD)
	$(PIP) --require-hashes -r $(LOCK_RUNTIME)
	$(PIP) --no-deps --no-build-isolation -e . -e $(CLIENT)
	rm -f $(VENV)/.runtime-* && touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) $(LOCK_DEV)
	$(PIP) --require-hashes -r $(LOCK_DEV)
	rm -f $(VENV)/.dev-* && touch $@

install-runtime: $(RUNTIME_STAMP)

install: $(DEV_STAMP)

# Re-resolve after editing pyproject.toml's dependencies: existing pins are kept where they
# still fit. `make lock UPGRADE=1` moves every pin to the newest release the ranges allow.
$(UV_STAMP): $(BIN)/python
	$(PIP) uv==$(UV_VERSION)
	rm -f $(VENV)/.uv-* && touch $@

lock: $(UV_STAMP)
	mkdir -p requirements
	$(UV_COMPILE) pyproject.toml -o $(LOCK_RUNTIME)
	$(UV_COMPILE) pyproject.toml --extra dev -c $(LOCK_RUNTIME) -o $(LOCK_DEV)
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], "pip", sep="\n")' \
	  | $(UV_COMPILE) - -o $(LOCK_BUILD)

run: install-runtime
	$(BIN)/agent-service serve

# Tests start their own redis-server on a free port; make sure the binary exists.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null); \
	  else \
	    echo "redis-server is missing: install it (Debian/Ubuntu: sudo apt-get install redis-server)"; exit 1; \
	  fi; }

# The playground's browser test drives Debian's chromium (never a downloaded browser).
chromium:
	@[ -x /usr/bin/chromium ] || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
	  else \
	    echo "chromium is missing: install it (Debian/Ubuntu: sudo apt-get install chromium)"; exit 1; \
	  fi; }

test: install redis-server chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

lint: install
	$(BIN)/ruff check app tests bench docker clients/python
	$(BIN)/ruff format --check app tests bench docker clients/python
	$(BIN)/mypy

# wrk is the load generator when present (a C client leaves the server more CPU).
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) || true; \
	  fi; }

valgrind:
	@command -v valgrind >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null) || true; \
	  fi; }

bench: install redis-server wrk valgrind
	$(BIN)/python -m bench.middleware_overhead
	$(BIN)/python -m bench.security_overhead
	$(BIN)/python -m bench.task_throughput
	$(BIN)/python -m bench.redis_topologies
	$(BIN)/python -m bench.run_log
	$(BIN)/python -m bench.agent_path
	$(BIN)/python -m bench.agent_microbench
	$(BIN)/python -m bench.adapter_langgraph
	$(BIN)/python -m bench.adapter_pydantic_ai
	$(BIN)/python -m bench.adapter_openai_agents
	$(BIN)/python -m bench.adapter_llamaindex
	$(BIN)/python -m bench.openai_compat
	$(BIN)/python -m bench.tracing_overhead
	$(BIN)/python -m bench.tracing_microbench
	$(BIN)/python -m bench.tracing_instructions
	$(BIN)/python -m bench.budget_microbench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
