#!/usr/bin/env bash
# The soak benchmark (bench/soak.py: its docstring explains it): 10 minutes at 80% of the measured
# maximum by default; arguments go to soak.py (--duration, --warmup, --rps, --json, --pin, ...).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
exec "$here/.venv/bin/python" bench/soak.py "$@"
