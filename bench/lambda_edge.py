"""Lambda benchmark: the `edge` handler's cold start and warm latency, storing into SQS on moto.

    .venv/bin/python bench/lambda_edge.py [--requests 200]

Each measurement runs in a fresh interpreter, as an execution environment would: it starts a
moto server on 127.0.0.1 (DynamoDB, SQS), creates the table and queues, then prints how long
importing the handler module took, how long the first invocation took (it builds the
container and its clients), and p50/p99 of the warm invocations (API Gateway HTTP API events
carrying distinct Aloware calls, each answered 202 once on the queue).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's one line per request

    from pulse.adapters_out.aws_infra import create_infra

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    keys = {"access_key_id": "testing", "secret_access_key": "testing"}
    asyncio.run(
        create_infra(
            region="us-east-1",
            endpoint_url=endpoint,
            table="pulse-bench",
            queue="pulse-bench",
            dead_letter_queue="pulse-bench-dlq",
            **keys,
        )
    )
    secret = secrets.token_urlsafe(24)
    os.environ.update(
        INBOX="sqs",
        LEDGER="dynamodb",
        DYNAMO_TABLE="pulse-bench",
        SQS_QUEUE="pulse-bench",
        SQS_DLQ="pulse-bench-dlq",
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        ALOWARE_SECRET=secret,
        HUBSPOT_CLIENT_SECRET=secrets.token_urlsafe(24),
        DATA_DIR=tempfile.mkdtemp(prefix="pulse-bench-"),
        LOG_LEVEL="WARNING",
    )
    event = json.loads((ROOT / "tests/specs/aws/apigateway-http-api-v2-event.json").read_text())
    event["headers"]["authorization"] = f"Bearer {secret}"

    started = time.perf_counter()
    from pulse.bootstrap import lambda_handler

    imported = time.perf_counter() - started
    started = time.perf_counter()
    importlib.import_module("pulse.bootstrap.container")  # what the first invocation imports
    container_imported = time.perf_counter() - started
    timings = []
    for n in range(args.requests + 1):
        body = json.loads(event["body"])
        body["body"]["id"] = str(n)
        event["body"] = json.dumps(body)
        began = time.perf_counter()
        answer = lambda_handler.edge(event, None)
        timings.append(time.perf_counter() - began)
        assert answer["statusCode"] == 202, answer
    warm = sorted(timings[1:])
    print(f"handler module import: {imported * 1000:.0f} ms")
    print(f"container module import: {container_imported * 1000:.0f} ms")
    print(f"first invocation (settings, container, clients, one put): {timings[0] * 1000:.0f} ms")
    print(
        f"warm: p50 {statistics.median(warm) * 1000:.1f} ms, "
        f"p99 {warm[int(len(warm) * 0.99) - 1] * 1000:.1f} ms over {len(warm)} invocations"
    )
    server.stop()


if __name__ == "__main__":
    main()
