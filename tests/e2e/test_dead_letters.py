"""End to end: through a running `pulse serve`, dead letters listed and replayed by filter over
the signed admin API."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pulse.adapters_in.http.admin.auth import signed_headers
from tests.support.serve import Pulse, post, sample, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def admin(pulse: Pulse, url: str, method: str, path: str, payload: Any = None) -> Any:
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = signed_headers(pulse.admin_secret, method, path, body, time.time())
    headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url + path, data=body or None, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_dead_letter_is_listed_by_filter_and_replayed_by_its_window(pulse: Pulse) -> None:
    daemon = pulse.serve("serve.log")
    bad = sample("aloware-call-disposed")["body"]
    bad["body"]["created_at"] = "the day after tomorrow"  # a permanent problem: dead-lettered
    bearer = {"Authorization": f"Bearer {pulse.aloware_secret}"}
    before = datetime.now(UTC) - timedelta(seconds=1)
    status, answer = post(daemon.url + "/webhooks/aloware", json.dumps(bad).encode(), bearer)
    assert status == 202
    wait_for(lambda: len(pulse.dead_letter_reasons()) == 1, 20, "the call to be dead-lettered")
    after = datetime.now(UTC) + timedelta(seconds=1)

    listed = admin(pulse, daemon.url, "GET", "/admin/dead-letters?source=aloware")
    none = admin(pulse, daemon.url, "GET", "/admin/dead-letters?source=hubspot")
    window = {"since": before.isoformat(), "until": after.isoformat()}
    dry = admin(pulse, daemon.url, "POST", "/admin/dead-letters/replay?dryRun=true", window)
    done = admin(pulse, daemon.url, "POST", "/admin/dead-letters/replay", window)

    assert listed["total"] == 1 and listed["deadLetters"][0]["requestId"] == answer["request_id"]
    assert "+1202" not in json.dumps(listed)  # never a raw body
    assert none["total"] == 0
    assert dry["counts"] == {"matched": 1, "replayed": 0}
    assert done["counts"] == {"matched": 1, "replayed": 1}
    # Still broken, so it comes back as a letter again: replayed through the workers.
    wait_for(lambda: len(pulse.dead_letter_reasons()) == 1, 20, "the replay to be processed")
    audit = admin(pulse, daemon.url, "GET", "/admin/audit?limit=5")["records"]
    assert [r["action"] for r in audit[:2]] == ["replay_dead_letters"] * 2
    assert daemon.stop() == 0
