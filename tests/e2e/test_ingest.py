"""`pulse ingest FILE` end to end: raw webhook bodies captured in front of Pulse (JSON lines)
replayed into a running `pulse serve`'s inbox from another process; the daemon's workers count
them, and the ledger makes what the daemon had counted already, and a second replay, add nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.serve import Pulse, post, sample, wait_for

pytestmark = pytest.mark.slow

COUNTED = {"aloware:54363660", "aloware:1771234501", "hubspot:email:88120045123"}


def capture(home: Path) -> Path:
    """What a load balancer logged while Pulse was down: six bodies, and a line cut short."""
    records = [
        {"source": "aloware", "body": sample("aloware-test-payload")["body"]},
        {"source": "aloware", "body": sample("aloware-call-initiated")["body"]},
        {"source": "aloware", "body": sample("aloware-call-disposed")["body"]},
        {"source": "aloware", "body": sample("aloware-sms-outbound")["body"]},
        {"source": "aloware", "body": sample("aloware-call-disposed")["body"]},  # Aloware repeats
        {
            "source": "hubspot",
            "body": json.loads(sample("hubspot-v3-email-object-creation")["raw_body"]),
        },
    ]
    lines = [json.dumps(r) for r in records]
    lines.insert(3, '{"source": "aloware", "body": {"event": "Outbound')
    path = home / "capture.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    return path


def ingest(pulse: Pulse, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pulse.command("ingest", *args),
        cwd=pulse.home,
        env=pulse.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_captured_file_replays_through_the_inbox_and_counts_each_event_once(
    pulse: Pulse,
) -> None:
    daemon = pulse.serve("serve.log")
    headers = {
        "Authorization": f"Bearer {pulse.aloware_secret}",
        "Content-Type": "application/json",
    }
    # The SMS webhook did get through before the outage.
    status, _ = post(
        daemon.url + "/webhooks/aloware",
        json.dumps(sample("aloware-sms-outbound")["body"]).encode(),
        headers,
    )
    assert status == 202
    wait_for(lambda: pulse.stored_keys()[0] == 1, 20, "the live SMS to be counted")
    path = capture(pulse.home)

    dry = ingest(pulse, str(path), "--dry-run")
    depth_after_dry = pulse.inbox_depth()
    first = ingest(pulse, str(path))
    wait_for(lambda: pulse.stored_keys()[0] == 3, 20, "the replayed events to be counted")
    pulse.wait_drained()
    second = ingest(pulse, str(path))
    pulse.wait_drained()
    total, keys = pulse.stored_keys()
    daemon.stop()

    assert dry.returncode == 1, dry.stderr  # a refused line
    assert dry.stdout.splitlines()[0].startswith(
        "ingest capture.jsonl: dry_run · 7 lines · 0 queued · 1 refused · 5 aloware · 1 hubspot"
        " · 2 new · 2 already · 0 gated · 2 ignored"
    ), dry.stdout
    assert dry.stdout.splitlines()[1] == "  line 4: not a JSON object"
    assert depth_after_dry == 0
    assert first.returncode == 1 and " · 6 queued · 1 refused" in first.stdout, first.stdout
    assert second.stdout.splitlines()[0].startswith(
        "ingest capture.jsonl: queued · 7 lines · 6 queued · 1 refused · 5 aloware · 1 hubspot"
        " · 0 new · 4 already"
    ), second.stdout
    assert (total, sorted(keys)) == (3, sorted(COUNTED))
    assert pulse.dead_letter_reasons() == []
