"""API Gateway proxy events as the Lambda edge reads them (AWS's documented shapes), and the
handler module's lean import."""

from __future__ import annotations

import base64
import copy
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pulse.adapters_in.aws_lambda.edge import LambdaEdge, ProxyRequest
from pulse.adapters_in.intake import WebhookIntake
from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.sources.hubspot import HubSpotSource, signature_v3
from pulse.bootstrap.lambda_handler import LambdaRuntime
from pulse.bootstrap.settings import SettingsError
from tests.fakes import FakeClock, FakeInbox

SPECS = Path(__file__).parents[1] / "specs" / "aws"
ROOT = Path(__file__).parents[2]


def spec(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SPECS / name).read_text())
    event.pop("_meta")
    return event


def test_a_rest_api_event_keeps_the_stage_in_the_url_the_client_called() -> None:
    event = spec("apigateway-rest-v1-event.json")
    request = ProxyRequest.of(event)

    assert (request.method, request.source, request.path) == (
        "POST",
        "hubspot",
        "/webhooks/hubspot",
    )
    assert (
        request.received_url
        == "https://abc123.execute-api.us-east-1.amazonaws.com/prod/webhooks/hubspot"
    )
    assert request.headers["x-hubspot-request-timestamp"] == "1762362142417"  # names lower-cased
    assert request.body == base64.b64decode(event["body"])


def test_repeated_rest_api_headers_and_query_parameters_are_all_kept() -> None:
    event = spec("apigateway-rest-v1-event.json")
    event["multiValueHeaders"]["X-Forwarded-For"] = ["203.0.113.10", "10.0.0.1"]
    event["multiValueQueryStringParameters"] = {"portal": ["1", "2"]}

    request = ProxyRequest.of(event)

    assert request.headers["x-forwarded-for"] == "203.0.113.10,10.0.0.1"
    assert request.path == "/webhooks/hubspot?portal=1&portal=2"


def test_an_http_api_event_on_a_named_stage_routes_without_it() -> None:
    event = spec("apigateway-http-api-v2-event.json")
    event["requestContext"]["stage"] = "prod"
    event["rawPath"] = "/prod/webhooks/aloware"
    event["rawQueryString"] = "a=1"

    request = ProxyRequest.of(event)

    assert request.path == "/webhooks/aloware?a=1"
    assert request.received_url.endswith(".amazonaws.com/prod/webhooks/aloware?a=1")
    assert request.body == event["body"].encode()


def test_a_route_without_path_parameters_takes_the_source_from_the_path() -> None:
    event = spec("apigateway-http-api-v2-event.json")
    del event["pathParameters"]
    assert ProxyRequest.of(event).source == "aloware"


async def test_behind_a_custom_domain_hubspot_is_checked_against_the_public_base_url() -> None:
    secret, clock = secrets.token_urlsafe(24), FakeClock()
    inbox = FakeInbox()
    intake = WebhookIntake({"hubspot": HubSpotSource(secret)}, inbox, clock, Metrics())
    edge = LambdaEdge(intake, "https://hooks.example.test/pulse")
    event = spec("apigateway-rest-v1-event.json")
    body = base64.b64decode(event["body"])
    stamp = str(int(clock.now().timestamp() * 1000))

    def signed_for(url: str) -> dict[str, Any]:
        signed = copy.deepcopy(event)
        signature = signature_v3(secret, "POST", url, body, stamp)
        del signed["multiValueHeaders"]
        signed["headers"].update(
            {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
        )
        return signed

    called = await edge.handle(
        signed_for("https://abc123.execute-api.us-east-1.amazonaws.com/prod/webhooks/hubspot")
    )
    public = await edge.handle(signed_for("https://hooks.example.test/pulse/webhooks/hubspot"))

    assert (called["statusCode"], public["statusCode"]) == (401, 202)
    assert [e.body for e in inbox.waiting] == [body]


def test_lambda_mode_refuses_an_inbox_other_than_sqs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALOWARE_SECRET", secrets.token_urlsafe(24))
    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", secrets.token_urlsafe(24))
    monkeypatch.setenv("INBOX", "sqlite")

    with pytest.raises(SettingsError, match=r"INBOX=sqlite.*set INBOX=sqs"):
        LambdaRuntime.from_environment()


@pytest.mark.slow
def test_importing_the_handler_module_loads_neither_the_container_nor_a_client() -> None:
    code = (
        "import sys, pulse.bootstrap.lambda_handler; "
        "print(sorted(m for m in ('pulse.bootstrap.container', 'aiobotocore', 'aiohttp', 'pydantic')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
