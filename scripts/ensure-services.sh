#!/usr/bin/env bash
# What the test suite needs from the machine: PostgreSQL and Redis running on loopback, and
# Debian's Chromium for the browser tests (Playwright cannot download its own browser here), the
# other Debian programs tests drive (promtool, tmux, tinyproxy), and axe-core from the npm registry.
set -uo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "ensure-services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "ensure-services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "ensure-services: installing Debian's chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x /usr/bin/promtool ]; then  # `promtool check metrics` on /metrics (tests/e2e/test_metrics.py)
  echo "ensure-services: installing Debian's prometheus"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
if [ ! -x /usr/bin/tmux ]; then  # the terminal tests of `clawdbot chat`, `bench` and `models pull` (tests/cli/)
  echo "ensure-services: installing Debian's tmux"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null
fi
if [ ! -x /usr/bin/tinyproxy ]; then  # the outbound proxy tests of the upstream client (tests/providers/)
  echo "ensure-services: installing Debian's tinyproxy"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tinyproxy >/dev/null
fi
# axe-core for the panel's accessibility check (tests/browser/test_panel_a11y.py), at the version
# tests/browser/axe/package-lock.json pins
if [ ! -f "$(dirname "$0")/../tests/browser/axe/node_modules/axe-core/axe.min.js" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "ensure-services: installing Debian's npm"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  echo "ensure-services: installing axe-core (npm ci)"
  (cd "$(dirname "$0")/.." && npm ci --prefix tests/browser/axe --no-audit --no-fund >/dev/null)
fi
for i in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.2
done
pg_isready -h 127.0.0.1 -p 5432 || { echo "ensure-services: PostgreSQL is not reachable" >&2; exit 1; }
