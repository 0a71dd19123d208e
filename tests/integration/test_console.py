"""The operator console over the real container: a one-time link signs in once, the page shows
today's grid and the live state, and every form needs the session and its CSRF token."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from pulse.adapters_in.http.console import session as console_session
from pulse.adapters_in.http.middleware import edge_middleware
from tests.support.console import ConsoleRig, console_rig, seed_today, seed_trouble

ClientMaker = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[ConsoleRig]:
    async with console_rig(tmp_path) as built:
        await seed_today(built)
        await seed_trouble(built)
        yield built


@pytest.fixture
async def client(rig: ConsoleRig, aiohttp_client: ClientMaker) -> TestClient[Any, Any]:
    return await aiohttp_client(rig.app)


async def signed_in(client: TestClient[Any, Any], rig: ConsoleRig) -> str:
    """Follow a fresh link; the page's CSRF token."""
    answer = await client.get(rig.link())
    assert answer.status == 200, await answer.text()
    return csrf_of(await answer.text())


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None
    return found.group(1)


async def test_a_link_signs_in_once_with_a_strict_http_only_cookie(
    client: TestClient[Any, Any], rig: ConsoleRig
) -> None:
    link = rig.link()

    first = await client.get(link, allow_redirects=False)
    again = await client.get(link, allow_redirects=False)

    assert first.status == 303 and first.headers["Location"] == "/console"
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert again.status == 401 and "used already" in await again.text()
    outcomes = [(r.action, r.outcome) for r in await rig.audit()]
    assert ("console_sign_in", "applied") in outcomes
    assert ("GET /console/sign-in", "rejected: replayed_link") in outcomes


async def test_the_cookie_is_secure_when_the_public_url_is_https(
    tmp_path: Path, aiohttp_client: ClientMaker
) -> None:
    async with console_rig(tmp_path, public_base_url="https://pulse.example.test") as rig:
        client = await aiohttp_client(rig.app)
        answer = await client.get(rig.link(), allow_redirects=False)
        assert "Secure" in answer.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda link: link.replace("token=", "token=0"),  # another signature
        lambda link: link[:-1] + ("0" if link[-1] != "0" else "1"),
        lambda link: link.split("?")[0],  # no token
    ],
    ids=["malformed", "bad signature", "missing"],
)
async def test_a_spoilt_link_is_refused(
    client: TestClient[Any, Any], rig: ConsoleRig, spoil: Callable[[str], str]
) -> None:
    answer = await client.get(spoil(rig.link()), allow_redirects=False)

    assert answer.status == 401 and "Set-Cookie" not in answer.headers


async def test_a_link_older_than_ten_minutes_is_refused(
    client: TestClient[Any, Any], rig: ConsoleRig
) -> None:
    stale = rig.link(at=rig.clock.now() - timedelta(minutes=10, seconds=1))

    answer = await client.get(stale, allow_redirects=False)

    assert answer.status == 401 and "expired" in await answer.text()


async def test_the_page_without_a_session_or_with_a_forged_one_is_refused(
    client: TestClient[Any, Any], rig: ConsoleRig
) -> None:
    assert (await client.get("/console")).status == 401
    forged = console_session.Session("f" * 32, rig.clock.now() + timedelta(hours=1))
    client.session.cookie_jar.update_cookies(
        {console_session.COOKIE: forged.cookie("another-secret-0123456789abcdef")}
    )
    assert (await client.get("/console")).status == 401


async def test_the_page_shows_todays_grid_with_counts_goals_and_colours(
    client: TestClient[Any, Any], rig: ConsoleRig
) -> None:
    await signed_in(client, rig)
    html = await (await client.get("/console")).text()

    cells = re.findall(
        r'<th scope="row">(\w+)</th>\s*'
        r'<td class="num (\w+)" data-metric="CALLS"[^>]*>\s*<span class="count">(\d+)</span> / (\d+)',
        html,
    )
    assert cells == [("Jane", "Yellow", "8", "10"), ("John", "Green", "10", "10")]
    assert 'data-metric="TEXTS" data-status="Red"' in html
    assert "2025-11-05" in html
    for section in ('id="incidents"', 'id="breakers"', 'id="inbox"', 'id="jobs"'):
        assert section in html
    assert "powerbi:429" in html and "r-window" in html


