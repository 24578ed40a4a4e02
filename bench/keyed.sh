#!/usr/bin/env bash
# A clawdbot for ../shared/bench whose bench key is a virtual key with limits (tenancy's hot path).
#   ../shared/bench/run.sh direct litellm --cmd 'bash /work/main/bench/keyed.sh' --cmd-port 18789 \
#       --cmd-name clawdbot-keyed --cmd-key sk-cb-bench-0123456789abcdefghijklmnopqrstuvwxyzABCD
# With CLAWDBOT_REDIS_URL=redis://127.0.0.1:6379/0 in front: limits and budgets in Redis.
# Runs in the foreground (the bench stops its process group); each run starts from an empty data dir.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
key="sk-cb-bench-0123456789abcdefghijklmnopqrstuvwxyzABCD"
export CLAWDBOT_DATA_DIR="$(mktemp -d /tmp/clawdbot-bench-XXXXXX)"
export CLAWDBOT_REDIS_PREFIX="clawdbot-bench-$$:"
port="${BENCH_PORT:-18789}"
"$here/../.venv/bin/clawdbot" serve --config "$here/configs/keyed.yaml" --port "$port" &
gw=$!
trap 'kill $gw 2>/dev/null; wait $gw; rm -rf "$CLAWDBOT_DATA_DIR"' EXIT
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/admin/api/keys" -H "Authorization: Bearer sk-bench-master" \
  -H 'Content-Type: application/json' \
  -d "{\"name\": \"bench\", \"key\": \"$key\", \"rpm\": 100000000, \"tpm\": 2000000000, \"max_parallel\": 100000, \"budget_usd\": 1000000000}" >/dev/null
wait $gw
