# syntax=docker/dockerfile:1
# The clawdbot gateway image (docs/deploy.md).
#
#   docker build -t clawdbot .                                           # extras: postgres,redis
#   docker build -t clawdbot:local --build-arg EXTRAS=local,postgres,redis .   # + the embedded model
#   docker run --rm -p 127.0.0.1:18789:18789 -e CLAWDBOT_MASTER_KEY=... \
#     -v "$PWD/clawdbot.yaml:/etc/clawdbot/clawdbot.yaml:ro" clawdbot
#
# Two stages: `build` installs exactly what uv.lock pins (hashes checked, nothing resolved) into a
# virtual environment at /opt/clawdbot; the runtime stage gets that environment, tini and a
# non-root user, and no compiler. Nothing is fetched when the container runs.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Which optional dependencies go in (pyproject.toml): any of local, postgres, redis, grpc, otel,
# semantic, comma-separated. deploy/docker/extras.sh refuses any other name.
ARG EXTRAS=postgres,redis
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON_PREFERENCE=only-system \
    UV_PROJECT_ENVIRONMENT=/opt/clawdbot \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    CMAKE_ARGS="-DGGML_NATIVE=OFF"
# CMAKE_ARGS: llama.cpp (the `local` extra) is compiled here; without it, for this build machine's
# CPU only, and the image would crash with SIGILL on an older one.
COPY deploy/docker/extras.sh /usr/local/bin/clawdbot-extras
RUN set -eu; \
    clawdbot-extras "$EXTRAS" > /tmp/uv-extras; \
    case " $(cat /tmp/uv-extras) " in \
      *" local "*) apt-get update \
                   && apt-get install -y --no-install-recommends build-essential \
                   && rm -rf /var/lib/apt/lists/* ;; \
    esac; \
    python3 -m pip install "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml uv.lock README.md LICENSE ./
# The dependencies first, in a layer that survives edits of the source; then the project itself,
# installed as a package (not editable), so the runtime stage needs nothing from /src.
RUN uv sync --frozen --no-dev --no-install-project $(cat /tmp/uv-extras)
COPY src ./src
RUN uv sync --frozen --no-dev --no-editable $(cat /tmp/uv-extras) \
 && /opt/clawdbot/bin/clawdbot --version

FROM ${PYTHON_IMAGE} AS runtime
ARG PYTHON_IMAGE
ARG EXTRAS=postgres,redis
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="clawdbot" \
      org.opencontainers.image.description="A fast, lean, secure-by-default AI gateway: OpenAI, Anthropic and Ollama APIs in front of model servers, with a chat page" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}" \
      org.opencontainers.image.documentation="docs/deploy.md" \
      io.clawdbot.extras="${EXTRAS}"
# tini as PID 1 (docs/deploy.md "Signals"): the kernel ignores a signal a PID 1 has no handler for,
# so a Python PID 1 would sleep through `docker stop` while it starts (imports, a model load,
# migrations) and end SIGKILLed; tini forwards SIGTERM to the gateway, reaps the migration child
# and any orphan, and works the same under Kubernetes, which has no `docker run --init`.
# libgomp1: llama.cpp's OpenMP runtime, for the `local` extra only.
RUN set -eu; \
    packages="tini"; \
    case ",${EXTRAS}," in *,local,*) packages="$packages libgomp1" ;; esac; \
    apt-get update; \
    apt-get install -y --no-install-recommends $packages; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 clawdbot; \
    useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/clawdbot --no-create-home \
            --shell /usr/sbin/nologin clawdbot; \
    install -d -o 10001 -g 10001 -m 0700 /var/lib/clawdbot; \
    install -d -m 0755 /etc/clawdbot
COPY --from=build /opt/clawdbot /opt/clawdbot
# CLAWDBOT_HOST=0.0.0.0: the gateway then refuses to start without CLAWDBOT_MASTER_KEY (or
# server.master_key); the port and the data directory as environment beat the config file's.
ENV PATH=/opt/clawdbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/clawdbot \
    CLAWDBOT_HOST=0.0.0.0 \
    CLAWDBOT_PORT=18789 \
    CLAWDBOT_DATA_DIR=/var/lib/clawdbot
# The working directory is where the config is mounted: /etc/clawdbot/clawdbot.yaml is read as
# ./clawdbot.yaml with nothing else set (or name it: CLAWDBOT_CONFIG); without a file the gateway
# configures itself from the environment (CLAWDBOT_MODEL_ENDPOINT, docs/configuration.md).
WORKDIR /etc/clawdbot
USER 10001:10001
EXPOSE 18789
# No curl in the slim image: the standard library asks, on the loopback address (no proxy).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import http.client, os, sys; c = http.client.HTTPConnection('127.0.0.1', int(os.environ.get('CLAWDBOT_PORT') or 18789), timeout=4); c.request('GET', '/healthz'); sys.exit(c.getresponse().status != 200)"]
STOPSIGNAL SIGTERM
# -e 143: uvicorn re-raises the SIGTERM it handled once it has drained, so the gateway ends "killed
# by SIGTERM" (128 + 15); tini reports that clean stop as exit status 0.
ENTRYPOINT ["/usr/bin/tini", "-e", "143", "--"]
CMD ["clawdbot", "serve"]
