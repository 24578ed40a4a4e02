# The two commands the README promises: `make serve` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null)

.PHONY: serve test check lint install install-dev services

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
	bash scripts/audit.sh --ci
	bash scripts/run-tests.sh
