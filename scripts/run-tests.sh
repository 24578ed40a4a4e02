#!/usr/bin/env bash
# Runs the whole test suite; pytest's "no tests collected" (exit 5) is a failure, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
uv run --frozen pytest -q -p no:cacheprovider --junitxml=test-artifacts/junit.xml "$@"
code=$?
if [ "$code" -eq 5 ]; then
  echo "run-tests: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$code"
