"""Console sign-in: one-time links, session cookies and CSRF tokens, all HMACs of ADMIN_HMAC_SECRET.

Each kind of token signs under its own label, so a link is never a cookie, a cookie never a CSRF
token, and none of them an admin request signature."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

LINK_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=8)  # one working day; sign in again with a new link after
LINK_PATH = "/console/sign-in"
COOKIE = "pulse_console"


class SignInRefused(Exception):
    """Why a link or a session is refused; `code` goes to the audit log."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _mac(secret: str, label: str, *parts: str) -> str:
    message = "\n".join((label, *parts)).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _signed(secret: str, label: str, value: str, expires: int) -> str:
    return f"{value}.{expires}.{_mac(secret, label, value, str(expires))}"


def _opened(secret: str, label: str, token: str, now: datetime) -> str:
    """The value of a `value.expires.mac` token, or SignInRefused."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isascii() or not parts[1].isdigit():
        raise SignInRefused("malformed", "not a console token")
    value, expires, given = parts
    if not hmac.compare_digest(_mac(secret, label, value, expires), given.lower()):
        raise SignInRefused("bad_signature", "signature does not match")
    if int(expires) <= now.timestamp():
        raise SignInRefused("expired", "expired: ask for a new link with `pulse console-link`")
    return value


@dataclass(frozen=True, slots=True)
class OneTimeLink:
    url: str
    nonce: str
    expires_at: datetime


def one_time_link(secret: str, base_url: str, now: datetime) -> OneTimeLink:
    """`pulse console-link`: a URL valid for ten minutes, once (its nonce goes to the store)."""
    nonce = secrets.token_hex(16)
    expires_at = now + LINK_TTL
    token = _signed(secret, "console-link", nonce, int(expires_at.timestamp()))
    return OneTimeLink(f"{base_url.rstrip('/')}{LINK_PATH}?token={token}", nonce, expires_at)


def link_nonce(secret: str, token: str, now: datetime) -> str:
    """The nonce of a valid, unexpired link; the caller checks with the nonce store it is new."""
    return _opened(secret, "console-link", token, now)


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    expires_at: datetime

    def csrf(self, secret: str) -> str:
        """The token every form of this session carries: bound to the session, not guessable."""
        return _mac(secret, "console-csrf", self.id)

    def csrf_ok(self, secret: str, given: str) -> bool:
        return hmac.compare_digest(self.csrf(secret), given.strip().lower())

    def cookie(self, secret: str) -> str:
        return _signed(secret, "console-session", self.id, int(self.expires_at.timestamp()))


def new_session(now: datetime) -> Session:
    return Session(secrets.token_hex(16), now + SESSION_TTL)


def session_from(secret: str, cookie: str | None, now: datetime) -> Session:
    if not cookie:
        raise SignInRefused("no_session", "not signed in: open a link from `pulse console-link`")
    session_id = _opened(secret, "console-session", cookie, now)
    expires = int(cookie.split(".")[1])
    return Session(session_id, datetime.fromtimestamp(expires, now.tzinfo))
