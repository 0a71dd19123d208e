"""SECRETS_SOURCE=aws on moto's Secrets Manager: secrets rotated while `pulse serve` runs take
effect without a restart; old and new are both accepted during the window, only new after."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from pulse.adapters_in.http.admin.auth import signed_headers
from tests.support.moto_server import REGION, unique
from tests.support.serve import PUBLIC_BASE_URL, Daemon, Pulse, hubspot_v3, post, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TTL_SEC = 0.3
WINDOW_SEC = 5.0
ALOWARE_CALL = json.dumps({"event": "call.created", "body": {"id": 1, "type": 1}}).encode()
HUBSPOT_EVENTS = json.dumps([{"eventId": 1, "subscriptionType": "contact.creation"}]).encode()


@pytest.fixture
def manager(moto_url: str) -> Iterator[Any]:
    client = boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    yield client
    client.close()


def aws_env(pulse: Pulse, moto_url: str, ids: dict[str, str]) -> Callable[[], dict[str, str]]:
    base = pulse.env

    def env() -> dict[str, str]:
        variables = base()
        for name in ("ALOWARE_SECRET", "HUBSPOT_CLIENT_SECRET", "ADMIN_HMAC_SECRET"):
            del variables[name]  # Secrets Manager is the only place they are
        variables.update(
            SECRETS_SOURCE="aws",
            SECRETS__TTL_SEC=str(TTL_SEC),
            SECRETS__PREVIOUS_VALID_SEC=str(WINDOW_SEC),
            SECRETS__ALOWARE_SECRET_ID=ids["aloware"],
            SECRETS__HUBSPOT_CLIENT_SECRET_ID=ids["hubspot"],
            SECRETS__ADMIN_HMAC_SECRET_ID=ids["admin"],
            AWS_ENDPOINT_URL=moto_url,
            AWS_REGION=REGION,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
        return variables

    return env


def aloware_status(daemon: Daemon, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return post(daemon.url + "/webhooks/aloware", ALOWARE_CALL, headers)[0]


def hubspot_status(daemon: Daemon, secret: str) -> int:
    timestamp = str(int(time.time() * 1000))
    uri = PUBLIC_BASE_URL + "/webhooks/hubspot"
    headers = {
        "X-HubSpot-Signature-v3": hubspot_v3(secret, "POST", uri, HUBSPOT_EVENTS, timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
        "Content-Type": "application/json",
    }
    return post(daemon.url + "/webhooks/hubspot", HUBSPOT_EVENTS, headers)[0]


def admin_status(daemon: Daemon, key: str) -> int:
    headers = signed_headers(key, "GET", "/admin/status", b"", time.time())
    request = urllib.request.Request(daemon.url + "/admin/status", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


CHECKS = {"aloware": aloware_status, "hubspot": hubspot_status, "admin": admin_status}


def test_rotated_secrets_take_effect_and_the_previous_is_refused_after_the_window(
    pulse: Pulse, moto_url: str, manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = {name: secrets.token_urlsafe(32) for name in CHECKS}
    new = {name: secrets.token_urlsafe(32) for name in CHECKS}
    ids = {name: unique(f"pulse/{name}") for name in CHECKS}
    for name, secret_id in ids.items():
        manager.create_secret(Name=secret_id, SecretString=old[name])
    monkeypatch.setattr(pulse, "env", aws_env(pulse, moto_url, ids))
    daemon = pulse.serve("serve.log")

    for name, check in CHECKS.items():
        assert check(daemon, old[name]) in (200, 202), name
        assert check(daemon, new[name]) == 401, name

    for name, secret_id in ids.items():
        manager.put_secret_value(SecretId=secret_id, SecretString=new[name])  # old → AWSPREVIOUS
    rotated = time.time()
    for name, check in CHECKS.items():
        wait_for(lambda c=check, n=name: c(daemon, new[n]) != 401, 10, f"the new {name} secret")
    assert time.time() < rotated + WINDOW_SEC - 1, "too slow to see the window open"
    for name, check in CHECKS.items():
        assert check(daemon, old[name]) in (200, 202), f"{name}: previous refused in the window"

    wait_for(
        lambda: all(c(daemon, old[n]) == 401 for n, c in CHECKS.items()),
        WINDOW_SEC + 5,
        "the window to close",
    )
    for name, check in CHECKS.items():
        assert check(daemon, new[name]) in (200, 202), f"{name}: current refused after the window"

    assert daemon.stop() == 0
    log = daemon.log()
    assert "secret rotated" in log
    assert [s for s in (*old.values(), *new.values()) if s in log] == []


def test_a_secret_id_that_cannot_be_read_stops_the_start_naming_the_credential(
    pulse: Pulse, moto_url: str, manager: Any
) -> None:
    ids = {name: unique(f"pulse/{name}") for name in CHECKS}
    for name in ("hubspot", "admin"):
        manager.create_secret(Name=ids[name], SecretString=secrets.token_urlsafe(32))
    done = subprocess.run(
        pulse.command("serve"),
        cwd=pulse.home,
        env=aws_env(pulse, moto_url, ids)(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"ALOWARE_SECRET: secret '{ids['aloware']}'" in done.stderr.decode()
    assert "listening" not in done.stderr.decode()
