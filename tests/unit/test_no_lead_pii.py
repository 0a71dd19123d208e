"""What Pulse stores about an event names no lead: no phone number, no name, no contact."""

from __future__ import annotations

import dataclasses
import re

from pulse.core.model import FactEvent

LEAD_FIELD = re.compile(r"phone|number|contact|lead|name|email", re.IGNORECASE)


def test_a_fact_has_no_field_that_could_hold_a_lead_phone_number_or_name() -> None:
    # The e2e test searches every file for one posted number; this keeps a new column honest.
    fields = [f.name for f in dataclasses.fields(FactEvent)]

    assert [name for name in fields if LEAD_FIELD.search(name)] == []
