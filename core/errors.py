"""Errors core and its ports speak: transient (try later) versus permanent (dead-letter)."""

from __future__ import annotations


class PulseError(Exception):
    """Base of every error Pulse raises on purpose."""


class UnparseableEnvelope(PulseError):
    """The envelope cannot be turned into source events; it is dead-lettered with this reason.

    `code` names the kind of fault for its incident signature (`parse:aloware:bad_created_at`):
    given, or `bad_<field>` when the message starts with the field it names, else `malformed`."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code or _code_of(message)


def _code_of(message: str) -> str:
    words = message.removeprefix("`").split(" ", 1)
    field = words[0].rstrip("`:").lower()
    if len(words) == 2 and field.replace("_", "").isalpha() and "_" in field:
        return f"bad_{field}"
    return "malformed"


class TransientError(PulseError):
    """A dependency failed in a way that may pass (timeout, throttling, 5xx): retry later."""


class PermanentError(PulseError):
    """A dependency rejected the request for good (schema, 400): dead-letter with the detail."""


class EnvelopeTooLarge(PermanentError):
    """The inbox cannot store an envelope this large (an SQS message holds 256 KiB); the edge
    answers 413 and stores nothing."""


class SinkTransientError(TransientError):
    pass


class SinkPermanentError(PermanentError):
    pass


class ValidationFailed(PulseError):
    """A control-plane payload or a setting is wrong; the message names the field."""
