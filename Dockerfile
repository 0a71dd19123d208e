# Pulse daemon on embedded defaults: `docker build -t pulse .` then
#   docker run -p 8080:8080 -v pulse-data:/data -e ALOWARE_SECRET=… -e HUBSPOT_CLIENT_SECRET=… pulse
# SIGTERM drains in-flight batches (DRAIN_TIMEOUT_SEC, default 10 s, plus up to 5 s for requests
# being stored): give the container more than Docker's default 10 s, e.g. `docker stop -t 30`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Runtime dependencies only (no dev/test extra); the source is installed, not mounted.
COPY pyproject.toml README.md ./
COPY core ./core
COPY ports ./ports
COPY adapters_in ./adapters_in
COPY adapters_out ./adapters_out
COPY bootstrap ./bootstrap
RUN pip install . \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin pulse \
    && mkdir -p /data \
    && chown pulse:pulse /data

# HOST=0.0.0.0: the default (127.0.0.1) would be unreachable from outside the container.
ENV DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8080

VOLUME ["/data"]
EXPOSE 8080
USER pulse

# slim has no curl: Python's urllib raises (exit 1) on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/healthz', timeout=4)"]

STOPSIGNAL SIGTERM
CMD ["pulse", "serve"]
