"""The emulator refuses what Power BI would: every validation and every limit proven by a bad request."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import httpx
import pytest

from pulse.adapters_out.powerbi.schema import dataset_body
from tests.emulators.clock import ManualTime
from tests.emulators.powerbi import Limits, PowerBIEmulator
from tests.support.powerbi.fixtures import RawApi

SMALL: dict[str, Any] = {
    "name": "Small",
    "defaultMode": "Push",
    "tables": [
        {
            "name": "T",
            "columns": [
                {"name": "Id", "dataType": "Int64"},
                {"name": "Label", "dataType": "String"},
                {"name": "Share", "dataType": "Double"},
                {"name": "Done", "dataType": "Boolean"},
                {"name": "At", "dataType": "DateTime"},
            ],
        },
        {"name": "Dim", "columns": [{"name": "Id", "dataType": "Int64"}]},
    ],
    "relationships": [
        {"name": "T_Dim", "fromTable": "T", "fromColumn": "Id", "toTable": "Dim", "toColumn": "Id"}
    ],
}
GOOD_ROW = {"Id": 1, "Label": "x", "Share": 0.5, "Done": True, "At": "2025-11-05T17:00:00.000Z"}


def assert_power_bi_400(response: httpx.Response, *fragments: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] and error["pbi.error"]["code"] == error["code"]
    for fragment in fragments:
        assert fragment in error["message"], error["message"]


def changed(path: str, value: Any) -> dict[str, Any]:
    """SMALL with one value replaced (`tables.0.name`) or removed (value ...)."""
    body = copy.deepcopy(SMALL)
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return body


async def small_dataset(api: RawApi) -> str:
    answer = await api.call("POST", "datasets", json=SMALL)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


# --- PostDataset / PutTable bodies against the swagger -----------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(changed("name", ...), "name: required", id="dataset-without-name"),
        pytest.param(changed("tables", ...), "tables: required", id="dataset-without-tables"),
        pytest.param(
            changed("tables.0.name", "Fact/Event"), "allowed characters", id="table-name-pattern"
        ),
        pytest.param(
            changed("tables.0.name", "T" * 101), "allowed characters", id="table-name-over-100"
        ),
        pytest.param(
            changed("tables.0.columns", ...), "columns: required", id="table-without-columns"
        ),
        pytest.param(
            changed("tables.0.columns.0.dataType", ...),
            "dataType: required",
            id="column-without-type",
        ),
        pytest.param(
            changed("tables.0.columns.0.dataType", "string"),
            "is not one of",
            id="column-type-spelling",
        ),
        pytest.param(
            changed("tables.0.columns.0.dataType", "Decimal"),
            "is not one of",
            id="column-type-unknown",
        ),
        pytest.param(
            changed("tables.0.columns.0", {"name": "Id", "DataType": "Int64"}),
            "DataType: unknown property",
            id="property-case",
        ),
        pytest.param(changed("defaultMode", "Realtime"), "is not one of", id="default-mode-enum"),
        pytest.param(
            changed("relationships.0.crossFilteringBehavior", "Sideways"),
            "is not one of",
            id="cross-filter-enum",
        ),
        pytest.param(
            changed("relationships.0.toColumn", "Nope"), "does not exist", id="relationship-column"
        ),
        pytest.param(
            changed("relationships.0.fromTable", ...),
            "fromTable: required",
            id="relationship-from-table",
        ),
        pytest.param(
            changed("tables.0.columns.1.name", "Id"), "duplicate column", id="duplicate-column"
        ),
        pytest.param(changed("tables.1.name", "T"), "duplicate table", id="duplicate-table"),
        pytest.param(
            changed(
                "tables",
                [
                    {"name": f"T{i}", "columns": [{"name": "c", "dataType": "Int64"}]}
                    for i in range(76)
                ],
            ),
            "76 tables",
            id="over-75-tables",
        ),
        pytest.param(
            changed(
                "tables.1.columns", [{"name": f"c{i}", "dataType": "Int64"} for i in range(76)]
            ),
            "76 columns",
            id="over-75-columns",
        ),
        pytest.param(
            changed("tables.0.measures", [{"name": "M"}]),
            "expression: required",
            id="measure-without-expression",
        ),
    ],
)
async def test_post_dataset_refuses_bodies_the_swagger_forbids(
    api: RawApi, body: dict[str, Any], fragment: str
) -> None:
    assert_power_bi_400(await api.call("POST", "datasets", json=body), fragment)
    assert api.emulator.datasets == {}


async def test_post_dataset_refuses_an_unknown_retention_policy(api: RawApi) -> None:
    answer = await api.call(
        "POST", "datasets", json=SMALL, params={"defaultRetentionPolicy": "forever"}
    )
    assert_power_bi_400(answer, "defaultRetentionPolicy")


async def test_post_dataset_refuses_a_body_that_is_not_json(api: RawApi) -> None:
    assert_power_bi_400(await api.call("POST", "datasets", content=b"{not json"), "not valid JSON")


async def test_the_pulse_definition_is_accepted_whole(api: RawApi) -> None:
    answer = await api.call(
        "POST", "datasets", json=dataset_body("Pulse"), params={"defaultRetentionPolicy": "None"}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["defaultRetentionPolicy"] == "None"


async def test_put_table_refuses_a_name_that_differs_from_the_url(api: RawApi) -> None:
    dataset = await small_dataset(api)
    answer = await api.call("PUT", f"datasets/{dataset}/tables/T", json={**SMALL["tables"][1]})
    assert_power_bi_400(answer, "differs")


async def test_put_table_refuses_a_bad_column_type(api: RawApi) -> None:
    dataset = await small_dataset(api)
    body = {"name": "Dim", "columns": [{"name": "Id", "dataType": "int"}]}
    assert_power_bi_400(
        await api.call("PUT", f"datasets/{dataset}/tables/Dim", json=body), "is not one of"
    )


# --- PostRows: bodies, row types, sizes ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({"rows": {"Id": 1}}, "expected an array", id="rows-not-array"),
        pytest.param({}, "rows: required", id="rows-missing"),
        pytest.param({"rows": [GOOD_ROW], "Rows": []}, "unknown property", id="property-case"),
        pytest.param({"rows": ["x"]}, "expected an object", id="row-not-object"),
        pytest.param({"rows": [{**GOOD_ROW, "Id": "12"}]}, "not an Int64", id="int64-as-string"),
        pytest.param({"rows": [{**GOOD_ROW, "Id": 1.5}]}, "not an Int64", id="int64-as-fraction"),
        pytest.param({"rows": [{**GOOD_ROW, "Id": True}]}, "not an Int64", id="int64-as-boolean"),
        pytest.param(
            {"rows": [{**GOOD_ROW, "Share": "0.5"}]}, "not a Double", id="double-as-string"
        ),
        pytest.param(
            {"rows": [{**GOOD_ROW, "Done": "true"}]}, "not a Boolean", id="boolean-as-string"
        ),
        pytest.param(
            {"rows": [{**GOOD_ROW, "At": "yesterday"}]}, "DateTime", id="datetime-unparseable"
        ),
        pytest.param({"rows": [{**GOOD_ROW, "Label": 7}]}, "not a String", id="string-as-number"),
        pytest.param(
            {"rows": [{**GOOD_ROW, "Label": "x" * 4_001}]},
            "longer than 4000",
            id="string-over-4000",
        ),
        pytest.param(
            {"rows": [{**GOOD_ROW, "Extra": 1}]}, "no column 'Extra'", id="unknown-column"
        ),
        pytest.param({"rows": [GOOD_ROW] * 10_001}, "10001 rows", id="over-10000-rows"),
    ],
)
async def test_post_rows_refuses_what_power_bi_would(
    api: RawApi, body: dict[str, Any], fragment: str
) -> None:
    dataset = await small_dataset(api)
    answer = await api.call("POST", f"datasets/{dataset}/tables/T/rows", json=body)
    assert_power_bi_400(answer, fragment)
    assert api.emulator.rows("T") == []


async def test_post_rows_takes_the_limits_exactly(api: RawApi) -> None:
    dataset = await small_dataset(api)
    rows = [{**GOOD_ROW, "Id": i, "Label": "x" * 4_000, "At": None} for i in range(10_000)]
    answer = await api.call("POST", f"datasets/{dataset}/tables/T/rows", json={"rows": rows})
    assert answer.status_code == 200, answer.text[:300]
    assert len(api.emulator.rows("T")) == 10_000


async def test_post_rows_to_an_unknown_table_or_dataset_is_404(api: RawApi) -> None:
    dataset = await small_dataset(api)
    assert (
        await api.call("POST", f"datasets/{dataset}/tables/Nope/rows", json={"rows": []})
    ).status_code == 404
    assert (
        await api.call("POST", "datasets/nope/tables/T/rows", json={"rows": []})
    ).status_code == 404


# --- auth and workspace --------------------------------------------------------------------------


async def test_requests_without_a_valid_token_are_refused(api: RawApi) -> None:
    assert (await api.call("GET", "datasets", token="")).status_code == 401
    assert (await api.call("GET", "datasets", token="forged")).status_code == 403


async def test_an_expired_token_gets_403_token_expired(api: RawApi) -> None:
    api.emulator.aad.expire_all()
    answer = await api.call("GET", "datasets")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "TokenExpired"


async def test_another_workspace_is_not_found(api: RawApi) -> None:
    answer = await api.call(
        "GET", "/v1.0/myorg/groups/00000000-0000-0000-0000-000000000000/datasets"
    )
    assert answer.status_code == 404


async def test_my_workspace_is_not_for_service_principals(api: RawApi) -> None:
    answer = await api.call("GET", "/v1.0/myorg/datasets")
    assert answer.status_code == 403
    assert "not accessible for application" in answer.text


# --- DESIGN §4 limits: 429 with Retry-After ------------------------------------------------------


_BODIES: dict[int, bytes] = {}


async def post_one(api: RawApi, dataset: str, rows: int = 1) -> httpx.Response:
    body = _BODIES.setdefault(rows, json.dumps({"rows": [{"Id": 1}] * rows}).encode())
    return await api.call("POST", f"datasets/{dataset}/tables/Dim/rows", content=body)


def assert_429(response: httpx.Response, limit: str) -> int:
    assert response.status_code == 429, response.text
    assert limit in response.json()["error"]["message"]
    return int(response.headers["Retry-After"])


async def test_the_121st_request_in_a_minute_waits(api: RawApi, manual_time: ManualTime) -> None:
    dataset = await small_dataset(api)
    for _ in range(120):
        assert (await post_one(api, dataset)).status_code == 200
        manual_time.advance(0.25)

    retry_after = assert_429(await post_one(api, dataset), "per_minute")

    assert retry_after == 30  # asked at 30 s; the first (0 s) leaves the window at 60 s
    manual_time.advance(retry_after)
    assert (await post_one(api, dataset)).status_code == 200
    assert api.emulator.counters.throttled_by_limit == {"per_minute": 1}


async def test_past_250k_rows_the_budget_is_120_requests_an_hour(
    api: RawApi, manual_time: ManualTime
) -> None:
    dataset = await small_dataset(api)
    api.emulator.seed_rows("T", 249_999)
    assert (
        await api.call("POST", f"datasets/{dataset}/tables/T/rows", json={"rows": [GOOD_ROW]})
    ).status_code == 200
    for _ in range(119):  # the table now holds 250,000 rows
        manual_time.advance(1)
        assert (await post_one(api, dataset)).status_code == 200
    manual_time.advance(61)  # the per-minute window is empty again

    retry_after = assert_429(await post_one(api, dataset), "per_hour_large")

    assert 3_600 - 200 < retry_after <= 3_600
    manual_time.advance(retry_after)
    assert (await post_one(api, dataset)).status_code == 200


async def test_below_250k_rows_the_hourly_budget_does_not_apply(
    api: RawApi, manual_time: ManualTime
) -> None:
    dataset = await small_dataset(api)
    api.emulator.seed_rows("T", 249_000)
    for _ in range(240):
        assert (await post_one(api, dataset)).status_code == 200
        manual_time.advance(0.5)


@pytest.mark.slow
async def test_a_million_rows_an_hour_then_429(api: RawApi, manual_time: ManualTime) -> None:
    dataset = await small_dataset(api)
    for _ in range(100):
        assert (await post_one(api, dataset, 10_000)).status_code == 200
        manual_time.advance(30)

    retry_after = assert_429(await post_one(api, dataset), "rows_per_hour")

    assert retry_after == 3_600 - 100 * 30  # the first 10,000 rows age out
    manual_time.advance(retry_after)
    assert (await post_one(api, dataset, 10_000)).status_code == 200


async def test_a_sixth_pending_request_is_refused(api: RawApi, manual_time: ManualTime) -> None:
    dataset = await small_dataset(api)
    api.emulator.faults.slow_sec = 5  # each PostRows takes 5 emulated seconds
    pending = [asyncio.create_task(post_one(api, dataset)) for _ in range(5)]
    for _ in range(1_000):  # bounded: the five reach the emulator within a few loop turns
        if api.emulator.dataset(dataset).pending == 5:
            break
        await asyncio.sleep(0.005)

    assert_429(await post_one(api, dataset), "pending")

    manual_time.advance(5)
    assert [r.status_code for r in await asyncio.gather(*pending)] == [200] * 5


def test_the_default_limits_are_microsofts() -> None:
    limits = Limits()
    assert (
        limits.max_rows_per_request,
        limits.requests_per_minute,
        limits.requests_per_hour_large,
        limits.large_table_rows,
        limits.rows_per_hour,
        limits.max_pending,
        limits.max_tables,
        limits.max_columns,
        limits.max_relationships,
        limits.max_string_chars,
    ) == (10_000, 120, 120, 250_000, 1_000_000, 5, 75, 75, 75, 4_000)


# --- retention -----------------------------------------------------------------------------------


async def test_basic_fifo_drops_the_oldest_rows_silently(manual_time: ManualTime) -> None:
    async with PowerBIEmulator(timebase=manual_time, limits=Limits(max_rows_basic_fifo=3)) as emu:
        dataset = emu.create_dataset(json.loads(json.dumps(SMALL)), retention="basicFIFO")
        emu.dataset(dataset.id).tables["Dim"].add([{"Id": i} for i in range(5)])
        emu.dataset(dataset.id).tables["Dim"].keep_last(3)
        assert [r["Id"] for r in emu.rows("Dim")] == [2, 3, 4]
