#!/usr/bin/env bash
# Runs ../shared/bench with clawdbot beside LiteLLM and nginx (the harness's README explains the
# method). Extra arguments go to the harness (e.g. --out DIR, or targets).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
harness="$here/../shared/bench"
[ -x /tmp/bench-bin/mockllm ] || bash "$harness/setup.sh"
cd "$harness"
exec ./run.sh direct nginx litellm \
  --cmd "CLAWDBOT_MODEL_ENDPOINT=\$BENCH_MOCK_BASE CLAWDBOT_MASTER_KEY=sk-bench exec $here/.venv/bin/clawdbot serve --port \$BENCH_PORT" \
  --cmd-port 18789 --cmd-name clawdbot "$@"
