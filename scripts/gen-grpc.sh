#!/usr/bin/env bash
# Regenerates the Open Inference Protocol's Python messages from the project's own .proto with
# grpcio-tools (a dev dependency): src/clawdbot/providers/oip/open_inference_pb2.py and .pyi.
# Only the messages are generated: the provider calls the methods by path (providers/oip/channel.py).
#
#   bash scripts/gen-grpc.sh [OUT_DIR]     (OUT_DIR: elsewhere, for the drift test)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/src"
out="${1:-$src}"
mkdir -p "$out/clawdbot/providers/oip"
"$root/.venv/bin/python" -m grpc_tools.protoc -I "$src" --python_out="$out" --pyi_out="$out" \
  "$src/clawdbot/providers/oip/open_inference.proto"
