"""ALERT_*, INCIDENT_*, BUSINESS_HOURS and SILENCE__*: read, checked, and the URL kept secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pulse.bootstrap.container import silence_rules
from pulse.bootstrap.settings import SettingsError, load_settings

SECRET_PATH = "/services/T0123/B0456/abcdefSECRET"
OPEN = {"aloware_auth": "none", "hubspot_auth": "none"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.chdir(tmp_path)  # no stray `.env`
    for key in ("ALERT_WEBHOOK_URL", "BUSINESS_HOURS", "SILENCE__ALOWARE_MINUTES", "SHIFTS"):
        monkeypatch.delenv(key, raising=False)


def test_the_alert_url_is_masked_where_settings_are_shown() -> None:
    settings = load_settings(**OPEN, alert_webhook_url=f"https://hooks.slack.com{SECRET_PATH}")

    shown = str(settings.model_dump(mode="json")) + repr(settings)

    assert SECRET_PATH not in shown
    assert settings.model_dump(mode="json")["alert_webhook_url"] == "**********"


def test_a_plain_http_alert_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(**OPEN, alert_webhook_url=f"http://hooks.example.com{SECRET_PATH}")
    assert "ALERT_WEBHOOK_URL must be an https:// URL" in str(refused.value)
    assert SECRET_PATH not in str(refused.value)


def test_bad_business_hours_are_named() -> None:
    with pytest.raises(SettingsError, match="BUSINESS_HOURS: 'weekdays' is not like"):
        load_settings(**OPEN, business_hours="weekdays")


def test_silence_is_off_until_a_source_has_minutes_and_then_keeps_business_hours() -> None:
    assert silence_rules(load_settings(**OPEN)) is None

    rules = silence_rules(
        load_settings(
            **OPEN,
            silence={"aloware_minutes": 30},
            business_hours="Mon-Fri 08:00-18:00",
            business_timezone="America/New_York",
        )
    )

    assert rules is not None and rules.limits == {"aloware": timedelta(minutes=30)}
    saturday = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)
    assert rules.hours.seconds_between(saturday, saturday + timedelta(hours=3)) == 0


def test_without_business_hours_the_shift_rules_working_times_are_used() -> None:
    settings = load_settings(
        **OPEN,
        silence={"hubspot_minutes": 45},
        shifts=[{"name": "Day", "start": "09:00", "end": "17:00", "days": [0, 1, 2, 3, 4]}],
    )
    rules = silence_rules(settings)

    assert rules is not None and rules.limits == {"hubspot": timedelta(minutes=45)}
    monday = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert rules.hours.seconds_between(monday, monday + timedelta(hours=2)) == 3600
