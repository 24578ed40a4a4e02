#!/usr/bin/env bash
# The gRPC test peers' venv, .peers/grpc: real MLServer and tritonclient's generated Triton proto
# (tests/peers/), kept apart from the main venv because both ship a proto package named `inference`.
# Idempotent: the sync is skipped while the stamp records the locked requirements' hash.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.peers/grpc"
reqs="$root/tests/peers/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$reqs" | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "" 2>/dev/null; then
  echo "ensure-peers: creating $venv"
  mkdir -p "$root/.peers"
  uv venv --quiet --clear -p 3.11 "$venv"
fi
echo "ensure-peers: syncing $venv with tests/peers/requirements.txt"
rm -f "$stamp"
# From uv's cache first: the registry answers every revalidation of llama-cpp-python's sdist as
# modified, and online uv then builds it again (~4 min on 2 cores) instead of reusing its wheel.
if ! VIRTUAL_ENV="$venv" uv pip sync --quiet --offline --python "$venv/bin/python" "$reqs" 2>/dev/null; then
  VIRTUAL_ENV="$venv" uv pip sync --quiet --python "$venv/bin/python" "$reqs"
fi
echo "$want" > "$stamp"
