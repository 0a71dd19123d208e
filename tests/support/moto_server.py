"""A moto server (DynamoDB, SQS) on 127.0.0.1 for the whole session: every AWS call crosses real HTTP."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session
from moto.server import ThreadedMotoServer

from pulse.adapters_out.dynamodb.client import dynamodb_client
from pulse.adapters_out.dynamodb.infra import ensure_table
from pulse.adapters_out.sqs.client import sqs_client
from pulse.adapters_out.sqs.infra import ensure_queues

REGION = "us-east-1"
# Dummy credentials: moto checks none, and real ones must never be needed by the tests.
CREDENTIALS: dict[str, Any] = {"access_key_id": "testing", "secret_access_key": "testing"}

_server: ThreadedMotoServer | None = None
_session: AioSession | None = None
_url: str | None = None
_lock = threading.Lock()


def _dynamodb_requests_atomic() -> None:
    """DynamoDB applies each request atomically: a conditional write checks and writes as one.
    moto's threaded server runs requests side by side with no lock, so under load two
    conditional puts of one item could both pass (seen: two callers granted one Power BI slot
    of the shared budget at the same instant). One lock around moto's DynamoDB handler gives
    the server the documented behaviour; the clients under test are untouched. (SQS requests are
    not locked whole: a receive long-polls inside its handler; see _sqs_sends_never_lost.)"""
    from moto.dynamodb.responses import DynamoHandler

    handle = DynamoHandler.call_action
    if getattr(handle, "atomic", False):
        return
    requests = threading.Lock()

    def call_action(self: DynamoHandler) -> Any:
        with requests:
            return handle(self)

    call_action.atomic = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def _sqs_sends_never_lost() -> None:
    """SQS never loses a message it accepted. moto's queue deletes a message by rebuilding its
    list from a snapshot, so a message sent by another request thread in between vanished:
    202 answered, never received, no ledger item, queue and DLQ empty (seen: 1 of 1,200 in the
    shared-budget proof, in four of six loaded full runs). One lock makes a queue's add and
    delete one at a time; the receive's long poll is not held by it."""
    from moto.sqs.models import Queue

    if getattr(Queue.add_message, "atomic", False):
        return
    changes = threading.RLock()  # add_message may delete (a Lambda-mapped queue)
    add, delete = Queue.add_message, Queue.delete_message

    def add_message(self: Queue, message: Any) -> None:
        with changes:
            add(self, message)

    def delete_message(self: Queue, receipt_handle: str) -> None:
        with changes:
            delete(self, receipt_handle)

    add_message.atomic = True  # type: ignore[attr-defined]
    Queue.add_message = add_message  # type: ignore[method-assign]
    Queue.delete_message = delete_message  # type: ignore[method-assign]


def moto_endpoint() -> str:
    """The session's moto server URL, started on first use (contract factories call this too)."""
    global _server, _url
    with _lock:
        if _url is None:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
            _dynamodb_requests_atomic()
            _sqs_sends_never_lost()
            _server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            _server.start()
            host, port = _server.get_host_and_port()
            _url = f"http://{host}:{port}"
        return _url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _server, _url
    if _server is not None:
        _server.stop()
        _server, _url = None, None


@pytest.fixture(scope="session")
def moto_url() -> str:
    return moto_endpoint()


def unique(prefix: str) -> str:
    """Tests share one server, so each gets its own table and queue names."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _shared_session() -> AioSession:
    """One aiobotocore session for the run: a client then costs milliseconds, not a model load."""
    global _session
    if _session is None:
        _session = get_session()
    return _session


@asynccontextmanager
async def dynamodb(endpoint: str | None = None, **options: Any) -> AsyncIterator[Any]:
    opened = asynccontextmanager(dynamodb_client)(
        REGION, endpoint or moto_endpoint(), session=_shared_session(), **CREDENTIALS, **options
    )
    async with opened as client:
        yield client


@asynccontextmanager
async def sqs(endpoint: str | None = None) -> AsyncIterator[Any]:
    opened = asynccontextmanager(sqs_client)(
        REGION, endpoint or moto_endpoint(), session=_shared_session(), **CREDENTIALS
    )
    async with opened as client:
        yield client


async def new_table(client: Any) -> str:
    name = unique("pulse")
    await ensure_table(client, name, dry_run=False)
    return name


async def new_queues(client: Any, max_receive_count: int = 5) -> tuple[str, str]:
    queue = unique("pulse-inbox")
    dlq = f"{queue}-dlq"
    await ensure_queues(
        client, queue, dlq, max_receive_count=max_receive_count, visibility_sec=30, dry_run=False
    )
    return queue, dlq
