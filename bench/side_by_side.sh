#!/usr/bin/env bash
# Added latency at concurrency 1 of three clawdbots in one run, with ../shared/bench's client:
# plain (master key), keyed (a virtual key with limits, bench/keyed.sh) and keyed on Redis.
# Gateways on CPU 1, the mock and the client on CPU 0.   Usage: bash bench/side_by_side.sh [runs]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
shared="${CLAWDBOT_SHARED_BENCH:-$here/../../shared/bench}"
runs="${1:-3}"
key="sk-cb-bench-0123456789abcdefghijklmnopqrstuvwxyzABCD"
export BENCH_MOCK_BASE="http://127.0.0.1:18000/v1"
pids=()
trap 'for p in "${pids[@]}"; do kill -- -"$p" 2>/dev/null || true; done' EXIT
setsid taskset -c 0 /tmp/bench-bin/mockllm -addr 127.0.0.1:18000 >/dev/null 2>&1 & pids+=($!)
CLAWDBOT_MODEL_ENDPOINT=$BENCH_MOCK_BASE CLAWDBOT_MASTER_KEY=sk-bench CLAWDBOT_DATA_DIR="$(mktemp -d)" \
  setsid taskset -c 1 "$here/../.venv/bin/clawdbot" serve --port 18789 >/dev/null 2>&1 & pids+=($!)
BENCH_PORT=18790 setsid taskset -c 1 bash "$here/keyed.sh" >/dev/null 2>&1 & pids+=($!)
CLAWDBOT_REDIS_URL=redis://127.0.0.1:6379/0 BENCH_PORT=18791 setsid taskset -c 1 bash "$here/keyed.sh" >/dev/null 2>&1 & pids+=($!)
for port in 18789 18790 18791; do
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
done
sleep 2  # keyed.sh creates its key after /healthz answers
side() { printf '{"name": "%s", "base": "http://127.0.0.1:%s/v1", "model": "mock-model", "key": "%s"}' "$1" "$2" "$3"; }
for _ in $(seq "$runs"); do
  taskset -c 0 /tmp/bench-venv/bin/python "$shared/client.py" latency --direct "$BENCH_MOCK_BASE" \
    --gw "$(side plain 18789 sk-bench)" --gw "$(side keyed 18790 $key)" --gw "$(side keyed-redis 18791 $key)" \
    --n 3000 | tail -1 | sed 's/^CLIENTJSON //' | python3 -c '
import json, sys
d = json.load(sys.stdin)
for name, side in d["sides"].items():
    a = side["added_ms"]
    print("%-12s added p50 %.3f  p90 %.3f  p99 %.3f  errors %d" % (name, a["p50"], a["p90"], a["p99"], side["errors"]))'
done
