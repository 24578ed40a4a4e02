#!/usr/bin/env bash
# ../shared/bench with a clawdbot running pii + access + content_filter + the exact cache (all
# misses: bench/configs/plugins.yaml) beside LiteLLM; BENCH_CONFIG=cache_hit: the cache alone, every
# request after the first a hit (bench/configs/cache_hit.yaml); BENCH_CONFIG=pii: masking alone
# (bench/configs/pii.yaml). Extra arguments go to the harness.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
harness="$here/../shared/bench"
[ -x /tmp/bench-bin/mockllm ] || bash "$harness/setup.sh"
cd "$harness"
exec ./run.sh direct litellm \
  --cmd "CLAWDBOT_DATA_DIR=\$(mktemp -d) exec $here/.venv/bin/clawdbot serve --config $here/bench/configs/${BENCH_CONFIG:-plugins}.yaml --port \$BENCH_PORT" \
  --cmd-port 18789 --cmd-name clawdbot-${BENCH_CONFIG:-plugins} "$@"
