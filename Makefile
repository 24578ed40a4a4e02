# The two commands the README promises: `make serve` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null)

.PHONY: serve test check lint install install-dev services nightly audit

serve: install
	uv run --frozen --no-dev --extra local clawdbot serve

install:
ifndef UV
	python3 -m pip install --quiet 'uv>=0.5'
endif
	uv sync --frozen --no-dev --extra local

install-dev:
ifndef UV
	python3 -m pip install --quiet 'uv>=0.5'
endif
	uv sync --frozen --all-extras --no-extra presidio

lint: install-dev
	uv run --frozen ruff check src tests
	uv run --frozen mypy

test: install-dev lint
	bash scripts/ensure-services.sh
	bash scripts/ensure-peers.sh
	bash scripts/audit.sh --ci
	bash scripts/run-tests.sh

# The deep checks, too slow for every change: the property tests' nightly profile (100,000+
# generated inputs, tests/property/README.md), then the API fuzzing with more examples.
nightly: install-dev
	bash scripts/ensure-services.sh
	bash scripts/ensure-peers.sh
	CLAWDBOT_HYPOTHESIS_PROFILE=nightly bash scripts/run-tests.sh tests/property --hypothesis-show-statistics
	CLAWDBOT_FUZZ_EXAMPLES=100 bash scripts/run-tests.sh tests/e2e/test_schemathesis.py

# Known vulnerabilities in uv.lock, strictly (status 3, "could not be done", fails too).
audit: install-dev
	bash scripts/audit.sh
