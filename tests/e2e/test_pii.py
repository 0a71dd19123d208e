"""End to end: a lead's phone number and name do not outlive the ack in any file Pulse keeps."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.support.serve import Pulse, post, sample, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SETTLE_SEC = 5.0  # the WAL checkpoint queued behind the ack (retried each second while busy)


def files_holding(data_dir: Path, needles: list[bytes]) -> dict[str, list[str]]:
    """Every file under `data_dir` (databases, -wal, -shm) whose raw bytes hold a needle."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        hits = [n.decode() for n in needles if n in raw]
        if hits:
            found[path.name] = hits
    return found


def test_an_acked_call_leaves_no_lead_phone_number_or_name_in_any_data_file(pulse: Pulse) -> None:
    phone = f"+1202{secrets.randbelow(10**7):07d}"
    name = f"Quillon{secrets.token_hex(4)}"
    payload = sample("aloware-call-disposed")["body"]
    call = payload["body"]
    call["id"] = str(70_000_000 + secrets.randbelow(10**6))
    call["lead_number"] = phone
    call["contact"].update(phone_number=phone, first_name=name, name=f"{name} Merchant")
    needles = [phone.encode(), phone.removeprefix("+").encode(), name.encode()]
    daemon = pulse.serve("serve.log")

    status, _ = post(
        daemon.url + "/webhooks/aloware",
        json.dumps(payload).encode(),
        {"Authorization": f"Bearer {pulse.aloware_secret}", "Content-Type": "application/json"},
    )
    assert status == 202
    key = f"aloware:{call['id']}"
    wait_for(lambda: key in pulse.stored_keys()[1], 20, "the call to be counted")
    pulse.wait_drained()  # acked: the inbox row is gone

    try:
        wait_for(lambda: not files_holding(pulse.data_dir, needles), SETTLE_SEC, "no file to hold")
    except AssertionError:
        raise AssertionError(
            f"after the ack, these files still hold the lead's number or name: "
            f"{files_holding(pulse.data_dir, needles)}"
        ) from None
    assert not [n for n in needles if n.decode() in daemon.log()], "the log names the lead"
    assert daemon.stop() == 0
    assert files_holding(pulse.data_dir, needles) == {}
