"""`pulse console-link` and the console's tokens: a link is signed, expires, and is no cookie."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from yarl import URL

from pulse.adapters_in.cli import console
from pulse.adapters_in.cli.main import build_parser
from pulse.adapters_in.http.console import session as console_session
from pulse.adapters_in.http.console.session import SignInRefused
from pulse.bootstrap.settings import Settings
from tests.fakes import FakeClock

SECRET = "console-link-test-secret-0123456789abcdef"
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def settings(**values: Any) -> Settings:
    chosen: dict[str, Any] = {
        "aloware_secret": "aloware-console-link-secret",
        "hubspot_client_secret": "hubspot-console-link-secret",
        "admin_hmac_secret": SECRET,
        "public_base_url": None,
        "host": "0.0.0.0",
        "port": 8080,
    }
    chosen.update(values)
    return Settings(_env_file=None, **chosen)  # type: ignore[call-arg]


async def printed(capsys: pytest.CaptureFixture[str], config: Settings) -> tuple[int, str, str]:
    args: argparse.Namespace = build_parser().parse_args(["console-link"])
    code = await console.dispatch(args, settings=config, clock=FakeClock(NOW))
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_link_points_at_the_daemon_and_opens_for_ten_minutes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = await printed(capsys, settings())

    url = URL(out.strip())
    assert code == 0 and str(url.with_query(None)) == "http://127.0.0.1:8080/console/sign-in"
    token = url.query["token"]
    assert console_session.link_nonce(SECRET, token, NOW + timedelta(minutes=9, seconds=59))
    with pytest.raises(SignInRefused, match="expired"):
        console_session.link_nonce(SECRET, token, NOW + timedelta(minutes=10))
    assert "until 14:10:00 UTC" in err


async def test_the_link_uses_the_public_base_url(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = await printed(capsys, settings(public_base_url="https://pulse.example.test/"))

    assert out.startswith("https://pulse.example.test/console/sign-in?token=")


async def test_without_the_admin_secret_there_is_no_console(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = await printed(capsys, settings(admin_hmac_secret=None))

    assert code == 2 and out == "" and "ADMIN_HMAC_SECRET" in err


def test_a_link_is_not_a_session_cookie_nor_the_other_way_round() -> None:
    link = console_session.one_time_link(SECRET, "", NOW)
    token = URL(link.url).query["token"]
    session = console_session.new_session(NOW)

    with pytest.raises(SignInRefused, match="signature"):
        console_session.session_from(SECRET, token, NOW)
    with pytest.raises(SignInRefused, match="signature"):
        console_session.link_nonce(SECRET, session.cookie(SECRET), NOW)
    assert console_session.session_from(SECRET, session.cookie(SECRET), NOW).id == session.id


def test_a_csrf_token_belongs_to_one_session() -> None:
    one, other = console_session.new_session(NOW), console_session.new_session(NOW)

    assert one.csrf_ok(SECRET, one.csrf(SECRET))
    assert not one.csrf_ok(SECRET, other.csrf(SECRET))
    assert not one.csrf_ok(SECRET, "")
