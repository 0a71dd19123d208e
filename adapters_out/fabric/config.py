"""What the Fabric adapters work with: FABRIC__* once checked, built by bootstrap from settings."""

from __future__ import annotations

from dataclasses import dataclass

from pulse.adapters_out.entra.config import EntraConfig
from pulse.adapters_out.fabric.sas import EventHubTarget


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How both sinks send: requests at a time, and how long one append retries, how fast."""

    max_concurrency: int
    append_timeout_sec: float
    retry_base_sec: float
    retry_cap_sec: float


@dataclass(frozen=True, slots=True)
class EventhouseConfig:
    """One KQL database (DESIGN §8) and the Entra ID app allowed to write to it."""

    entra: EntraConfig
    query_uri: str
    database: str
    mapping_name: str
    max_request_bytes: int
    gzip_min_bytes: int
    inline_replace_max_bytes: int
    timeout_sec: float
    sending: SendPolicy


@dataclass(frozen=True, slots=True)
class EventstreamConfig:
    """One Eventstream custom endpoint (its connection string, parsed) and its SAS tokens."""

    target: EventHubTarget
    max_request_bytes: int
    sas_ttl_sec: float
    sas_renew_before_sec: float
    timeout_sec: float
    sending: SendPolicy
