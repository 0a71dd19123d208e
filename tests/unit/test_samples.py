"""`samples/`: the CRM file `make run` points at knows exactly the objects of the HubSpot bodies
the README posts, which are the vendor samples' own, owned by the sample owner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pulse.adapters_out.static.crm import read_crm_file

ROOT = Path(__file__).parents[2]
SAMPLES = ROOT / "samples"
SPECS = ROOT / "tests" / "specs" / "webhooks"


def spec(name: str) -> Any:
    return json.loads((SPECS / f"{name}.json").read_text())


def test_the_readmes_hubspot_bodies_are_the_vendor_samples_byte_for_byte() -> None:
    for body, vendor in (
        ("hubspot-email-created", "hubspot-v3-email-object-creation"),
        ("hubspot-ticket-created", "hubspot-v3-ticket-creation"),
    ):
        sent = (SAMPLES / f"{body}.json").read_text().rstrip("\n")
        assert sent == spec(vendor)["raw_body"], body


def test_the_sample_crm_knows_each_sample_object_and_its_owner() -> None:
    owner = spec("hubspot-owner-get-response")["body"]
    email = spec("hubspot-email-object-response")["body"]
    objects = read_crm_file(SAMPLES / "crm.json")
    assert set(objects) == {
        ("email", str(spec("hubspot-v3-email-object-creation")["body"][0]["objectId"])),
        ("ticket", str(spec("hubspot-v3-ticket-creation")["body"][0]["objectId"])),
    }
    for obj in objects.values():
        assert (obj.owner_id, obj.owner_email) == (owner["id"], owner["email"])
    (sent,) = [o for (kind, _), o in objects.items() if kind == "email"]
    assert (sent.direction, sent.status) == (
        email["properties"]["hs_email_direction"],
        email["properties"]["hs_email_status"],
    )


def test_make_run_points_crm_file_at_the_sample() -> None:
    assert "CRM_FILE=samples/crm.json" in (ROOT / "Makefile").read_text()
