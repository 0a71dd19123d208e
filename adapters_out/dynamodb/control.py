"""The control-plane stores on DynamoDB, as `ctl#…` items beside (or apart from) the ledger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pulse.adapters_out.dynamodb.client import (
    Backoff,
    ConditionFailed,
    DynamoClient,
    call,
    ensure_active,
)
from pulse.ports.clock import Clock
from pulse.ports.control import AppliedVersion, AuditRecord

# Ledger keys always contain ':'; control items start with `ctl#`, so one table holds both.
AUDIT_SEQ = "ctl#audit"
AUDIT_PREFIX = "ctl#audit#"
VERSION_INDEX = "ctl#versions"
VERSION_PREFIX = "ctl#version#"
VERSION_BODY_PREFIX = "ctl#version-body#"
NONCE_PREFIX = "ctl#nonce#"
OWNERS = "ctl#owners"
ROW_COUNTS = "ctl#row_counts"
LEASE_PREFIX = "ctl#lease#"
BUDGET_PREFIX = "ctl#budget#"

BATCH_GET_MAX = 100  # DynamoDB BatchGetItem limit


class _Store:
    def __init__(
        self, client: DynamoClient, table: str, clock: Clock, *, backoff: Backoff | None = None
    ) -> None:
        self._client = client
        self._table = table
        self._clock = clock
        self._backoff = backoff or Backoff()

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return await call(
            getattr(self._client, operation), self._backoff, TableName=self._table, **params
        )

    async def ping(self) -> None:
        await ensure_active(self._client, self._table, self._backoff)

    async def _get(self, pk: str) -> dict[str, Any] | None:
        answer = await self._call("get_item", Key={"pk": {"S": pk}}, ConsistentRead=True)
        item: dict[str, Any] | None = answer.get("Item")
        return item

    async def _get_many(self, pks: Sequence[str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for start in range(0, len(pks), BATCH_GET_MAX):
            wanted: dict[str, Any] = {
                self._table: {
                    "Keys": [{"pk": {"S": pk}} for pk in pks[start : start + BATCH_GET_MAX]],
                    "ConsistentRead": True,
                }
            }
            attempt = 0
            while wanted:
                answer = await call(self._client.batch_get_item, self._backoff, RequestItems=wanted)
                items.extend(answer.get("Responses", {}).get(self._table, []))
                wanted = answer.get("UnprocessedKeys") or {}
                if wanted:  # partial answers are DynamoDB's throttling for batches
                    await asyncio.sleep(self._backoff.delay(attempt))
                    attempt += 1
        return items

    def _epoch(self) -> float:
        return self._clock.now().timestamp()


class DynamoAuditLog(_Store):
    """Records `ctl#audit#<seq>` numbered by an atomic counter, so `recent` is a direct read."""

    async def append(self, record: AuditRecord) -> None:
        answer = await self._call(
            "update_item",
            Key={"pk": {"S": AUDIT_SEQ}},
            UpdateExpression="ADD seq :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        seq = int(answer["Attributes"]["seq"]["N"])
        item: dict[str, Any] = {
            "pk": {"S": f"{AUDIT_PREFIX}{seq:012d}"},
            "who": {"S": record.who},
            "at": {"S": record.when.isoformat()},
            "action": {"S": record.action},
            "payload_hash": {"S": record.payload_hash},
            "outcome": {"S": record.outcome},
            "counts": {"S": json.dumps(dict(record.counts), sort_keys=True)},
            "duration_sec": {"N": f"{record.duration_sec:.6f}"},
        }
        if record.version is not None:
            item["version"] = {"N": str(record.version)}
        await self._call("put_item", Item=item)

    async def recent(self, limit: int = 50) -> list[AuditRecord]:
        head = await self._get(AUDIT_SEQ)
        if head is None or limit <= 0:
            return []
        last = int(head["seq"]["N"])
        # A writer that died between numbering and writing leaves a gap; it is skipped.
        pks = [f"{AUDIT_PREFIX}{seq:012d}" for seq in range(last, max(0, last - limit), -1)]
        items = sorted(await self._get_many(pks), key=lambda i: i["pk"]["S"], reverse=True)
        return [_audit_record(item) for item in items]


def _audit_record(item: dict[str, Any]) -> AuditRecord:
    return AuditRecord(
        who=item["who"]["S"],
        when=datetime.fromisoformat(item["at"]["S"]),
        action=item["action"]["S"],
        payload_hash=item["payload_hash"]["S"],
        outcome=item["outcome"]["S"],
        version=int(item["version"]["N"]) if "version" in item else None,
        counts=json.loads(item["counts"]["S"]),
        duration_sec=float(item["duration_sec"]["N"]),
    )


class DynamoVersionStore(_Store):
    """`ctl#version#<doc>`: the newest version, with the numbers of every version stored;
    `ctl#version-body#<doc>#<version>`: each version in its own item (an item holds 400 KB: a
    body must fit in one, not a document's whole history); `ctl#versions` lists documents.

    The head is overwritten only over the version read, after that version's own item is
    written, so no body is lost even when a writer dies between its two writes."""

    async def get(self, document: str, version: int | None = None) -> AppliedVersion | None:
        head = await self._get(f"{VERSION_PREFIX}{document}")
        if version is None or head is None:
            return _applied(head) if head else None
        item = await self._get(_body_pk(document, version))
        if item is not None:
            return _applied(item)
        # Not kept separately (yet): the newest lives in its head.
        return _applied(head) if int(head["version"]["N"]) == version else None

    async def put(self, applied: AppliedVersion) -> bool:
        # The index first: a document listed but never written is skipped by get_all.
        await self._call(
            "update_item",
            Key={"pk": {"S": VERSION_INDEX}},
            UpdateExpression="ADD docs :doc",
            ExpressionAttributeValues={":doc": {"SS": [applied.document]}},
        )
        while True:
            item = await self._get(f"{VERSION_PREFIX}{applied.document}")
            head = _applied(item) if item else None
            if head is not None and head.version >= applied.version:
                return False
            if head is not None:
                await self._keep(head)
            try:
                await self._replace_head(applied, item)
            except ConditionFailed:
                continue  # another writer moved the head: read it again
            await self._keep(applied)
            return True

    async def _keep(self, applied: AppliedVersion) -> None:
        """Its own item (idempotent: the same version always has the same content)."""
        item = {"pk": {"S": _body_pk(applied.document, applied.version)}}
        await self._call("put_item", Item={**item, **_version_fields(applied)})

    async def _replace_head(self, applied: AppliedVersion, read: dict[str, Any] | None) -> None:
        """Put the head over exactly the one `read` (or none), carrying its version numbers on."""
        numbers = {str(applied.version), *(read or {}).get("history", {}).get("NS", [])}
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if read is not None:
            numbers.add(read["version"]["N"])
            condition = {
                "ConditionExpression": "version = :read",
                "ExpressionAttributeValues": {":read": read["version"]},
            }
        await self._call(
            "put_item",
            Item={
                "pk": {"S": f"{VERSION_PREFIX}{applied.document}"},
                **_version_fields(applied),
                "history": {"NS": sorted(numbers, key=int)},
            },
            **condition,
        )

    async def history(self, document: str) -> list[AppliedVersion]:
        head = await self._get(f"{VERSION_PREFIX}{document}")
        if head is None:
            return []
        numbers = sorted(int(n) for n in head.get("history", {}).get("NS", []))
        items = await self._get_many([_body_pk(document, n) for n in numbers])
        kept = {v.version: v for v in (_applied(i) for i in items)}
        newest = _applied(head)
        kept.setdefault(newest.version, newest)  # its own item not written yet, or never was
        return [kept[n] for n in sorted(kept)]

    async def get_all(self, prefix: str = "") -> list[AppliedVersion]:
        index = await self._get(VERSION_INDEX)
        names = sorted(
            d for d in (index or {}).get("docs", {}).get("SS", []) if d.startswith(prefix)
        )
        items = await self._get_many([f"{VERSION_PREFIX}{d}" for d in names])
        return sorted((_applied(i) for i in items), key=lambda a: a.document)


def _body_pk(document: str, version: int) -> str:
    return f"{VERSION_BODY_PREFIX}{document}#{version:012d}"


def _version_fields(applied: AppliedVersion) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "document": {"S": applied.document},
        "version": {"N": str(applied.version)},
        "body": {"S": applied.body},
        "applied_at": {"S": applied.applied_at.isoformat()},
        "applied_by": {"S": applied.applied_by},
        "counts": {"S": json.dumps(dict(applied.counts))},
    }
    if applied.restored_from is not None:
        fields["restored_from"] = {"N": str(applied.restored_from)}
    return fields


def _applied(item: dict[str, Any]) -> AppliedVersion:
    return AppliedVersion(
        document=item["document"]["S"],
        version=int(item["version"]["N"]),
        body=item["body"]["S"],
        applied_at=datetime.fromisoformat(item["applied_at"]["S"]),
        applied_by=item.get("applied_by", {}).get("S", ""),
        counts=json.loads(item.get("counts", {}).get("S", "{}")),
        restored_from=int(item["restored_from"]["N"]) if "restored_from" in item else None,
    )


class DynamoNonceStore(_Store):
    """`ctl#nonce#<nonce>` with TTL; an expired one not yet swept by TTL counts as unseen."""

    async def remember(self, nonce: str, ttl: timedelta) -> bool:
        now = self._epoch()
        try:
            await self._call(
                "put_item",
                Item={
                    "pk": {"S": f"{NONCE_PREFIX}{nonce}"},
                    "expires_at": {"N": str(int(now + ttl.total_seconds()) + 1)},
                },
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
        except ConditionFailed:
            return False
        return True


class DynamoOwnerOverrides(_Store):
    """All overrides as attributes `o#<owner>` of one item: a consistent single read lists them
    (an item holds 400 KB, thousands of overrides)."""

    async def get(self, owner: str) -> str | None:
        answer = await self._call(
            "get_item",
            Key={"pk": {"S": OWNERS}},
            ProjectionExpression="#o",
            ExpressionAttributeNames={"#o": f"o#{owner}"},
            ConsistentRead=True,
        )
        value = answer.get("Item", {}).get(f"o#{owner}")
        return value["S"] if value else None

    async def set(self, owner: str, agent_id: str | None) -> None:
        names = {"#o": f"o#{owner}"}
        if agent_id is None:
            await self._call(
                "update_item",
                Key={"pk": {"S": OWNERS}},
                UpdateExpression="REMOVE #o",
                ExpressionAttributeNames=names,
            )
            return
        await self._call(
            "update_item",
            Key={"pk": {"S": OWNERS}},
            UpdateExpression="SET #o = :agent",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":agent": {"S": agent_id}},
        )

    async def get_all(self) -> dict[str, str]:
        item = await self._get(OWNERS) or {}
        return {k.removeprefix("o#"): v["S"] for k, v in item.items() if k.startswith("o#")}


class DynamoRowCounts(_Store):
    """Counts as attributes `t#<table>` of one item, added to atomically by every replica."""

    async def add(self, table: str, rows: int) -> None:
        await self._update_count(table, "ADD #t :n", rows)

    async def set(self, table: str, rows: int) -> None:
        await self._update_count(table, "SET #t = :n", rows)

    async def _update_count(self, table: str, expression: str, rows: int) -> None:
        await self._call(
            "update_item",
            Key={"pk": {"S": ROW_COUNTS}},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#t": f"t#{table}"},
            ExpressionAttributeValues={":n": {"N": str(rows)}},
        )

    async def get_all(self) -> dict[str, int]:
        item = await self._get(ROW_COUNTS) or {}
        return {k.removeprefix("t#"): int(v["N"]) for k, v in item.items() if k.startswith("t#")}


class DynamoJobLease(_Store):
    """`ctl#lease#<job>`: a conditional put naming the owner; TTL sweeps leases left behind."""

    async def acquire(self, name: str, owner: str, ttl: timedelta) -> bool:
        now = self._epoch()
        until = now + ttl.total_seconds()
        try:
            await self._call(
                "put_item",
                Item={
                    "pk": {"S": f"{LEASE_PREFIX}{name}"},
                    "owner": {"S": owner},
                    "lease_until": {"N": f"{until:.3f}"},
                    "expires_at": {"N": str(int(until) + 86_400)},
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_until < :now OR #o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}, ":owner": {"S": owner}},
            )
        except ConditionFailed:
            return False
        return True

    async def renew(self, name: str, owner: str, ttl: timedelta) -> bool:
        until = self._epoch() + ttl.total_seconds()
        try:
            await self._call(
                "update_item",
                Key={"pk": {"S": f"{LEASE_PREFIX}{name}"}},
                UpdateExpression="SET lease_until = :until, expires_at = :exp",
                ConditionExpression="#o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={
                    ":until": {"N": f"{until:.3f}"},
                    ":exp": {"N": str(int(until) + 86_400)},
                    ":owner": {"S": owner},
                },
            )
        except ConditionFailed:
            return False
        return True

    async def release(self, name: str, owner: str) -> None:
        try:
            await self._call(
                "delete_item",
                Key={"pk": {"S": f"{LEASE_PREFIX}{name}"}},
                ConditionExpression="#o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ConditionFailed:
            pass  # someone else's by now: theirs to release


class DynamoBudgetStore(_Store):
    """`ctl#budget#<name>`: a JSON state and its version, written only over the version read."""

    async def read(self, name: str) -> tuple[dict[str, Any] | None, int]:
        item = await self._get(f"{BUDGET_PREFIX}{name}")
        if item is None:
            return None, 0
        return json.loads(item["state"]["S"]), int(item["v"]["N"])

    async def write(self, name: str, state: dict[str, Any], version: int) -> bool:
        condition = "attribute_not_exists(pk)" if version == 0 else "v = :v"
        values = {":v": {"N": str(version)}} if version else {}
        try:
            await self._call(
                "put_item",
                Item={
                    "pk": {"S": f"{BUDGET_PREFIX}{name}"},
                    "state": {"S": json.dumps(state, separators=(",", ":"))},
                    "v": {"N": str(version + 1)},
                },
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ConditionFailed:
            return False
        return True
