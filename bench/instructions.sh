#!/usr/bin/env bash
# CPU instructions one request costs a clawdbot build, counted by valgrind's callgrind: the same
# number run after run whatever else the machine does (wall-clock numbers on this shared VM move by
# 10-20%), so two builds can be compared to a percent. Needs Debian's valgrind and ../shared/bench's
# mock (its setup.sh).
#
#   bash bench/instructions.sh [CHECKOUT] [REQUESTS] [stream]     # default: this checkout, 2000, non-stream
#   CONFIG=bench/configs/plugins.yaml bash bench/instructions.sh ...  # a config file (its master key: sk-bench)
#   CONFIG=bench/configs/keyed.yaml CLAWDBOT_REDIS_URL=redis://127.0.0.1:6379/0 ...  # a virtual key (keyed.sh)
#   WARMUP_S=60 ...   # a longer warm-up: what loads at the first use (the request log's SQL layer) first
#
# The gateway (with its .venv) runs under callgrind; after a 5 s warm-up (WARMUP_S) the counters are zeroed,
# REQUESTS requests are sent one after another over one keep-alive connection, and the counters
# dumped: instructions / REQUESTS is the cost of one request, the mock's share excluded.
set -euo pipefail
root="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
n="${2:-2000}"
stream=$([ "${3:-}" = "stream" ] && echo 1 || echo 0)
port=${PORT:-$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}  # a free one: two runs at once must not collide
out="$(mktemp -d)"
mock_pid=""
if ! curl -sf http://127.0.0.1:18000/health >/dev/null; then
  setsid /tmp/bench-bin/mockllm -addr 127.0.0.1:18000 >/dev/null 2>&1 &
  mock_pid=$!
fi
config=()
[ -n "${CONFIG:-}" ] && config=(--config "$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")")
BENCH_MOCK_BASE=http://127.0.0.1:18000/v1 \
CLAWDBOT_MODEL_ENDPOINT=http://127.0.0.1:18000/v1 CLAWDBOT_MASTER_KEY=sk-bench CLAWDBOT_DATA_DIR="$out" \
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" --dump-instr=no \
  "$root/.venv/bin/python" "$root/.venv/bin/clawdbot" serve "${config[@]}" --port "$port" >"$out/gateway.log" 2>&1 &
gw=$!
stop() {
  kill "$gw" 2>/dev/null && wait "$gw" 2>/dev/null || true
  if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; fi
}
trap stop EXIT
for _ in $(seq 600); do curl -sf "localhost:$port/healthz" >/dev/null && break; sleep 0.5; done
for _ in $(seq 50); do curl -sf http://127.0.0.1:18000/health >/dev/null && break; sleep 0.1; done
key=sk-bench
if [ "$(basename "${CONFIG:-}")" = keyed.yaml ]; then  # the bench key as a virtual key with limits (keyed.sh)
  key=sk-cb-bench-0123456789abcdefghijklmnopqrstuvwxyzABCD
  curl -s --max-time 300 -o "$out/key.json" "localhost:$port/admin/api/keys" -H "Authorization: Bearer sk-bench" \
    -H 'Content-Type: application/json' -d "{\"name\": \"bench\", \"key\": \"$key\", \"rpm\": 100000000,
    \"tpm\": 2000000000, \"max_parallel\": 100000, \"budget_usd\": 1000000000}"
fi
[ "$key" = sk-bench ] || grep -q "\"id\"" "$out/key.json" || { cat "$out/key.json" "$out/gateway.log"; exit 1; }
BENCH_KEY=$key BENCH_STREAM=$stream wrk -t1 -c8 -d"${WARMUP_S:-5}s" -s "$root/../shared/bench/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
callgrind_control -z "$gw" >/dev/null 2>&1
python3 - "$port" "$n" "$stream" "$key" <<'PY'
import http.client, json, sys
port, n, stream, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
body = {"model": "mock-model", "max_tokens": 32,
        "messages": [{"role": "user", "content": "Say hello. mock:delay=0 mock:chunks=16 mock:gap=0"}]}
if stream:
    body |= {"stream": True, "stream_options": {"include_usage": True}}
data, conn = json.dumps(body).encode(), http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    conn.request("POST", "/v1/chat/completions", body=data,
                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200, resp.status
PY
callgrind_control -d "$gw" >/dev/null 2>&1
total=$(grep -m1 '^summary:' "$out/cg.out.1" | awk '{print $2}')
echo "$root: $((total / n)) instructions per $([ "$stream" = 1 ] && echo stream || echo request) ($n, $total in all)"
