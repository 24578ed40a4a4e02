#!/usr/bin/env bash
# Anthropic-dialect clients in front of an OpenAI upstream: clawdbot's /v1/messages against
# LiteLLM's own /v1/messages, the same mock behind both, in one run (../shared/bench's mock,
# LiteLLM venv and wrk: run its setup.sh once). Gateways pinned to CPU 1, mock and load on CPU 0.
#   bash bench/messages.sh [SECONDS_PER_REP] [REPS]
# Prints RPS (c64, whole and streamed, 16 chunks), gateway CPU per request, and the c=1 stream
# table of bench/stream_gaps.py (added first-token time and inter-event gaps against the mock).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
harness="$here/../shared/bench"
secs="${1:-5}"
reps="${2:-3}"
[ -x /tmp/bench-bin/mockllm ] || bash "$harness/setup.sh"
data="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
export BENCH_MOCK_BASE=http://127.0.0.1:18000/v1
taskset -c 0 /tmp/bench-bin/mockllm -addr 127.0.0.1:18000 >"$data/mock.log" 2>&1 & pids+=($!)
# LiteLLM sends an Anthropic request for an openai/ model to /v1/responses by default, which the mock
# does not serve; this setting makes it translate to /v1/chat/completions, as clawdbot does.
(cd "$harness" && LITELLM_LOG=ERROR LITELLM_LOCAL_MODEL_COST_MAP=True \
  LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES=True exec taskset -c 1 \
  /tmp/bench-litellm/bin/litellm --config litellm.yaml --host 127.0.0.1 --port 4000 --num_workers 1) \
  >"$data/litellm.log" 2>&1 & pids+=($!)
CLAWDBOT_DATA_DIR="$data" taskset -c 1 "$here/.venv/bin/clawdbot" serve --config "$here/bench/configs/bare.yaml" \
  --port 18789 >"$data/clawdbot.log" 2>&1 & pids+=($!)
declare -A url=([litellm]=http://127.0.0.1:4000 [clawdbot]=http://127.0.0.1:18789)
declare -A pid=([litellm]=${pids[1]} [clawdbot]=${pids[2]})
body='{"model":"mock-model","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
for t in litellm clawdbot; do
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null -H "Authorization: Bearer sk-bench" -H 'content-type: application/json' \
      -H 'anthropic-version: 2023-06-01' -d "$body" "${url[$t]}/v1/messages" && break
    sleep 0.2
  done
done
# the gateway process's CPU (LiteLLM's is `litellm`'s child python: the whole tree counts)
ticks() { local total=0; for p in $(pgrep -P "$1") "$1"; do total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $total; }
hz=$(getconf CLK_TCK)
declare -A rps cpu
for mode in 0 1; do
  for t in litellm clawdbot; do  # warm-up, not recorded
    MESSAGES_STREAM=$mode taskset -c 0 wrk -t1 -c64 -d2s --timeout 10s -s "$here/bench/messages.lua" "${url[$t]}/v1/messages" >/dev/null
  done
  for rep in $(seq 1 "$reps"); do
    for t in litellm clawdbot; do
      c0=$(ticks "${pid[$t]}")
      out="$(MESSAGES_STREAM=$mode taskset -c 0 wrk -t1 -c64 -d"${secs}s" --timeout 10s -s "$here/bench/messages.lua" \
        "${url[$t]}/v1/messages" | grep '^WRK')"
      c1=$(ticks "${pid[$t]}")
      read -r _ n us errs _ <<<"$out"
      r=$(awk -v n="$n" -v us="$us" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
      c=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.3f", t * 1000 / hz / n }')
      rps[$t,$mode]="${rps[$t,$mode]:-} $r"
      cpu[$t,$mode]="${cpu[$t,$mode]:-} $c"
      [ "$errs" = 0 ] || echo "warning: $t had $errs errors (mode $mode)" >&2
    done
  done
done
med() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "| target | RPS c64 whole | RPS c64 streamed (16 chunks) | gw CPU ms/req whole | gw CPU ms/req streamed |"
echo "|---|---:|---:|---:|---:|"
for t in litellm clawdbot; do
  echo "| $t /v1/messages | $(med "${rps[$t,0]}") | $(med "${rps[$t,1]}") | $(med "${cpu[$t,0]}") | $(med "${cpu[$t,1]}") |"
done
awk -v a="$(med "${rps[clawdbot,0]}")" -v b="$(med "${rps[litellm,0]}")" -v c="$(med "${rps[clawdbot,1]}")" \
  -v d="$(med "${rps[litellm,1]}")" 'BEGIN { printf "\nclawdbot / LiteLLM RPS: %.1fx whole, %.1fx streamed\n\n", a / b, c / d }'
taskset -c 0 /tmp/bench-venv/bin/python "$here/bench/stream_gaps.py" http://127.0.0.1:18000/v1 \
  clawdbot=http://127.0.0.1:18789/v1 litellm=http://127.0.0.1:4000/v1 --streams "${STREAMS:-100}"
