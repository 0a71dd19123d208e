# Pulse daemon on embedded defaults: `docker build -t pulse .` then
#   docker run --stop-timeout 30 -p 8080:8080 -v pulse-data:/data \
#     -e ALOWARE_SECRET=… -e HUBSPOT_CLIENT_SECRET=… pulse
# SIGTERM drains in-flight batches within DRAIN_TIMEOUT_SEC (default 10 s): --stop-timeout (or
# ECS stopTimeout) above it, or Docker's SIGKILL after its default 10 s cuts the drain short.
# Lambda mode (README "Running on Lambda"): `docker build --target lambda -t pulse-lambda .`;
# the daemon is the last stage, so a plain `docker build` still builds it.
FROM python:3.11.14-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Reproducible: every runtime dependency (and the build backend) at the version and hash in
# requirements.lock (`make lock` writes it); then Pulse itself, with nothing more resolved.
COPY requirements.lock ./
RUN pip install --no-deps --require-hashes -r requirements.lock

COPY pyproject.toml setup.py README.md ./
COPY core ./core
COPY ports ./ports
COPY adapters_in ./adapters_in
COPY adapters_out ./adapters_out
COPY bootstrap ./bootstrap
RUN pip install --no-deps --no-build-isolation .

# One image, two functions: the runtime interface client (awslambdaric, in requirements.lock)
# runs the handler the function's ImageConfig.Command names; `edge` here unless overridden,
# `pulse.bootstrap.lambda_handler.worker` for the SQS function. Lambda runs it as its own
# non-root user, and only /tmp is writable there.
FROM base AS lambda
ENV DATA_DIR=/tmp/pulse
USER 10001:10001
ENTRYPOINT ["python", "-m", "awslambdaric"]
CMD ["pulse.bootstrap.lambda_handler.edge"]

FROM base AS daemon
RUN groupadd --system --gid 10001 pulse \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin pulse \
    && mkdir -p /data \
    && chown 10001:10001 /data

# HOST=0.0.0.0: the default (127.0.0.1) would be unreachable from outside the container.
ENV DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8080

VOLUME ["/data"]
EXPOSE 8080
# Numeric, so the platform can check it is not root without reading /etc/passwd.
USER 10001:10001

# slim has no curl: Python's urllib raises (exit 1) on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/healthz', timeout=4)"]

STOPSIGNAL SIGTERM
CMD ["pulse", "serve"]
