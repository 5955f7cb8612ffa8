# aiorequestful: every target builds what it needs; nothing is installed by hand (README "Two commands").
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUST_SRC := $(shell find rust -name '*.rs' -o -name Cargo.toml 2>/dev/null) Cargo.toml Cargo.lock

.PHONY: help
help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.9.4,<2" "aiohttp>=3.11,<4" "orjson>=3.9" "python-dateutil>=2.9" \
		"aiosqlite>=0.20" "pytest>=8" "pytest-asyncio>=0.24" "pytest-timeout>=2.3" "hypothesis>=6.100" \
		"pytest-benchmark>=4" "ruff>=0.6" "mypy>=1.11" "matplotlib>=3.8" "psutil>=5.9" "redis>=5.0" "tqdm>=4.66" "protego>=0.3" \
		"prometheus-client>=0.17" "opentelemetry-sdk>=1.30" \
		"looptime>=0.9"
	touch $@

# The editable install puts python/ on the path and the release-built _native*.so beside the sources.
$(VENV)/.native: $(VENV)/.deps $(RUST_SRC)
	rm -f python/aiorequestful/_native*.so
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin develop --release --quiet
	touch $@

.PHONY: build-dev
build-dev: $(VENV)/.native ## Build the Rust extension into .venv (release profile)

# The demo gets a venv of its own with only what it needs: the package (native when cargo is here, the pure
# build otherwise, through the in-tree build backend), aiosqlite and tqdm.
DEMO_VENV := .venv-demo
PY_SRC := $(shell find python build_backend -name '*.py' 2>/dev/null)
$(DEMO_VENV)/.installed: pyproject.toml $(RUST_SRC) $(PY_SRC)
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEMO_VENV)/bin/python -m pip uninstall --yes --quiet aiorequestful 2>/dev/null || true
	$(DEMO_VENV)/bin/python -m pip install --quiet ".[demo]"
	touch $@

.PHONY: demo
demo: $(DEMO_VENV)/.installed ## Main job: crawl the bundled local demo server through RequestHandler (twice, via the SQLite cache)
	$(DEMO_VENV)/bin/python -m aiorequestful.demo

.PHONY: test
test: build-dev lint docs ## Everything CI runs: lint, docs, Rust tests, the suite native then pure, no-Rust sdist, oldest deps
	# The Redis tests start their own throw-away redis-server on 127.0.0.1; install it when missing.
	bash scripts/redis.sh install
	cargo test --workspace --quiet
	AIOREQUESTFUL_REQUIRE_EXTENSIONS=1 $(PY) -m pytest --require-native -q
	AIOREQUESTFUL_NO_EXTENSIONS=1 $(PY) -m pytest --no-native -q
	bash scripts/check_sdist_pure.sh
	bash scripts/check_oldest.sh

.PHONY: test-py
test-py: build-dev ## The Python suite only, native then pure
	AIOREQUESTFUL_REQUIRE_EXTENSIONS=1 $(PY) -m pytest --require-native -q
	AIOREQUESTFUL_NO_EXTENSIONS=1 $(PY) -m pytest --no-native -q

# The timing-sensitive tests: the flow-control modules, the timers, and every test marked `realtime` (those keep the
# real clock on purpose). Two busy loops started (and killed) here keep both cores loaded meanwhile; odd runs are
# native, even runs pure. The first failure stops it.
STRESS_RUNS ?= 5
STRESS_TESTS := $(sort $(wildcard tests/test_flow_*.py)) tests/test_redis_flow.py tests/test_timer.py tests/test_kernels_timer.py

.PHONY: stress
stress: build-dev ## Timing-sensitive tests (flow, timers, `realtime`) 5 times in a row with both cores kept busy
	bash scripts/redis.sh install
	@burners=""; trap 'kill $$burners 2>/dev/null' EXIT; \
	for _ in 1 2; do $(PY) -c "while True: pass" & burners="$$burners $$!"; done; \
	echo "stress: busy loops $$burners on both cores"; \
	for run in $$(seq $(STRESS_RUNS)); do \
		if [ $$((run % 2)) -eq 1 ]; then leg=native; env="AIOREQUESTFUL_REQUIRE_EXTENSIONS=1"; opt=--require-native; \
		else leg=pure; env="AIOREQUESTFUL_NO_EXTENSIONS=1"; opt=--no-native; fi; \
		echo "stress run $$run/$(STRESS_RUNS) ($$leg)"; \
		env $$env $(PY) -m pytest $$opt -q -x $(STRESS_TESTS) || exit 1; \
		env $$env $(PY) -m pytest $$opt -q -x -m realtime tests $(addprefix --ignore=,$(STRESS_TESTS)) || exit 1; \
	done; \
	echo "stress: $(STRESS_RUNS) runs passed under load"

.PHONY: lint
lint: build-dev ## ruff, mypy, stubtest, rustfmt, clippy
	$(VENV)/bin/ruff check python tests benches build_backend
	$(VENV)/bin/ruff format --check python tests benches build_backend
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest aiorequestful._native --allowlist .stubtest-allowlist
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings

.PHONY: format
format: $(VENV)/.deps ## Format Python and Rust
	$(VENV)/bin/ruff check --fix python tests benches build_backend
	$(VENV)/bin/ruff format python tests benches build_backend
	cargo fmt --all

.PHONY: bench
bench: build-dev ## Full benchmarks: writes benches/results/{latest.json,REPORT.md,ratios.png}
	# Client instructions per request are counted under valgrind's callgrind: install it when missing. Without it
	# the report says "not measured" for that part and everything else still runs.
	bash scripts/valgrind.sh install || true
	AIOREQUESTFUL_REQUIRE_EXTENSIONS=1 $(PY) -m benches.run

.PHONY: wheels
wheels: $(VENV)/.deps ## Release wheels for CPython 3.11-3.13 and the sdist into dist/, each wheel checked and smoke-tested
	bash scripts/build_wheels.sh dist

# The documentation toolchain (the `docs` extra of pyproject.toml) is installed on demand, only for `make docs`.
DOCS_DEPS := "sphinx>=7.2,<10" "furo>=2024.1" "myst-parser>=3"

$(VENV)/.docs: $(VENV)/.deps pyproject.toml
	$(PY) -m pip install --quiet $(DOCS_DEPS)
	touch $@

.PHONY: docs
docs: build-dev $(VENV)/.docs ## The documentation site into docs/_build/html (warnings fail it), then run every example in it
	# -E: read every page and docstring afresh, so a warning is never hidden by an incremental build.
	$(PY) -m sphinx -E -W --keep-going -q -b html docs docs/_build/html
	$(PY) -m pytest -q tests/test_docs_examples.py tests/test_docs_site.py

.PHONY: fleet-demo
fleet-demo: build-dev ## 4 worker processes share one Redis (started here); prints the rate the server measured
	@export AIOREQUESTFUL_REDIS_DIR=$${TMPDIR:-/tmp}/aiorequestful-fleet-demo; \
	url=$$(bash scripts/redis.sh start) && trap 'bash scripts/redis.sh stop' EXIT && \
	$(PY) scripts/fleet_demo.py --redis-url "$$url" --workers 4 --rate 20 --seconds 10

.PHONY: clean
clean: ## Remove build outputs and the venvs
	rm -rf target dist $(VENV) $(DEMO_VENV) .venv-oldest python/aiorequestful/_native*.so