async def test_ack_needs_the_sessions_csrf_token_then_acknowledges_and_audits(
    client: TestClient[Any, Any], rig: ConsoleRig
) -> None:
    csrf = await signed_in(client, rig)
    (incident,) = await rig.open_incidents()
    path = f"/console/incidents/{incident.id}/ack"

    forged = await client.post(path, data={"csrf": "0" * 64})
    missing = await client.post(path, data={})
    assert forged.status == missing.status == 403
    assert not (await rig.open_incidents())[0].acked_by

    answer = await client.post(path, data={"csrf": csrf})

    assert answer.status == 200 and "acknowledged" in await answer.text()
    (acked,) = await rig.open_incidents()
    assert acked.acked_by.startswith("console@")
    assert ("ack_incident", "applied") in [(r.action, r.outcome) for r in await rig.audit()]


async def test_a_form_without_a_session_is_refused_whatever_its_token(
    client: TestClient[Any, Any], rig: ConsoleRig
) -> None:
    csrf = console_session.Session("a" * 32, rig.clock.now()).csrf("guessing")

    answer = await client.post("/console/dead-letters/replay", data={"csrf": csrf})

    assert answer.status == 401
    assert await rig.inbox_depth() == 0


async def test_a_resolved_incident_offers_the_replay_of_its_window_and_nothing_runs_alone(
    client: TestClient[Any, Any], rig: ConsoleRig
) -> None:
    csrf = await signed_in(client, rig)
    html = await (await client.get("/console")).text()
    offer = re.search(
        r'action="/console/dead-letters/preview">\s*<input type="hidden" name="csrf" value="\w+">\s*'
        r'<input type="hidden" name="since" value="([^"]+)">\s*'
        r'<input type="hidden" name="until" value="([^"]+)">',
        html,
    )
    assert offer is not None
    since, until = offer.groups()
    assert await rig.inbox_depth() == 0  # offered, never performed

    preview = await client.post(
        "/console/dead-letters/preview", data={"csrf": csrf, "since": since, "until": until}
    )
    text = await preview.text()
    assert preview.status == 200 and "<strong>1</strong> dead letter(s) match" in text
    assert "r-window" in text.split('id="preview"')[1].split("</table>")[0]
    assert await rig.inbox_depth() == 0  # a preview replays nothing

    replayed = await client.post(
        "/console/dead-letters/replay", data={"csrf": csrf, "since": since, "until": until}
    )

    assert replayed.status == 200 and "Replayed 1 dead letter(s)" in await replayed.text()
    assert await rig.inbox_depth() == 1
    assert ("replay_dead_letters", "applied") in [(r.action, r.outcome) for r in await rig.audit()]


async def test_a_bad_filter_is_refused_with_its_reason(
    client: TestClient[Any, Any], rig: ConsoleRig
) -> None:
    csrf = await signed_in(client, rig)

    answer = await client.post(
        "/console/dead-letters/preview", data={"csrf": csrf, "since": "yesterday"}
    )

    assert answer.status == 400 and "not an ISO 8601 instant" in await answer.text()


async def test_values_on_the_page_are_escaped(
    client: TestClient[Any, Any], rig: ConsoleRig
) -> None:
    csrf = await signed_in(client, rig)

    answer = await client.post(
        "/console/dead-letters/preview", data={"csrf": csrf, "reason": "<script>x</script>"}
    )

    text = await answer.text()
    assert "<script>" not in text and "&lt;script&gt;" in text


async def test_the_console_is_off_without_the_admin_secret(
    tmp_path: Path, aiohttp_client: ClientMaker
) -> None:
    async with console_rig(tmp_path, admin_hmac_secret=None) as rig:
        client = await aiohttp_client(rig.app)
        assert (await client.get("/console")).status == 404
        assert (await client.get(rig.link())).status == 404


async def test_with_a_cloud_sink_the_grid_is_a_link_to_the_report(
    rig: ConsoleRig, aiohttp_client: ClientMaker
) -> None:
    local = await rig.part("console")
    cloud = dataclasses.replace(
        local, daily_rows=None, report_link="https://app.powerbi.com/groups/ws-1"
    )
    app = web.Application(middlewares=[edge_middleware])
    cloud.register(app)
    client = await aiohttp_client(app)
    await signed_in(client, rig)

    html = await (await client.get("/console")).text()

    grid = html.split('id="grid"')[1].split("</section>")[0]
    assert '<a href="https://app.powerbi.com/groups/ws-1">open the report</a>' in grid
    assert "data-metric" not in grid
