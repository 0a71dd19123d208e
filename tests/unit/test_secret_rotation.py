"""A rotation window: every inbound check accepts the current secret, and the previous one only
until its window ends (SECRETS_SOURCE=env, `*_PREVIOUS`)."""

from __future__ import annotations

import base64
import secrets
from functools import partial

import pytest

from pulse.adapters_in.http.admin import auth as admin_auth
from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.sources.base import AuthFailed, WebhookRequest
from pulse.adapters_in.sources.hubspot import HubSpotSource, signature_v3
from pulse.adapters_out.secrets.static import StaticSecrets
from pulse.ports.secrets import Credential

NOW_MS = 1_760_000_000_000
URL = "https://pulse.example.com/webhooks/hubspot"
BODY = b'[{"objectId": 1}]'


class Dial:
    """Monotonic seconds a test turns."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def rotating(
    credential: Credential, window_sec: float = 60
) -> tuple[StaticSecrets, str, str, Dial]:
    old, new, dial = secrets.token_urlsafe(32), secrets.token_urlsafe(32), Dial()
    source = StaticSecrets({credential: new}, {credential: old}, window_sec, now=dial)
    return source, old, new, dial


def bearer(token: str) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url="https://pulse.example.com/webhooks/aloware",
        headers={"authorization": f"Bearer {token}"},
        body=b"{}",
        now_ms=NOW_MS,
    )


def hubspot_signed(secret: str) -> WebhookRequest:
    timestamp = str(NOW_MS - 1000)
    return WebhookRequest(
        method="POST",
        url=URL,
        headers={
            "x-hubspot-signature-v3": signature_v3(secret, "POST", URL, BODY, timestamp),
            "x-hubspot-request-timestamp": timestamp,
        },
        body=BODY,
        now_ms=NOW_MS,
    )


def test_aloware_bearer_accepts_old_and_new_during_the_window_and_only_new_after() -> None:
    source, old, new, dial = rotating(Credential.ALOWARE_SECRET)
    aloware = AlowareSource("bearer", secrets=partial(source.accepted, Credential.ALOWARE_SECRET))
    aloware.authenticate(bearer(new))
    aloware.authenticate(bearer(old))
    dial.seconds = 60
    aloware.authenticate(bearer(new))
    with pytest.raises(AuthFailed):
        aloware.authenticate(bearer(old))


def test_aloware_basic_accepts_the_previous_user_password_during_the_window() -> None:
    old, new, dial = "pulse:" + secrets.token_hex(8), "pulse:" + secrets.token_hex(8), Dial()
    source = StaticSecrets(
        {Credential.ALOWARE_SECRET: new}, {Credential.ALOWARE_SECRET: old}, 5, dial
    )
    aloware = AlowareSource("basic", secrets=partial(source.accepted, Credential.ALOWARE_SECRET))

    def basic(value: str) -> WebhookRequest:
        encoded = base64.b64encode(value.encode()).decode()
        return WebhookRequest(
            "POST", "https://p/w", {"authorization": f"Basic {encoded}"}, b"{}", NOW_MS
        )

    aloware.authenticate(basic(old))
    dial.seconds = 5
    with pytest.raises(AuthFailed):
        aloware.authenticate(basic(old))
    aloware.authenticate(basic(new))


def test_hubspot_v3_accepts_signatures_of_old_and_new_during_the_window_and_only_new_after() -> (
    None
):
    source, old, new, dial = rotating(Credential.HUBSPOT_CLIENT_SECRET)
    hubspot = HubSpotSource(
        client_secrets=partial(source.accepted, Credential.HUBSPOT_CLIENT_SECRET)
    )
    hubspot.authenticate(hubspot_signed(new))
    hubspot.authenticate(hubspot_signed(old))
    dial.seconds = 61
    hubspot.authenticate(hubspot_signed(new))
    with pytest.raises(AuthFailed):
        hubspot.authenticate(hubspot_signed(old))


def test_admin_signatures_of_old_and_new_keys_pass_during_the_window_and_only_new_after() -> None:
    source, old, new, dial = rotating(Credential.ADMIN_HMAC_SECRET)
    now = 1_760_000_000.0

    def check(key: str) -> None:
        headers = admin_auth.signed_headers(key, "POST", "/admin/dim-date/extend", b"", now)
        admin_auth.verify(
            source.accepted(Credential.ADMIN_HMAC_SECRET),
            headers,
            "POST",
            "/admin/dim-date/extend",
            b"",
            now,
        )

    check(new)
    check(old)
    dial.seconds = 60
    check(new)
    with pytest.raises(admin_auth.AuthRejected) as refused:
        check(old)
    assert refused.value.code == "bad_signature"


def test_without_a_previous_value_only_the_current_one_is_accepted() -> None:
    current = secrets.token_urlsafe(32)
    source = StaticSecrets({Credential.ALOWARE_SECRET: current}, {}, 60, now=Dial())
    assert source.accepted(Credential.ALOWARE_SECRET) == (current,)
    assert source.accepted(Credential.HUBSPOT_CLIENT_SECRET) == ()
    assert current not in repr(source)
