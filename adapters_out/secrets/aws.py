"""AWS Secrets Manager as the secret source: each credential's AWSCURRENT and AWSPREVIOUS
versions, cached and refreshed every TTL, so a rotation takes effect without a restart."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pulse.adapters_out.aws_client import open_client
from pulse.ports.secrets import Credential, SecretSource

if TYPE_CHECKING:  # aiobotocore loads only when SECRETS_SOURCE=aws (cold start)
    from aiobotocore.session import AioSession

log = logging.getLogger("pulse.secrets")


class SecretUnavailable(Exception):
    """A secret could not be read; the message names the credential and id, never a value."""


@dataclass(frozen=True, slots=True)
class _Versions:
    current: str
    current_version: str
    rotated_at: float  # epoch seconds the AWSCURRENT version was created
    previous: str | None


async def secretsmanager_client(
    region: str,
    endpoint_url: str | None = None,
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session: AioSession | None = None,
) -> AsyncIterator[Any]:
    """One client for the process; credentials from the default chain (ECS task role, env)
    unless given."""
    opened = open_client(
        "secretsmanager",
        region,
        endpoint_url,
        access_key_id,
        secret_access_key,
        session,
        read_timeout=10,
        retries={"mode": "standard"},
    )
    async with opened as client:
        yield client


class SecretsManagerSecrets:
    """Reads are from the cache; `keep_fresh` re-reads every `ttl_sec`. The previous version is
    accepted inbound until `previous_valid_sec` after the current one was created. A credential
    without a secret id is `fallback`'s (the environment's)."""

    def __init__(
        self,
        client: Any,
        ids: Mapping[Credential, str],
        ttl_sec: float,
        previous_valid_sec: float,
        fallback: SecretSource | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._fallback = fallback
        self._client = client
        self._ids = dict(ids)
        self.ttl_sec = ttl_sec
        self._previous_valid_sec = previous_valid_sec
        self._now = now
        self._cache: dict[Credential, _Versions] = {}

    def __repr__(self) -> str:
        return f"SecretsManagerSecrets({sorted(self._ids)}, ttl_sec={self.ttl_sec})"

    def current(self, credential: Credential) -> str | None:
        if credential not in self._ids and self._fallback is not None:
            return self._fallback.current(credential)
        versions = self._cache.get(credential)
        return versions.current if versions else None

    def accepted(self, credential: Credential) -> tuple[str, ...]:
        if credential not in self._ids and self._fallback is not None:
            return self._fallback.accepted(credential)
        versions = self._cache.get(credential)
        if versions is None:
            return ()
        in_window = self._now() < versions.rotated_at + self._previous_valid_sec
        if versions.previous is None or not in_window or versions.previous == versions.current:
            return (versions.current,)
        return (versions.current, versions.previous)

    async def refresh(self) -> None:
        """Read every credential; the first failure raises (the cache keeps what it had)."""
        for credential, secret_id in self._ids.items():
            versions = await self._read(credential, secret_id)
            known = self._cache.get(credential)
            if known is not None and known.current_version != versions.current_version:
                log.info(
                    "secret rotated: %s now at version %s", credential, versions.current_version
                )
            self._cache[credential] = versions

    async def keep_fresh(self) -> None:
        """Until cancelled: a failed refresh is logged and retried next TTL, values kept."""
        while True:
            await asyncio.sleep(self.ttl_sec)
            try:
                await self.refresh()
            except SecretUnavailable as exc:
                log.warning("secrets not refreshed, last values kept: %s", exc)

    async def _read(self, credential: Credential, secret_id: str) -> _Versions:
        current = await self._version(credential, secret_id, "AWSCURRENT")
        if current is None:
            raise SecretUnavailable(f"{credential}: secret {secret_id!r} has no AWSCURRENT value")
        previous = await self._version(credential, secret_id, "AWSPREVIOUS")
        created = current.get("CreatedDate")
        return _Versions(
            current=str(current["SecretString"]),
            current_version=str(current.get("VersionId", "")),
            rotated_at=created.timestamp() if created is not None else self._now(),
            previous=str(previous["SecretString"]) if previous else None,
        )

    async def _version(
        self, credential: Credential, secret_id: str, stage: str
    ) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError  # loaded with the client

        try:
            answer: dict[str, Any] = await self._client.get_secret_value(
                SecretId=secret_id, VersionStage=stage
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "ResourceNotFoundException" and stage != "AWSCURRENT":
                return None  # never rotated: no previous version
            raise SecretUnavailable(f"{credential}: secret {secret_id!r}: {code}") from None
        except (BotoCoreError, OSError) as exc:
            raise SecretUnavailable(
                f"{credential}: secret {secret_id!r}: {type(exc).__name__}"
            ) from None
        if "SecretString" not in answer:
            raise SecretUnavailable(f"{credential}: secret {secret_id!r} is binary, not a string")
        return answer


async def kept_fresh(source: SecretsManagerSecrets) -> AsyncIterator[SecretsManagerSecrets]:
    """A container Resource: read once (a start fails if a secret cannot be read), then
    refresh in the background until shutdown."""
    await source.refresh()
    task = asyncio.create_task(source.keep_fresh(), name="secrets-refresh")
    try:
        yield source
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
