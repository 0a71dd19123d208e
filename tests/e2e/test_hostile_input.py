"""Hostile input through the real `pulse serve` (DESIGN §7 "A hardened edge"): the edge cases
found by hand, then a bounded fuzz run with a canary valid call every 25 requests. No answer
is a 5xx; every refusal, protocol-level ones included, is JSON with its request id; no secret
appears in any answer or in the daemon's log; every accepted envelope settles (counted,
ignored, gated, or dead-lettered with a reason), none stays in the inbox; every canary is
counted."""

from __future__ import annotations

import asyncio
import json
import random
import time

import aiohttp
import pytest

from pulse.adapters_in.http.admin.auth import signed_headers
from pulse.adapters_in.sources.hubspot import signature_v3
from tests.support.fuzz import Fuzzed, Fuzzer, dumps
from tests.support.local import disposed_call
from tests.support.raw_http import RawHttp
from tests.support.serve import PUBLIC_BASE_URL, Pulse, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REQUESTS = 2_500
CANARY_EVERY = 25
SEED = 20261201
SETTLE_SEC = 60.0
HUBSPOT_URL = f"{PUBLIC_BASE_URL}/webhooks/hubspot"
DISPOSED = dumps(disposed_call("1"))
TICKET = b'[{"eventId":1,"subscriptionType":"ticket.creation","objectId":5,"occurredAt":1}]'


def json_error(answer: tuple[int, dict[str, str], bytes], expected: int) -> dict[str, str]:
    status, headers, body = answer
    assert status == expected, body
    assert headers["content-type"].startswith("application/json"), headers
    assert headers["server"] == "Pulse"
    error: dict[str, str] = json.loads(body)["error"]
    assert error["request_id"] and error["request_id"] == headers["x-request-id"], body
    assert error["code"] and error["message"]
    return error


async def edge_cases(pulse: Pulse, http: RawHttp) -> list[bytes]:
    """Each case of the hardened-edge issue, answered as it must be; the answers' bytes."""
    bearer = {"Authorization": f"Bearer {pulse.aloware_secret}"}
    secret = pulse.aloware_secret.encode()
    answers = []

    async def expect(expected: int, answer: tuple[int, dict[str, str], bytes]) -> None:
        json_error(answer, expected)
        answers.append(json.dumps(answer[1]).encode() + answer[2])

    for depth in (1_000, 10_000):  # nested deeper than the parser goes
        await expect(400, await http.post("/webhooks/aloware", b"[" * depth, bearer))
    huge = "9" * 5_000  # more digits than int() takes
    signature = signature_v3(pulse.hubspot_secret, "POST", HUBSPOT_URL, TICKET, huge)
    hubspot = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": huge}
    await expect(401, await http.post("/webhooks/hubspot", TICKET, hubspot))
    admin = signed_headers(pulse.admin_secret, "POST", "/admin/dim-agent/sync", b"", time.time())
    admin["X-Pulse-Timestamp"] = huge
    await expect(401, await http.post("/admin/dim-agent/sync", b"", admin))
    for encoding in ("gzip", "deflate"):  # on a plain body
        compressed = {**bearer, "Content-Encoding": encoding}
        await expect(415, await http.post("/webhooks/aloware", DISPOSED, compressed))
    non_utf8 = b"Authorization: Bearer \xff\xfe" + secret + b"\r\n"
    await expect(401, await http.post("/webhooks/aloware", DISPOSED, raw_headers=non_utf8))
    for malformed in (
        b"Authorization: Bearer " + secret + b"\x00\r\n",  # a NUL in a header value
        b"Authorization: Bearer " + secret + b"A" * 9_000 + b"\r\n",  # a 9 KB header
        b"X-Note: a\r\n  Bearer " + secret + b"\r\n",  # obs-fold
    ):
        await expect(400, await http.post("/webhooks/aloware", DISPOSED, raw_headers=malformed))
    bad_chunk = (
        b"POST /webhooks/aloware HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Authorization: Bearer " + secret + b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    )
    await expect(400, await http.raw(bad_chunk))
    wrong_method = await http.raw(b"GET /webhooks/aloware HTTP/1.1\r\nHost: x\r\n\r\n")
    await expect(405, wrong_method)
    assert wrong_method[1]["allow"] == "POST"
    return answers


def test_the_edge_cases_are_json_refusals_and_no_secret_reaches_an_answer_or_the_log(
    pulse: Pulse,
) -> None:
    daemon = pulse.serve("serve.log")
    answers = asyncio.run(edge_cases(pulse, RawHttp(daemon.port)))
    assert daemon.stop() == 0
    log = daemon.log()
    assert "malformed request" in log  # the protocol errors were logged, without their headers
    assert pulse.secrets_in(log, *answers) == []
    assert pulse.inbox_depth() == 0  # and none of them was stored


async def fuzz(pulse: Pulse, port: int) -> tuple[dict[int, int], int, set[str], list[bytes]]:
    """(answers by status, accepted, canary event keys, every answer's headers and body)."""
    fuzzer = Fuzzer(random.Random(SEED), pulse.aloware_secret, pulse.hubspot_secret, HUBSPOT_URL)
    base = f"http://127.0.0.1:{port}"
    statuses: dict[int, int] = {}
    accepted, canaries, answers = 0, set(), []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for n in range(REQUESTS):
            if n % CANARY_EVERY == 0:
                call_id = f"canary{n}"
                canaries.add(f"aloware:{call_id}")
                bearer = {"Authorization": f"Bearer {pulse.aloware_secret}"}
                request = Fuzzed("/webhooks/aloware", dumps(disposed_call(call_id)), bearer)
            else:
                request = fuzzer.next(n)
            async with http.post(
                base + request.path, data=request.body, headers=request.headers
            ) as response:
                body = await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
                answers.append(json.dumps(dict(response.headers)).encode() + body)
                if response.status == 202:
                    accepted += 1
                    continue
                headers = {k.lower(): v for k, v in response.headers.items()}
                json_error((response.status, headers, body), response.status)
    return statuses, accepted, canaries, answers


def test_a_fuzz_run_answers_json_loses_nothing_and_counts_every_canary(pulse: Pulse) -> None:
    daemon = pulse.serve("serve.log")
    statuses, accepted, canaries, answers = asyncio.run(fuzz(pulse, daemon.port))

    assert not [s for s in statuses if s >= 500], statuses
    assert accepted > REQUESTS // 5 and sum(statuses.values()) - accepted > REQUESTS // 5
    wait_for(lambda: pulse.inbox_depth() == 0, SETTLE_SEC, "every accepted envelope to settle")
    _, counted = pulse.stored_keys()
    assert canaries <= set(counted), canaries - set(counted)
    reasons = pulse.dead_letter_reasons()
    assert reasons and all(reasons)  # poison was accepted, and rests with a reason
    assert daemon.stop() == 0
    assert pulse.secrets_in(daemon.log(), *answers) == []
