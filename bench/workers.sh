#!/usr/bin/env bash
# `clawdbot serve --workers N` against `--workers 1` with the same load generator (issue 17): the
# bench's virtual key with limits and a budget (bench/configs/keyed.yaml), limits, budgets and
# breakers in Redis for both, spend and keys in one SQLite file; wrk from ../shared/bench (its
# setup.sh: /tmp/bench-bin/mockllm, Debian's wrk). Runs interleaved, REPS rounds of each.
#
#   bash bench/workers.sh [REPS] [SECONDS] [CONNECTIONS]      # default 3 rounds, 10 s, 64 connections
#   CONFIG=bench/configs/bare.yaml KEY=sk-bench bash bench/workers.sh ...   # the master key, no limits
#
# Nothing is pinned: on this 2-core VM the gateway's workers, the mock and wrk share both cores,
# which is what a user of --workers 2 on two cores gets. Prints one line per run and the medians.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
reps="${1:-3}"; secs="${2:-10}"; conns="${3:-64}"
key="${KEY:-sk-cb-bench-0123456789abcdefghijklmnopqrstuvwxyzABCD}"  # KEY=sk-bench with CONFIG=bench/configs/bare.yaml
port=18790
mock_pid=""
if ! curl -sf http://127.0.0.1:18000/health >/dev/null; then
  setsid /tmp/bench-bin/mockllm -addr 127.0.0.1:18000 >/dev/null 2>&1 &
  mock_pid=$!
fi
out="$(mktemp -d)"
trap '[ -n "$mock_pid" ] && kill $mock_pid 2>/dev/null; rm -rf "$out"' EXIT

run() {  # $1: workers -> "req/s cpu_ms_per_request"
  local n=$1 data="$out/data-$1-$RANDOM" gw
  mkdir -p "$data"
  BENCH_MOCK_BASE=http://127.0.0.1:18000/v1 CLAWDBOT_DATA_DIR="$data" \
  CLAWDBOT_REDIS_URL=redis://127.0.0.1:6379/0 CLAWDBOT_REDIS_PREFIX="bench-workers-$$-$n-$RANDOM:" \
    setsid "$here/.venv/bin/clawdbot" serve --config "${CONFIG:-$here/bench/configs/keyed.yaml}" --port $port --workers "$n" \
    >"$data/gateway.log" 2>&1 &
  gw=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/admin/api/keys" -H "Authorization: Bearer sk-bench-master" \
    -H 'Content-Type: application/json' -d "{\"name\": \"bench\", \"key\": \"$key\", \"rpm\": 100000000,
    \"tpm\": 2000000000, \"max_parallel\": 100000, \"budget_usd\": 1000000000}" >/dev/null || true  # bare.yaml: no keys
  BENCH_KEY=$key wrk -t1 -c"$conns" -d3s -s "$here/../shared/bench/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
  local t0 c0 rps t1 c1
  c0=$(ps -o cputimes= --sid "$gw" | awk '{s+=$1} END {print s+0}')
  rps=$(BENCH_KEY=$key wrk -t1 -c"$conns" -d"${secs}s" -s "$here/../shared/bench/post.lua" \
        "http://127.0.0.1:$port/v1/chat/completions" | awk '/Requests\/sec/ {print $2}')
  c1=$(ps -o cputimes= --sid "$gw" | awk '{s+=$1} END {print s+0}')
  kill -TERM -- "-$gw" 2>/dev/null; wait "$gw" 2>/dev/null || true
  python3 -c "print(f'{float(\"$rps\"):.0f} {1000 * ($c1 - $c0) / max(1.0, float(\"$rps\") * $secs):.3f}')"
}

declare -a one two
for r in $(seq "$reps"); do
  a=$(run 1); b=$(run 2)
  echo "round $r: --workers 1: $a   --workers 2: $b   (req/s, gateway CPU ms/request)"
  one+=("$a"); two+=("$b")
done
python3 - "${one[@]}" -- "${two[@]}" <<'PY'
import statistics, sys
args = sys.argv[1:]
cut = args.index("--")
def med(rows, i): return statistics.median(float(r.split()[i]) for r in rows)
one, two = args[:cut], args[cut + 1:]
print(f"| workers | req/s (median) | gateway CPU ms / request |\n|---|---:|---:|")
print(f"| 1 | {med(one, 0):.0f} | {med(one, 1):.3f} |\n| 2 | {med(two, 0):.0f} | {med(two, 1):.3f} |")
print(f"ratio 2/1: {med(two, 0) / med(one, 0):.2f}")
PY
