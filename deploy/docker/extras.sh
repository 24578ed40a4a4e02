#!/bin/sh
# The Dockerfile's EXTRAS build argument ("postgres,redis") as uv's flags ("--extra postgres
# --extra redis"). Only the extras a gateway image may carry are accepted: `presidio` wants a spaCy
# model fetched at run time and `plot` serves the CLI's charts only. tests/deploy/test_dockerfile.py
# keeps this list within pyproject.toml's [project.optional-dependencies].
set -eu
ALLOWED="local postgres redis grpc otel semantic mcp"
flags=""
for extra in $(printf '%s' "${1-}" | tr ',' ' '); do
  case " $ALLOWED " in
    *" $extra "*) flags="$flags --extra $extra" ;;
    *) echo "EXTRAS: unknown extra '$extra' (allowed: $ALLOWED)" >&2; exit 1 ;;
  esac
done
printf '%s\n' "${flags# }"
