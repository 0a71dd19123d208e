"""HubSpot emails and tickets from a JSON file: the embedded stand-in for the CRM API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pulse.core.model import CrmObject
from pulse.ports.directory import CrmPage

# File section → the object type core asks for.
SECTIONS = {"emails": "email", "tickets": "ticket"}
FIELDS = ("owner_id", "owner_email", "direction", "status", "created_at")


class StaticCrmDirectory:
    """CrmDirectory port over `CRM_FILE`:
    `{"emails": {"<objectId>": {"owner_id", "owner_email", "direction", "status", "created_at"}},
    "tickets": {...}}`. Unknown ids, and every id when there is no file, are None."""

    def __init__(self, file: Path | None = None) -> None:
        self.file = Path(file) if file is not None else None
        self._objects = read_crm_file(self.file) if self.file is not None else {}

    async def lookup(self, object_type: str, object_id: str) -> CrmObject | None:
        return self._objects.get((object_type, str(object_id)))

    async def created(
        self, object_type: str, since: datetime, until: datetime
    ) -> AsyncIterator[CrmPage]:
        """CrmListing over the file: its objects of that type with `created_at` in the window,
        oldest first, as one page (an object without `created_at` is never listed)."""
        found = sorted(
            (
                obj
                for (kind, _), obj in self._objects.items()
                if kind == object_type and obj.created_at and since <= obj.created_at < until
            ),
            key=lambda obj: (obj.created_at, obj.object_id),
        )
        yield CrmPage(tuple(found), len(found))


def read_crm_file(path: Path) -> dict[tuple[str, str], CrmObject]:
    """Objects by (type, id); ValueError naming the file and the problem."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"CRM file {path}: cannot read it ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"CRM file {path}: not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise ValueError(f'CRM file {path}: expected {{"emails": {{...}}, "tickets": {{...}}}}')
    unknown = sorted(set(document) - set(SECTIONS))
    if unknown:
        raise ValueError(
            f"CRM file {path}: unknown section(s) {', '.join(unknown)} (emails, tickets)"
        )
    objects: dict[tuple[str, str], CrmObject] = {}
    for section, object_type in SECTIONS.items():
        entries = document.get(section, {})
        if not isinstance(entries, dict):
            raise ValueError(f"CRM file {path}: {section} must map object ids to objects")
        for object_id, entry in entries.items():
            objects[(object_type, str(object_id))] = _object(
                path, object_type, str(object_id), entry
            )
    return objects


def _object(path: Path, object_type: str, object_id: str, entry: Any) -> CrmObject:
    where = f"CRM file {path}: {object_type} {object_id}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not an object")
    values: dict[str, str | None] = {}
    for name in FIELDS:
        value = entry.get(name)
        if isinstance(value, bool) or not isinstance(value, str | int | None):
            raise ValueError(f"{where}: {name} must be a string")
        values[name] = None if value is None else str(value)  # HubSpot owner ids may be numbers
    return CrmObject(
        object_type=object_type,
        object_id=object_id,
        owner_id=values["owner_id"],
        owner_email=values["owner_email"],
        direction=values["direction"],
        status=values["status"],
        created_at=_instant(where, values["created_at"]),
    )


def _instant(where: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: created_at {text!r} is not ISO-8601") from None
    # A naive timestamp is read as UTC, as HubSpot's API always answers in UTC.
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
