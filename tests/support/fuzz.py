"""A seeded fuzzer of webhook requests: values the sinks cannot store (lone surrogates, 1e19,
year 0, 5,000 digits), JSON of any shape, bytes that are not JSON, JSON nested absurdly deep,
correctly signed HubSpot arrays with weird members, and paths nobody serves."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

from pulse.adapters_in.sources.hubspot import signature_v3
from tests.support.local import disposed_call

WEIRD_STRINGS = [
    "",
    " ",
    "\ud800",
    "\udfff\ud800",
    "\x00",
    "é",
    "𝔘",
    "9" * 5_000,
    "-1",
    "1e400",
    "NaN",
    "0000-01-01 00:00:00",
    "0001-01-01 00:00:00",
    "9999-12-31 23:59:59",
    "2025-02-30 10:00:00",
    "2025-11-05T17:22:28+14:00",
    "x" * 10_000,
    "<script>",
    "completed",
    "failed",
    "2",
    "1",
]
WEIRD_NUMBERS: list[Any] = [
    0,
    -1,
    1e19,
    -1e19,
    10**30,
    2**63,
    2**63 - 1,
    1.5,
    1e308,
    True,
    False,
    None,
]
ALOWARE_FIELDS = [
    "id",
    "user_id",
    "direction",
    "type",
    "disposition_status",
    "disposition_status2",
    "duration",
    "created_at",
    "talk_time",
    "customer_leg_status",
]


def weird_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(WEIRD_STRINGS)
    if roll < 0.7:
        return rng.choice(WEIRD_NUMBERS)
    if depth > 3:
        return None
    if roll < 0.85:
        return [weird_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(ALOWARE_FIELDS): weird_value(rng, depth + 1) for _ in range(rng.randint(0, 3))
    }


def dumps(value: Any) -> bytes:
    # Lone surrogates are legal JSON escapes; ensure_ascii writes them as \\udxxx.
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


@dataclass
class Fuzzed:
    path: str
    body: bytes
    headers: dict[str, str]


class Fuzzer:
    """Requests to a Pulse edge: mutated calls, any JSON, not-JSON, signed HubSpot arrays with
    weird members, and paths nobody serves; `hubspot_url` is the URL HubSpot signs."""

    def __init__(
        self, rng: random.Random, aloware_secret: str, hubspot_secret: str, hubspot_url: str
    ) -> None:
        self.rng, self.hubspot_url = rng, hubspot_url
        self.aloware_secret, self.hubspot_secret = aloware_secret, hubspot_secret

    def aloware_auth(self) -> dict[str, str]:
        roll = self.rng.random()
        if roll < 0.8:
            return {"Authorization": f"Bearer {self.aloware_secret}"}
        if roll < 0.9:
            return {"Authorization": "Bearer wrong"}
        return {}

    def hubspot_signed(self, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time() * 1000))
        if self.rng.random() < 0.1:
            timestamp = self.rng.choice(["9" * 5_000, "abc", "-5", "1"])
        return {
            "X-HubSpot-Signature-v3": signature_v3(
                self.hubspot_secret, "POST", self.hubspot_url, body, timestamp
            ),
            "X-HubSpot-Request-Timestamp": timestamp,
        }

    def next(self, n: int) -> Fuzzed:
        rng = self.rng
        kind = rng.random()
        if kind < 0.45:  # a valid call with one to three fields replaced by weird values
            call = disposed_call(str(rng.randint(1, 10**6)))
            for _ in range(rng.randint(1, 3)):
                call["body"][rng.choice(ALOWARE_FIELDS)] = weird_value(rng)
            if rng.random() < 0.1:
                call = {"event": weird_value(rng), "body": call["body"]}
            return Fuzzed("/webhooks/aloware", dumps(call), self.aloware_auth())
        if kind < 0.6:  # any JSON at all
            return Fuzzed("/webhooks/aloware", dumps(weird_value(rng)), self.aloware_auth())
        if kind < 0.7:  # bytes that are not JSON, or JSON nested absurdly deep
            body = rng.choice([rng.randbytes(rng.randint(0, 200)), b"[" * 5_000, b'{"a":' * 2_000])
            return Fuzzed("/webhooks/aloware", body, self.aloware_auth())
        if kind < 0.9:  # HubSpot event arrays, correctly signed, with weird members
            events = [
                {
                    "eventId": weird_value(rng),
                    "subscriptionType": rng.choice(
                        ["ticket.creation", "object.creation", weird_value(rng)]
                    ),
                    "objectId": rng.choice([rng.randint(1, 10**9), weird_value(rng)]),
                    "objectTypeId": rng.choice(["0-49", "0-5", weird_value(rng)]),
                    "occurredAt": rng.choice([1762362142417, weird_value(rng)]),
                }
                for _ in range(rng.randint(0, 4))
            ]
            body = dumps(events if rng.random() < 0.9 else weird_value(rng))
            return Fuzzed("/webhooks/hubspot", body, self.hubspot_signed(body))
        path = rng.choice(
            [
                "/webhooks/nobody",
                "/webhooks/",
                "/admin/status",
                "/%ff",
                "/webhooks/aloware?x=\ud800",
            ]
        )
        return Fuzzed(path, dumps(weird_value(rng)), self.aloware_auth())
