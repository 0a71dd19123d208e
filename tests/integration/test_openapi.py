"""The OpenAPI document: valid 3.1, served at /openapi.json, and in step with the routes the app
registers (both ways), the auth headers the code checks and the bodies the admin API accepts."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pulse.adapters_in.http import openapi
from pulse.adapters_in.http.admin import auth as admin_auth
from pulse.adapters_in.http.admin.dead_letters import ReplayBody
from pulse.adapters_in.http.admin.payloads import (
    AckBody,
    MetricsBody,
    RollbackBody,
    ShiftsBody,
    parse,
)
from pulse.adapters_in.http.console import session as console_session
from pulse.adapters_in.sources import hubspot
from pulse.bootstrap.container import Container
from pulse.bootstrap.settings import Settings

DOCUMENT_PATH = Path(openapi.__file__).with_name(openapi.DOCUMENT)
DOCUMENT: dict[str, Any] = json.loads(DOCUMENT_PATH.read_text())
DOCUMENT_URI = "urn:pulse:openapi"
METHODS = ("get", "put", "post", "delete", "patch")
BODY_MODELS = {
    "MetricsBody": MetricsBody,
    "ShiftsBody": ShiftsBody,
    "RollbackBody": RollbackBody,
    "ReplayBody": ReplayBody,
    "AckBody": AckBody,
}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[web.Application]:
    """The app exactly as the container builds it for `pulse serve`, the admin API on."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        aloware_secret="aloware-openapi-test-secret",
        hubspot_client_secret="hubspot-openapi-test-secret",
        admin_hmac_secret="admin-openapi-test-secret-0123456789abcdef",
    )
    container = Container(settings=settings)
    built = container.app()
    if inspect.isawaitable(built):  # it is, while any store is an async resource
        built = await built
    yield built
    closing = container.shutdown_resources()
    if closing is not None:
        await closing


def registered(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route; aiohttp adds a HEAD beside each GET itself."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def documented() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in METHODS
    }


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in DOCUMENT["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for `schema` (a `$ref` into the document), its references resolved."""
    resource: Resource[Any] = Resource(contents=DOCUMENT, specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    return jsonschema.Draft202012Validator(
        {"$ref": DOCUMENT_URI + schema["$ref"]}, registry=registry
    )


def test_the_document_is_a_valid_openapi_3_1_document_of_this_version() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1.")
    assert DOCUMENT["info"]["version"] == metadata.version("pulse-etl")


async def test_every_route_the_app_registers_is_documented_and_nothing_else(
    app: web.Application,
) -> None:
    routes = registered(app)
    assert ("PUT", "/admin/dim-metric/{month}") in routes  # the admin API is on
    assert sorted(routes - documented()) == [], "registered, missing from openapi.json"
    assert sorted(documented() - routes) == [], "in openapi.json, not registered"


async def test_get_openapi_json_serves_the_document_without_credentials(
    app: web.Application, aiohttp_client: Any
) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(app)
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.headers["X-Request-Id"]
    assert await response.json() == DOCUMENT


async def test_the_errors_the_app_answers_have_the_documented_error_schema(
    app: web.Application, aiohttp_client: Any
) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(app)
    error = validator({"$ref": "#/components/schemas/Error"})
    refused = [
        await client.post("/webhooks/hubspot", data=b"[]"),  # no signature
        await client.post("/webhooks/nobody", data=b"{}"),
        await client.get("/admin/status"),  # unsigned
        await client.get("/webhooks/aloware"),  # wrong method
        await client.get("/no/such/route"),
    ]
    assert [r.status for r in refused] == [401, 404, 401, 405, 404]
    for response in refused:
        body = await response.json()
        error.validate(body)
        assert body["error"]["request_id"] == response.headers["X-Request-Id"]
    with pytest.raises(jsonschema.ValidationError):
        error.validate({"error": {"code": "x", "message": "y"}})  # the schema can refuse


def test_every_operation_answers_errors_with_the_error_schema() -> None:
    responses = DOCUMENT["components"]["responses"]
    for method, path, op in operations():
        for status, answer in op["responses"].items():
            if status.startswith(("4", "5")) and "$ref" in answer:
                name = answer["$ref"].rsplit("/", 1)[1]
                schema = responses[name]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
        assert "500" in op["responses"], (method, path)


def test_the_auth_schemes_name_the_headers_the_code_checks() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    headers = {
        s["name"].lower() for s in schemes.values() if s["type"] == "apiKey" and s["in"] == "header"
    }
    assert {
        hubspot.SIGNATURE_V3,
        hubspot.REQUEST_TIMESTAMP,
        hubspot.SIGNATURE_V1,
        hubspot.SIGNATURE_VERSION,
        admin_auth.TIMESTAMP.lower(),
        admin_auth.NONCE.lower(),
        admin_auth.SIGNATURE.lower(),
    } == headers
    assert {schemes[n]["scheme"] for n in ("alowareBearer", "alowareBasic")} == {"bearer", "basic"}
    assert schemes["consoleSession"]["name"] == console_session.COOKIE
    for method, path, op in operations():
        signed = {name for requirement in op["security"] for name in requirement}
        if path.startswith("/admin/"):
            assert op["security"] == [
                {"adminSignature": [], "adminTimestamp": [], "adminNonce": []}
            ], (method, path)
        elif path.startswith("/console") and path != console_session.LINK_PATH:
            assert op["security"] == [{"consoleSession": []}], (method, path)
        elif path.startswith("/webhooks/"):
            assert {"alowareBearer", "hubspotSignatureV3", "hubspotRequestTimestamp"} <= signed
        else:
            assert op["security"] == [], (method, path)


def test_each_documented_request_body_example_is_one_the_admin_api_accepts() -> None:
    checked = set()
    for _, _, op in operations():
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None or "$ref" not in content["schema"]:
            continue
        name = content["schema"]["$ref"].rsplit("/", 1)[1]
        validator(content["schema"]).validate(content["example"])
        parse(BODY_MODELS[name], json.dumps(content["example"]))
        with pytest.raises(jsonschema.ValidationError):  # extra fields: both refuse them
            validator(content["schema"]).validate({**content["example"], "unknown": 1})
        checked.add(name)
    assert checked == set(BODY_MODELS)
