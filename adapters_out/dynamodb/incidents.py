"""Incidents and each source's last request on DynamoDB, as `ctl#…` items of the control table.

A signature's head is written only over the version read (a conditional put), so of replicas
racing to open or resolve the same incident exactly one succeeds and sends the alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pulse.adapters_out.dynamodb.client import ConditionFailed
from pulse.adapters_out.dynamodb.control import _Store
from pulse.core.incidents import Incident, State, incident_from_dict

HEAD_PREFIX = "ctl#incident-head#"
RECORD_PREFIX = "ctl#incident#"
SIGNATURES = "ctl#incident-signatures"
IDS = "ctl#incident-ids"
LAST_SEEN = "ctl#last-seen"


def _body(incident: Incident) -> dict[str, Any]:
    return {"S": json.dumps(incident.as_dict(), sort_keys=True)}


def _incident(item: dict[str, Any]) -> Incident:
    return incident_from_dict(json.loads(item["body"]["S"]))


class DynamoIncidentStore(_Store):
    async def head(self, signature: str) -> tuple[Incident | None, int]:
        item = await self._get(f"{HEAD_PREFIX}{signature}")
        if item is None:
            return None, 0
        return _incident(item), int(item["v"]["N"])

    async def save(self, incident: Incident, version: int | None) -> bool:
        if version is not None:
            if version == 0:
                await self._add(SIGNATURES, incident.signature)
            try:
                await self._put_head(incident, version)
            except ConditionFailed:
                return False
        if incident.opened_at is not None:
            await self._add(IDS, incident.id)
            await self._call(
                "put_item",
                Item={
                    "pk": {"S": f"{RECORD_PREFIX}{incident.id}"},
                    "opened_at": {"S": incident.opened_at.isoformat()},
                    "body": _body(incident),
                },
            )
        return True

    async def _put_head(self, incident: Incident, version: int) -> None:
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if version:
            condition = {
                "ConditionExpression": "v = :v",
                "ExpressionAttributeValues": {":v": {"N": str(version)}},
            }
        await self._call(
            "put_item",
            Item={
                "pk": {"S": f"{HEAD_PREFIX}{incident.signature}"},
                "v": {"N": str(version + 1)},
                "state": {"S": incident.state.value},
                "body": _body(incident),
            },
            **condition,
        )

    async def _add(self, pk: str, member: str) -> None:
        await self._call(
            "update_item",
            Key={"pk": {"S": pk}},
            UpdateExpression="ADD members :m",
            ExpressionAttributeValues={":m": {"SS": [member]}},
        )

    async def _members(self, pk: str) -> list[str]:
        item = await self._get(pk) or {}
        return sorted(item.get("members", {}).get("SS", []))

    async def get(self, incident_id: str) -> Incident | None:
        item = await self._get(f"{RECORD_PREFIX}{incident_id}")
        return _incident(item) if item is not None else None

    async def recent(self, limit: int = 50) -> list[Incident]:
        ids = await self._members(IDS)
        items = await self._get_many([f"{RECORD_PREFIX}{i}" for i in ids])
        items.sort(key=lambda i: (i["opened_at"]["S"], i["pk"]["S"]), reverse=True)
        return [_incident(item) for item in items[:limit]]

    async def open(self) -> list[Incident]:
        signatures = await self._members(SIGNATURES)
        items = await self._get_many([f"{HEAD_PREFIX}{s}" for s in signatures])
        heads = [_incident(i) for i in items if i["state"]["S"] == State.OPEN.value]
        return sorted(heads, key=lambda h: h.signature)

    async def saw(self, source: str, at: datetime) -> None:
        try:
            await self._call(
                "update_item",
                Key={"pk": {"S": LAST_SEEN}},
                UpdateExpression="SET #s = :at",
                ConditionExpression="attribute_not_exists(#s) OR #s < :at",
                ExpressionAttributeNames={"#s": f"s#{source}"},
                ExpressionAttributeValues={":at": {"N": f"{at.timestamp():.3f}"}},
            )
        except ConditionFailed:
            pass  # another replica saw a later request

    async def last_seen(self) -> dict[str, datetime]:
        item = await self._get(LAST_SEEN) or {}
        return {
            k.removeprefix("s#"): datetime.fromtimestamp(float(v["N"]), UTC)
            for k, v in item.items()
            if k.startswith("s#")
        }
