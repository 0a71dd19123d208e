"""A small HTTP proxy in front of moto that answers DynamoDB throttling errors on demand, and
delivers an SQS message twice in one receive, as SQS's at-least-once delivery may."""

from __future__ import annotations

import json
import time

from aiohttp import ClientSession, web

THROTTLED = {
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded.",
}
_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class FaultProxy:
    """Forwards every request to `upstream`, except that while `throttle_for` is running it
    answers HTTP 400 ProvisionedThroughputExceededException, and `lose_answers` requests are
    forwarded (the write happens) but answered with a throttle, as a lost response would be."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.forwarded = 0
        self.throttled = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lose_answers = 0
        self.duplicate_receives = 0  # the next N ReceiveMessage answers carry a message twice
        self._throttle_until = 0.0
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    def throttle_for(self, seconds: float) -> None:
        self._throttle_until = time.monotonic() + seconds

    @property
    def throttling(self) -> bool:
        return time.monotonic() < self._throttle_until

    async def start(self) -> str:
        self._session = ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            target = request.headers.get("X-Amz-Target", "")
            if self.throttling and target.startswith("DynamoDB_"):
                return self._throttle()
            assert self._session is not None
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            async with self._session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=body
            ) as answer:
                payload = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
            self.forwarded += 1
            if self.duplicate_receives > 0 and "ReceiveMessage" in target:
                payload = self._duplicated(payload)
            if self.lose_answers > 0:
                self.lose_answers -= 1
                return self._throttle()
            return web.Response(status=answer.status, body=payload, headers=kept)
        finally:
            self.in_flight -= 1

    def _duplicated(self, payload: bytes) -> bytes:
        answer = json.loads(payload)
        messages = answer.get("Messages") or []
        if not messages:
            return payload
        self.duplicate_receives -= 1
        answer["Messages"] = [messages[0], *messages]  # the same message id and receipt again
        return json.dumps(answer).encode()

    def _throttle(self) -> web.Response:
        self.throttled += 1
        return web.Response(
            status=400,
            body=json.dumps(THROTTLED).encode(),
            content_type="application/x-amz-json-1.0",
        )
