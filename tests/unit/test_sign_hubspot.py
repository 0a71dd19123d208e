"""`pulse sign hubspot FILE`: the printed curl, as the shell runs it, carries a request the edge
accepts (checked by the edge's own HubSpot source and by the signature written out in tests)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pulse.adapters_in.cli import sign
from pulse.adapters_in.cli.main import build_parser
from pulse.adapters_in.sources.base import AuthFailed, WebhookRequest
from pulse.adapters_in.sources.hubspot import HubSpotSource
from pulse.bootstrap.settings import Settings
from tests.fakes import FakeClock
from tests.support.curl import CurlRequest, parse_curl
from tests.support.serve import hubspot_v3

ROOT = Path(__file__).parents[2]
SECRET = "hubspot-sign-test-secret"
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def settings(**values: Any) -> Settings:
    chosen: dict[str, Any] = {
        "aloware_secret": "aloware-sign-test-secret",
        "hubspot_client_secret": SECRET,
        "hubspot_auth": "v3",
        "public_base_url": None,  # whatever the machine's environment says
        "host": "0.0.0.0",
        "port": 8080,
    }
    chosen.update(values)
    return Settings(_env_file=None, **chosen)  # type: ignore[call-arg]


async def printed(
    capsys: pytest.CaptureFixture[str], argv: list[str], config: Settings
) -> tuple[int, str, str]:
    args: argparse.Namespace = build_parser().parse_args(argv)
    code = await sign.dispatch(args, settings=config, clock=FakeClock(NOW))
    out, err = capsys.readouterr()
    return code, out, err


def accepted_by_the_edge(request: CurlRequest, url_as_received: str) -> None:
    """What the edge checks: the HubSpot source over the URL it rebuilds, within the window."""
    HubSpotSource(SECRET).authenticate(
        WebhookRequest(
            request.method,
            url_as_received,
            {k.lower(): v for k, v in request.headers.items()},
            request.body,
            NOW_MS + 1000,
        )
    )


async def test_the_printed_curl_posts_the_sample_to_the_local_daemon_signed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sample = ROOT / "samples" / "hubspot-email-created.json"
    code, out, err = await printed(capsys, ["sign", "hubspot", str(sample)], settings())
    assert code == 0
    request = parse_curl(out)
    assert (request.method, request.url) == ("POST", "http://127.0.0.1:8080/webhooks/hubspot")
    assert request.body == sample.read_bytes().rstrip(b"\n")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-HubSpot-Request-Timestamp"] == str(NOW_MS)
    assert request.headers["X-HubSpot-Signature-v3"] == hubspot_v3(
        SECRET, "POST", request.url, request.body, str(NOW_MS)
    )
    accepted_by_the_edge(request, request.url)
    assert SECRET not in out + err
    assert "14:05:00 UTC" in err  # until when the edge takes it


async def test_with_a_public_base_url_it_signs_that_url_wherever_it_is_sent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sample = ROOT / "samples" / "hubspot-ticket-created.json"
    config = settings(public_base_url="https://pulse.example.com/")
    argv = ["sign", "hubspot", str(sample), "--url", "http://127.0.0.1:18080"]
    code, out, _ = await printed(capsys, argv, config)
    assert code == 0
    request = parse_curl(out)
    assert request.url == "http://127.0.0.1:18080/webhooks/hubspot"
    accepted_by_the_edge(request, "https://pulse.example.com/webhooks/hubspot")
    with pytest.raises(AuthFailed):
        accepted_by_the_edge(request, request.url)
    _, out, _ = await printed(capsys, ["sign", "hubspot", str(sample)], config)
    assert parse_curl(out).url == "https://pulse.example.com/webhooks/hubspot"


async def test_a_body_the_shell_would_mangle_arrives_byte_for_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.dumps(
        [
            {
                "objectId": 1,
                "subscriptionType": "ticket.creation",
                "note": "O'Brien $(rm -rf ~) `x` \\n ☃",
            }
        ],
        ensure_ascii=False,
        indent=2,
    ).encode()
    (tmp_path / "body.json").write_bytes(body + b"\n")
    code, out, _ = await printed(
        capsys, ["sign", "hubspot", str(tmp_path / "body.json")], settings()
    )
    assert code == 0
    request = parse_curl(out)
    assert request.body == body
    accepted_by_the_edge(request, request.url)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"objectId": 1}', "400: body is not a JSON array of events"),
        (b"[]", "400: empty event array"),
        (b"not json", "400: body is not JSON"),
        (b"\xff[]", "not UTF-8 text"),
    ],
)
async def test_a_body_the_edge_would_refuse_prints_no_curl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    (tmp_path / "body.json").write_bytes(content)
    code, out, err = await printed(
        capsys, ["sign", "hubspot", str(tmp_path / "body.json")], settings()
    )
    assert (code, out) == (2, "")
    assert reason in err


async def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await printed(
        capsys, ["sign", "hubspot", str(tmp_path / "nope.json")], settings()
    )
    assert (code, out) == (2, "")
    assert "nope.json: cannot read it" in err


async def test_unsigned_when_hubspot_auth_is_none(capsys: pytest.CaptureFixture[str]) -> None:
    sample = ROOT / "samples" / "hubspot-ticket-created.json"
    config = settings(hubspot_auth="none", hubspot_client_secret=None)
    code, out, err = await printed(capsys, ["sign", "hubspot", str(sample)], config)
    assert code == 0
    assert parse_curl(out).headers == {"Content-Type": "application/json"}
    assert "HUBSPOT_AUTH=none" in err
