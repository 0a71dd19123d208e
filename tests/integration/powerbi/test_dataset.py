"""`pulse dataset ensure|show`: create once, find by name, fix drift with PutTable, never drop data."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pulse.adapters_out.powerbi.auth import ServicePrincipalAuth
from pulse.adapters_out.powerbi.dataset import ensure_dataset, show_dataset
from pulse.adapters_out.powerbi.errors import PowerBIAccessDenied, PowerBIFeatureDeprecated
from pulse.adapters_out.powerbi.schema import dataset_body
from tests.emulators.aad import signed_in
from tests.emulators.powerbi import PowerBIEmulator
from tests.support.powerbi.harness import settings_for


async def ensure(emulator: PowerBIEmulator, **overrides: Any) -> Any:
    config = settings_for(emulator, **overrides).config()
    async with signed_in(emulator.url, ServicePrincipalAuth, config.entra) as auth:
        return await ensure_dataset(config, auth)


async def show(emulator: PowerBIEmulator, **overrides: Any) -> Any:
    config = settings_for(emulator, **overrides).config()
    async with signed_in(emulator.url, ServicePrincipalAuth, config.entra) as auth:
        return await show_dataset(config, auth)


def older_definition() -> dict[str, Any]:
    """What an older Pulse created: no DimShift, FactEvent without DurationSec, no Status,
    an old Goal, and a column the code no longer has."""
    body = copy.deepcopy(dataset_body("Pulse"))
    body["tables"] = [t for t in body["tables"] if t["name"] != "DimShift"]
    body["relationships"] = [r for r in body["relationships"] if r["toTable"] != "DimShift"]
    fact = next(t for t in body["tables"] if t["name"] == "FactEvent")
    fact["columns"] = [c for c in fact["columns"] if c["name"] != "DurationSec"]
    fact["columns"].append({"name": "Legacy", "dataType": "String"})
    fact["measures"] = [m for m in fact["measures"] if m["name"] != "Status"]
    next(m for m in fact["measures"] if m["name"] == "Goal")["expression"] = "0"
    fact["measures"].append({"name": "Handmade", "expression": "1"})
    return body


async def test_ensure_creates_the_dataset_with_retention_none_and_prints_its_id(
    emulator: PowerBIEmulator,
) -> None:
    report = await ensure(emulator)

    dataset = emulator.dataset(name="Pulse")
    assert report.created and report.dataset_id == dataset.id
    assert dataset.retention == "None"
    assert f"POWERBI__DATASET_ID={dataset.id}" in str(report)
    assert len(dataset.relationships) == 4


async def test_ensure_again_finds_it_by_name_and_changes_nothing(emulator: PowerBIEmulator) -> None:
    first = await ensure(emulator)

    again = await ensure(emulator)

    assert not again.created and again.found_by_name
    assert again.dataset_id == first.dataset_id
    assert (again.applied, again.drift) == ((), ())
    assert "schema matches the code" in str(again)
    assert emulator.calls["PostDatasetInGroup"] == 1
    assert emulator.calls["PutTableInGroup"] == 0


async def test_ensure_with_a_configured_id_uses_it(emulator: PowerBIEmulator) -> None:
    first = await ensure(emulator)

    report = await ensure(emulator, dataset_id=first.dataset_id)

    assert not report.found_by_name and "POWERBI__DATASET_ID" not in str(report)


async def test_ensure_refuses_a_configured_id_the_workspace_lacks(
    emulator: PowerBIEmulator,
) -> None:
    with pytest.raises(PowerBIAccessDenied, match="POWERBI__DATASET_ID=nope is not a dataset"):
        await ensure(emulator, dataset_id="nope")
    assert emulator.datasets == {}


async def test_ensure_fixes_drift_without_dropping_data(emulator: PowerBIEmulator) -> None:
    dataset = emulator.create_dataset(older_definition())
    dataset.tables["FactEvent"].add([{"EventKey": "aloware:1", "Legacy": "keep me"}])
    relationships = list(dataset.relationships)

    report = await ensure(emulator)

    fact = dataset.tables["FactEvent"]
    assert [c["name"] for c in fact.columns][-2:] == ["DurationSec", "Legacy"]
    assert fact.rows == [{"EventKey": "aloware:1", "Legacy": "keep me"}]
    measures = {m["name"]: m["expression"] for m in fact.measures}
    assert "Status" in measures and measures["Goal"] != "0" and measures["Handmade"] == "1"
    assert "DimShift" in dataset.tables
    assert dataset.relationships == relationships  # the API cannot add one
    text = str(report)
    assert "applied: add table DimShift" in text
    assert "applied: FactEvent: add column DurationSec (Int64)" in text
    assert "applied: FactEvent: add measure [Status]" in text
    assert "applied: FactEvent: update measure [Goal]" in text
    assert "drift: FactEvent[Legacy] is not in the code: kept, with its data" in text
    assert "drift: FactEvent: measure [Handmade] is not in the code: kept" in text
    assert "drift: relationship FactEvent[ShiftKey] → DimShift[ShiftKey] cannot be added" in text


async def test_ensure_adds_the_history_and_retired_columns_to_a_dataset_made_before_them(
    emulator: PowerBIEmulator,
) -> None:
    body = copy.deepcopy(dataset_body("Pulse"))
    new = {"DimAgent": ("ActiveFrom", "ActiveTo"), "DimShift": ("Retired",)}
    for table in body["tables"]:
        table["columns"] = [
            c for c in table["columns"] if c["name"] not in new.get(table["name"], ())
        ]
    dataset = emulator.create_dataset(body)
    dataset.tables["DimShift"].add([{"ShiftKey": "ALLDAY", "ShiftName": "All day"}])

    report = await ensure(emulator)

    text = str(report)
    assert "applied: DimAgent: add column ActiveFrom (DateTime)" in text
    assert "applied: DimAgent: add column ActiveTo (DateTime)" in text
    assert "applied: DimShift: add column Retired (Boolean)" in text
    assert dataset.tables["DimShift"].rows == [{"ShiftKey": "ALLDAY", "ShiftName": "All day"}]


async def test_ensure_reports_a_type_conflict_and_leaves_it(emulator: PowerBIEmulator) -> None:
    body = dataset_body("Pulse")
    date = next(t for t in body["tables"] if t["name"] == "DimDate")
    next(c for c in date["columns"] if c["name"] == "Year")["dataType"] = "String"
    dataset = emulator.create_dataset(body)

    report = await ensure(emulator)

    assert "DimDate[Year] is String in Power BI, the code says Int64" in str(report)
    year = next(c for c in dataset.tables["DimDate"].columns if c["name"] == "Year")
    assert year["dataType"] == "String"


async def test_ensure_leaves_unknown_tables_alone(emulator: PowerBIEmulator) -> None:
    body = dataset_body("Pulse")
    body["tables"].append({"name": "Notes", "columns": [{"name": "Text", "dataType": "String"}]})
    emulator.create_dataset(body)

    report = await ensure(emulator)

    assert "drift: table Notes is not in the code: left untouched" in str(report)


async def test_feature_deprecated_is_one_sentence(emulator: PowerBIEmulator) -> None:
    emulator.faults.deprecate_creation = True

    with pytest.raises(PowerBIFeatureDeprecated) as caught:
        await ensure(emulator)

    assert "no longer allows creating push semantic models" in str(caught.value)


async def test_two_datasets_with_the_name_ask_for_an_id(emulator: PowerBIEmulator) -> None:
    emulator.create_dataset(dataset_body("Pulse"))
    emulator.create_dataset(dataset_body("Pulse"))

    with pytest.raises(PowerBIAccessDenied, match="set POWERBI__DATASET_ID"):
        await ensure(emulator)


async def test_show_prints_what_power_bi_has_and_what_ensure_would_do(
    emulator: PowerBIEmulator,
) -> None:
    emulator.create_dataset(older_definition())

    report = await show(emulator)

    text = str(report)
    assert "table FactEvent(EventKey:String" in text and "[Activities]" in text
    assert "would apply: add table DimShift" in text
    assert "drift: FactEvent[Legacy] is not in the code" in text
    assert emulator.calls["PutTableInGroup"] == 0
