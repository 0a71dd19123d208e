"""Turning a stored envelope into source events (implemented per vendor in adapters_in/sources)."""

from __future__ import annotations

from typing import Protocol

from core.model import IngestEnvelope, SourceEvent


class EnvelopeParser(Protocol):
    def parse(self, envelope: IngestEnvelope) -> list[SourceEvent]:
        """Events in the envelope (maybe none); raise `UnparseableEnvelope` with the reason."""
        ...
