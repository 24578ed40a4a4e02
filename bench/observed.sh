#!/usr/bin/env bash
# Issue 12's speed check: the same build with /metrics scraped every second and the request log
# on (bench/configs/observed.yaml) against it with both off (bench/configs/bare.yaml), in one
# ../shared/bench run. The harness takes one --cmd gateway, so the "off" gateway runs in the
# harness's `litellm` slot through a shim venv (/tmp/cb-off/bin/litellm); its rows are renamed
# `off` in the tables below. Extra arguments go to the harness.
#
#   bash bench/observed.sh [--duration 30 ...]
#   OFF_CONFIG=... ON_CONFIG=... bash bench/observed.sh      # other configs for the two sides
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
harness="$here/../shared/bench"
off_config="$(realpath "${OFF_CONFIG:-$here/bench/configs/bare.yaml}")"
on_config="$(realpath "${ON_CONFIG:-$here/bench/configs/observed.yaml}")"
[ -x /tmp/bench-bin/mockllm ] || bash "$harness/setup.sh" --no-litellm
mkdir -p /tmp/cb-off/bin
cat > /tmp/cb-off/bin/litellm <<SHIM
#!/usr/bin/env bash
# not LiteLLM: clawdbot with the request log off and nobody scraping, on the litellm slot's port
CLAWDBOT_DATA_DIR="\$(mktemp -d)" exec $here/.venv/bin/clawdbot serve --config $off_config --port 4000
SHIM
chmod +x /tmp/cb-off/bin/litellm
# the scraper is another program (Prometheus would run elsewhere): its loop goes on the load CPU,
# the gateway stays on the harness's gateway CPU and in the foreground
on="taskset -c 0 bash -c 'until curl -sf -o /dev/null http://127.0.0.1:\$BENCH_PORT/healthz; do sleep 0.1; done; \
while curl -s -o /dev/null -H \"Authorization: Bearer sk-bench\" http://127.0.0.1:\$BENCH_PORT/metrics; do sleep 1; done' & \
CLAWDBOT_DATA_DIR=\$(mktemp -d) exec $here/.venv/bin/clawdbot serve --config $on_config \
--port \$BENCH_PORT"
cd "$harness"
exec ./run.sh direct litellm --litellm-venv /tmp/cb-off --ref litellm \
  --cmd "$on" --cmd-port 18789 --cmd-name observed "$@"
