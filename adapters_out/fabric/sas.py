"""Event Hubs shared access signatures from a connection string, per Microsoft's documented
algorithm ("Generate a Shared Access Signature token"), renewed before they expire."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, urlsplit


@dataclass(frozen=True, slots=True)
class EventHubTarget:
    """`Endpoint=sb://<ns>.servicebus.windows.net/;SharedAccessKeyName=…;SharedAccessKey=…;
    EntityPath=…` — the custom endpoint's connection string in an Eventstream."""

    host: str
    key_name: str
    key: str
    entity_path: str

    @property
    def resource_uri(self) -> str:
        return f"https://{self.host}/{self.entity_path}"

    @property
    def send_url(self) -> str:
        return f"{self.resource_uri}/messages"

    def __repr__(self) -> str:  # never the key
        return f"EventHubTarget(host={self.host!r}, key_name={self.key_name!r}, entity_path={self.entity_path!r})"


def parse_connection_string(text: str) -> EventHubTarget:
    """ValueError naming what is wrong (never echoing the key)."""
    fields: dict[str, str] = {}
    for part in text.strip().split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"connection string part {name.strip()[:30]!r} is not Name=Value")
        fields[name.strip().lower()] = value.strip()
    missing = [
        n
        for n in ("Endpoint", "SharedAccessKeyName", "SharedAccessKey", "EntityPath")
        if not fields.get(n.lower())
    ]
    if missing:
        raise ValueError(
            f"the Eventstream connection string lacks {', '.join(missing)} (copy it from the "
            "custom endpoint's Keys tab, Event Hub protocol)"
        )
    endpoint = urlsplit(fields["endpoint"])
    if endpoint.scheme.lower() not in ("sb", "https") or not endpoint.hostname:
        raise ValueError(
            "the connection string's Endpoint must look like sb://<namespace>.servicebus.windows.net/"
        )
    return EventHubTarget(
        host=endpoint.hostname.lower(),
        key_name=fields["sharedaccesskeyname"],
        key=fields["sharedaccesskey"],
        entity_path=fields["entitypath"].strip("/"),
    )


def sas_token(resource_uri: str, key_name: str, key: str, expiry: int) -> str:
    """`SharedAccessSignature sr=…&sig=…&se=…&skn=…`: sr is the URL-encoded, lower-cased
    resource URI; sig is base64(HMAC-SHA256(key, sr + "\\n" + expiry)), URL-encoded."""
    encoded_uri = quote_plus(resource_uri.lower())
    to_sign = f"{encoded_uri}\n{expiry}".encode()
    digest = hmac.new(key.encode(), to_sign, hashlib.sha256).digest()
    signature = quote(base64.b64encode(digest).decode(), safe="")
    return f"SharedAccessSignature sr={encoded_uri}&sig={signature}&se={expiry}&skn={key_name}"


class SasTokens:
    """The current token, made anew once less than `renew_before_sec` of it is left."""

    def __init__(
        self,
        target: EventHubTarget,
        *,
        ttl_sec: float = 3_600,
        renew_before_sec: float = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if renew_before_sec >= ttl_sec:
            raise ValueError("the SAS renewal margin must be shorter than its lifetime")
        self._target = target
        self._ttl = ttl_sec
        self._renew_before = renew_before_sec
        self._clock = clock
        self._token = ""
        self.expiry = 0
        self.issued = 0

    def token(self) -> str:
        now = self._clock()
        if not self._token or now >= self.expiry - self._renew_before:
            self.expiry = int(now + self._ttl)
            t = self._target
            self._token = sas_token(t.resource_uri, t.key_name, t.key, self.expiry)
            self.issued += 1
        return self._token

    def invalidate(self) -> None:
        self._token = ""
