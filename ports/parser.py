"""Turning a stored envelope into source events (implemented per vendor in adapters_in/sources)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pulse.core.model import CrmObject, IngestEnvelope, SourceEvent


class EnvelopeParser(Protocol):
    def parse(self, envelope: IngestEnvelope) -> list[SourceEvent]:
        """Events in the envelope (maybe none); raise `UnparseableEnvelope` with the reason."""
        ...


class WebhookReplay(Protocol):
    def envelope(self, obj: CrmObject, received_at: datetime) -> IngestEnvelope:
        """The envelope of the webhook the vendor sends when `obj` is created, as the edge
        would have stored it: its parser reads it like any other delivery."""
        ...
