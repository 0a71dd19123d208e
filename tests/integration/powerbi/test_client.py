"""The REST client against the emulator: InGroup bodies as the swagger names them, errors typed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pulse.adapters_out.powerbi.auth import ServicePrincipalAuth
from pulse.adapters_out.powerbi.client import PowerBIClient, retry_after_seconds
from pulse.adapters_out.powerbi.errors import (
    PowerBIAccessDenied,
    PowerBIFeatureDeprecated,
    PowerBIRejected,
    PowerBIThrottled,
    PowerBIUnavailable,
)
from pulse.adapters_out.powerbi.schema import dataset_body
from tests.emulators.aad import AuthorityRedirect
from tests.emulators.powerbi import PowerBIEmulator


@pytest.fixture
async def client(emulator: PowerBIEmulator) -> AsyncIterator[PowerBIClient]:
    auth = ServicePrincipalAuth(
        tenant_id=emulator.tenant_id,
        client_id=emulator.client_id,
        client_secret=emulator.client_secret,
        http_client=AuthorityRedirect(emulator.url),
    )
    http = PowerBIClient(
        api_base_url=emulator.api_base_url,
        workspace_id=emulator.workspace_id,
        tokens=auth,
        timeout_sec=5,
    )
    yield http
    await http.aclose()
    await auth.close()


async def new_dataset(client: PowerBIClient) -> str:
    return str((await client.post_dataset(dataset_body("Pulse")))["id"])


async def test_every_operation_round_trips_through_ingroup_paths(
    client: PowerBIClient, emulator: PowerBIEmulator
) -> None:
    dataset = await new_dataset(client)
    await client.post_rows(dataset, "DimShift", ['{"ShiftKey":"ALLDAY","ShiftName":"All day"}'])
    await client.put_table(
        dataset, {"name": "Extra", "columns": [{"name": "Id", "dataType": "Int64"}]}
    )

    assert [d["id"] for d in await client.list_datasets()] == [dataset]
    assert {t["name"] for t in await client.get_tables(dataset)} >= {"FactEvent", "Extra"}
    assert emulator.rows("DimShift") == [{"ShiftKey": "ALLDAY", "ShiftName": "All day"}]
    await client.delete_rows(dataset, "DimShift")
    assert emulator.rows("DimShift") == []
    assert emulator.dataset(dataset).retention == "None"
    assert emulator.calls["my_workspace"] == 0


async def test_429_carries_retry_after(client: PowerBIClient, emulator: PowerBIEmulator) -> None:
    dataset = await new_dataset(client)
    emulator.faults.storm_429, emulator.faults.storm_retry_after = 1, 7

    with pytest.raises(PowerBIThrottled) as caught:
        await client.post_rows(dataset, "DimShift", ['{"ShiftKey":"A"}'])

    assert caught.value.retry_after == 7


async def test_5xx_is_transient_and_known_not_to_have_landed(
    client: PowerBIClient, emulator: PowerBIEmulator
) -> None:
    dataset = await new_dataset(client)
    emulator.faults.errors_5xx = 1

    with pytest.raises(PowerBIUnavailable) as caught:
        await client.post_rows(dataset, "DimShift", ['{"ShiftKey":"A"}'])

    assert (caught.value.status, caught.value.maybe_landed) == (503, False)


async def test_a_lost_connection_may_have_landed(
    client: PowerBIClient, emulator: PowerBIEmulator
) -> None:
    dataset = await new_dataset(client)
    emulator.faults.drop_after = 1

    with pytest.raises(PowerBIUnavailable) as caught:
        await client.post_rows(dataset, "DimShift", ['{"ShiftKey":"A"}'])

    assert caught.value.maybe_landed
    assert len(emulator.rows("DimShift")) == 1  # it did land


async def test_400_is_permanent_with_power_bis_body(
    client: PowerBIClient, emulator: PowerBIEmulator
) -> None:
    dataset = await new_dataset(client)

    with pytest.raises(PowerBIRejected) as caught:
        await client.post_rows(dataset, "DimShift", ['{"ShiftKey":1}'])

    assert caught.value.status == 400
    assert '"pbi.error"' in caught.value.body and "not a String" in caught.value.body


async def test_an_expired_token_is_refreshed_once(
    client: PowerBIClient, emulator: PowerBIEmulator
) -> None:
    await client.list_datasets()
    emulator.aad.expire_all()

    await client.list_datasets()

    assert emulator.counters.token_expired == 1
    assert emulator.aad.issued == 2


async def test_feature_deprecated_becomes_one_clear_sentence(
    client: PowerBIClient, emulator: PowerBIEmulator
) -> None:
    emulator.faults.deprecate_creation = True

    with pytest.raises(PowerBIFeatureDeprecated, match="POWERBI__DATASET_ID"):
        await new_dataset(client)


@pytest.mark.parametrize(
    ("deny", "sentence"),
    [
        ("tenant_switch", 'tenant setting "Service principals can use Fabric APIs"'),
        ("not_member", "add it to the workspace as Member"),
    ],
)
async def test_permission_errors_become_one_clear_sentence(
    client: PowerBIClient, emulator: PowerBIEmulator, deny: str, sentence: str
) -> None:
    emulator.faults.deny = deny

    with pytest.raises(PowerBIAccessDenied, match=sentence):
        await client.list_datasets()


async def test_an_unknown_workspace_says_what_to_check(emulator: PowerBIEmulator) -> None:
    auth = ServicePrincipalAuth(
        tenant_id=emulator.tenant_id,
        client_id=emulator.client_id,
        client_secret=emulator.client_secret,
        http_client=AuthorityRedirect(emulator.url),
    )
    client = PowerBIClient(
        api_base_url=emulator.api_base_url, workspace_id="elsewhere", tokens=auth
    )

    with pytest.raises(PowerBIAccessDenied, match="not a member of that workspace"):
        await client.list_datasets()
    await client.aclose()


async def test_a_refused_connection_is_transient_and_did_not_land(
    emulator: PowerBIEmulator,
) -> None:
    auth = ServicePrincipalAuth(
        tenant_id=emulator.tenant_id,
        client_id=emulator.client_id,
        client_secret=emulator.client_secret,
        http_client=AuthorityRedirect(emulator.url),
    )
    client = PowerBIClient(
        api_base_url="http://127.0.0.1:9/v1.0/myorg", workspace_id="w", tokens=auth, timeout_sec=2
    )

    with pytest.raises(PowerBIUnavailable) as caught:
        await client.list_datasets()

    assert not caught.value.maybe_landed
    await client.aclose()


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds("Wed, 05 Nov 2025 17:00:30 GMT", now=1_762_362_000) == 30
    assert retry_after_seconds(None) == 60
    assert retry_after_seconds("soon") == 60
