"""`pulse ingest`'s reading of a capture file: each line the envelope the edge would store, or
the reason it is refused, by line number."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pulse.adapters_in.cli.ingest import read_lines
from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.sources.hubspot import HubSpotSource

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SOURCES = {
    "aloware": AlowareSource(auth="none", secret=None),
    "hubspot": HubSpotSource(client_secret=None, auth="none"),
}
CALL = {
    "event": "OutboundPhoneCall-DispositionCompleted",
    "body": {"id": 1, "created_at": "2025-11-05 17:00:00"},
}


def lines(*records: object) -> bytes:
    return b"\n".join(r if isinstance(r, bytes) else json.dumps(r).encode() for r in records)


def test_each_line_is_refused_with_its_number_and_reason() -> None:
    replay = read_lines(
        "capture.jsonl",
        lines(
            {"source": "aloware", "body": CALL},
            b"",
            {"source": "zendesk", "body": {}},
            {"body": CALL},
            {"source": "hubspot", "body": {"not": "an array"}},
            {"source": "aloware", "body": [1]},
            {"source": "aloware", "body": CALL, "received_at": "yesterday"},
            {"source": "aloware", "body": {"event": "x" * 2000}},
            b"[1, 2",
        ),
        SOURCES,
        NOW,
        limit=1024,
    )

    assert replay.lines == 8 and len(replay.envelopes) == 1
    assert replay.refused == [
        "line 3: unknown source 'zendesk' (aloware, hubspot)",
        "line 4: unknown source None (aloware, hubspot)",
        "line 5: body is not a JSON array of events",
        "line 6: body is not a JSON object",
        "line 7: received_at 'yesterday' is not ISO-8601",
        "line 8: body of 2,012 bytes is over the 1,024-byte limit",
        "line 9: not a JSON object",
    ]


def test_an_envelope_keeps_the_capture_time_and_the_same_body_gets_the_same_request_id() -> None:
    replay = read_lines(
        "capture.jsonl",
        lines(
            {"source": "aloware", "body": CALL, "received_at": "2025-11-05T17:00:00Z"},
            {"source": "aloware", "body": CALL},
        ),
        SOURCES,
        NOW,
        limit=1024,
    )

    first, second = replay.envelopes
    assert first.received_at == datetime(2025, 11, 5, 17, 0, tzinfo=UTC)
    assert second.received_at == NOW
    assert first.request_id == second.request_id and first.request_id.startswith("ingest-")
    assert json.loads(first.body) == CALL
    assert first.headers["x-pulse-replay"] == "capture.jsonl:1"
    assert SOURCES["aloware"].parse(first)[0].object_id == "1"
