"""Admin request signing (DESIGN §5): HMAC-SHA256 over time, nonce, method, path and body hash."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

TIMESTAMP = "X-Pulse-Timestamp"
NONCE = "X-Pulse-Nonce"
SIGNATURE = "X-Pulse-Signature"
WINDOW = timedelta(seconds=300)
# A nonce only has to be remembered while its timestamp is acceptable: both sides of the window.
NONCE_TTL = 2 * WINDOW

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AuthRejected(Exception):
    """Why an admin request is refused; `status` is 401 (who are you) or 403 (not from there)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical(timestamp: str, nonce: str, method: str, path: str, body: bytes) -> bytes:
    """`path` is the request target as sent, query string included, so `?dryRun=true` is signed."""
    return "\n".join((timestamp, nonce, method.upper(), path, body_hash(body))).encode()


def sign(secret: str, timestamp: str, nonce: str, method: str, path: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), canonical(timestamp, nonce, method, path, body), "sha256")
    return digest.hexdigest()


def signed_headers(
    secret: str, method: str, path: str, body: bytes, now_epoch: float
) -> dict[str, str]:
    """The three headers `pulse admin call` sends."""
    timestamp, nonce = str(int(now_epoch)), secrets.token_hex(16)
    return {
        TIMESTAMP: timestamp,
        NONCE: nonce,
        SIGNATURE: sign(secret, timestamp, nonce, method, path, body),
    }


@dataclass(frozen=True, slots=True)
class SignedRequest:
    timestamp: int
    nonce: str


def verify(
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    now_epoch: float,
) -> SignedRequest:
    """Check the signature and the time window; the caller then checks the nonce is new.
    `secret` may be several (current, then previous during a rotation): any one signs."""
    missing = [h for h in (TIMESTAMP, NONCE, SIGNATURE) if not headers.get(h)]
    if missing:
        raise AuthRejected(401, "missing_signature", f"missing header(s): {', '.join(missing)}")
    raw_ts, nonce, given = headers[TIMESTAMP], headers[NONCE], headers[SIGNATURE]
    if not (raw_ts.isascii() and raw_ts.isdigit() and len(raw_ts) <= 12):
        raise AuthRejected(401, "bad_timestamp", f"{TIMESTAMP} must be epoch seconds")
    if not 8 <= len(nonce) <= 128:
        raise AuthRejected(401, "bad_nonce", f"{NONCE} must be 8–128 characters")
    skew = int(raw_ts) - now_epoch
    if abs(skew) > WINDOW.total_seconds():
        when = "in the future" if skew > 0 else "old"
        raise AuthRejected(
            401, "stale_timestamp", f"timestamp is {abs(skew):.0f} s {when} (window ±300 s)"
        )
    candidates = (secret,) if isinstance(secret, str) else tuple(secret)
    given_digest = given.strip().lower()
    # every candidate compared, in constant time: timing does not tell which key matched
    matches = [
        hmac.compare_digest(sign(key, raw_ts, nonce, method, path, body), given_digest)
        for key in candidates
    ]
    if not any(matches):
        raise AuthRejected(401, "bad_signature", "signature does not match")
    return SignedRequest(int(raw_ts), nonce)


# The admin keys accepted, current first; read per request so a rotation needs no restart.
AdminKeys = Callable[[], Sequence[str]]


def parse_networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def _within(ip: str, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


def client_ip(peer: str, forwarded_for: str | None, trusted_proxies: Sequence[Network]) -> str:
    """The caller's address: `X-Forwarded-For` counts only when the peer is a trusted proxy,
    and then the nearest address no trusted proxy claims (the rest could be forged)."""
    if not forwarded_for or not _within(peer, trusted_proxies):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer


def check_allowed(ip: str, allowlist: Sequence[Network]) -> None:
    if allowlist and not _within(ip, allowlist):
        raise AuthRejected(403, "ip_not_allowed", f"{ip} is not in ADMIN_IP_ALLOWLIST")
