#!/usr/bin/env bash
# Quick loop for a hot-path change: the gateway's CPU per request under wrk (c64, 0 ms mock), one
# config, no LiteLLM. Not a replacement for ../shared/bench (record that); a faster way to see
# whether a change moved the number.
#   bash bench/cpu.sh [CONFIG] [SECONDS]     CONFIG: a name in bench/configs (default plugins) or a file
#   STREAM=1 ...                             streamed requests (16 chunks, no gap)
#   WARMUP_S=15 ...                          a longer warm-up (what loads at first use, e.g. the request log's SQL layer)
#   PYSPY=/path/to/py-spy ...                also record collapsed stacks (--gil) to /tmp/cpu-<config>.txt
#   CLAWDBOT_REDIS_URL=... bash bench/cpu.sh keyed    (the keyed config needs its key: see keyed.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cfg="${1:-plugins}"
cfg_file="$here/bench/configs/$cfg.yaml"
if [ -f "$cfg" ]; then cfg_file="$(cd "$(dirname "$cfg")" && pwd)/$(basename "$cfg")"; cfg="$(basename "$cfg" .yaml)"; fi
secs="${2:-10}"
harness="$here/../shared/bench"
[ -x /tmp/bench-bin/mockllm ] || bash "$harness/setup.sh"
port=18790
data="$(mktemp -d)"
cleanup() { kill "${gw:-}" "${mock:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
taskset -c 0 /tmp/bench-bin/mockllm -addr 127.0.0.1:18000 >/dev/null 2>&1 & mock=$!
export BENCH_MOCK_BASE=http://127.0.0.1:18000/v1 BENCH_PORT=$port CLAWDBOT_DATA_DIR="$data" CLAWDBOT_REDIS_PREFIX="clawdbot-cpu-$$:"
taskset -c 1 "$here/.venv/bin/clawdbot" serve --config "$cfg_file" --port $port \
  >"$data/gw.log" 2>&1 & gw=$!
for _ in $(seq 1 200); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
  sleep 0.1
done
if [ "$cfg" = keyed ]; then  # the bench key as a virtual key with limits and a budget (as keyed.sh)
  BENCH_KEY="sk-cb-bench-0123456789abcdefghijklmnopqrstuvwxyzABCD"
  curl -sf -o /dev/null "http://127.0.0.1:$port/admin/api/keys" -H "Authorization: Bearer sk-bench-master" \
    -H 'Content-Type: application/json' -d "{\"name\": \"bench\", \"key\": \"$BENCH_KEY\", \"rpm\": 100000000,
    \"tpm\": 2000000000, \"max_parallel\": 100000, \"budget_usd\": 1000000000}"
fi
[ -n "${OPEN_DB:-}" ] && curl -s -o /dev/null "http://127.0.0.1:$port/admin/api/requests" -H "Authorization: Bearer sk-bench"
export BENCH_KEY="${BENCH_KEY:-sk-bench}" BENCH_STREAM="${STREAM:-0}"
wrk -t1 -c64 -d"${WARMUP_S:-3}s" -s "$harness/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
ticks() { awk '{print $14+$15}' "/proc/$gw/stat"; }
t0=$(ticks)
threads0="$(for t in /proc/$gw/task/*; do echo "$(basename "$t") $(awk '{print $14+$15}' "$t/stat") $(tr -c 'a-zA-Z0-9\n-' _ <"$t/comm") $(awk '/ctxt_switches/ {s += $2} END {print s}' "$t/status")"; done)"
if [ -n "${PYSPY:-}" ]; then
  "$PYSPY" record ${PYSPY_FLAGS:---gil} -r 500 -f raw -d "$secs" -p "$gw" -o "/tmp/cpu-$cfg.txt" >/dev/null 2>&1 &
  spy=$!
fi
out="$(taskset -c 0 wrk -t1 -c64 -d"${secs}s" -s "$harness/post.lua" "http://127.0.0.1:$port/v1/chat/completions")"
t1=$(ticks)
[ -n "${spy:-}" ] && wait "$spy" || true
threads1="$(for t in /proc/$gw/task/*; do echo "$(basename "$t") $(awk '{print $14+$15}' "$t/stat") $(tr -c 'a-zA-Z0-9\n-' _ <"$t/comm") $(awk '/ctxt_switches/ {s += $2} END {print s}' "$t/status")"; done)"
reqs=$(sed -n 's/.*"requests":\([0-9]*\).*/\1/p' <<<"$out")
hz=$(getconf CLK_TCK)
awk -v r="$reqs" -v t=$((t1 - t0)) -v hz="$hz" -v s="$secs" -v c="$cfg" \
  'BEGIN { printf "%s: %d requests in %ss, %.0f rps, gateway CPU %.3f ms/request\n", c, r, s, r/s, t*1000/hz/r }'
# per thread (the event loop's, and any worker: aiosqlite's writer, the spend journal's), us/request
join <(sort <<<"$threads0") <(sort <<<"$threads1") | awk -v r="$reqs" -v hz="$(getconf CLK_TCK)" \
  '{ d = $5 - $2; if (d > 0) printf "  thread %s %s: %.1f us/request, %.2f context switches/request\n", $1, $3, d * 1e6 / hz / r, ($7 - $4) / r }'
